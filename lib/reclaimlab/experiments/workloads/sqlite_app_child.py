"""The SQLite app's child: builds one database file with the stdlib's sqlite3, then queries it (sqliteapp.py).

Run as ``python -m reclaimlab.experiments.workloads.sqlite_app_child``; commands arrive on stdin (_child.py).
An application like the blog's container databases: its own memory stays small (SQLite's page cache is
capped by `cache_size`, memory-mapped I/O is off), so the file's pages live in the kernel's page cache.
"""
from __future__ import annotations

import os
import random
import sqlite3
import time
from typing import Any

from ._child import serve

PAGE_BYTES = 4096
ROW_PAYLOAD_BYTES = 1000            # ~3 rows a 4 KiB page: no overflow pages, a scan reads every page
BATCH_BYTES = 32 * 1024 * 1024      # rows per transaction: the last batch overshoots the size by at most this
INSERT = ("WITH RECURSIVE n(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM n WHERE x < ?) "
          "INSERT INTO items (id, name, payload) SELECT x, 'item-' || x, randomblob(?) FROM n")


def _connect(path: str, cache_kib: int) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute(f"PRAGMA cache_size = -{int(cache_kib)}")   # negative: KiB, SQLite's own page cache
    con.execute("PRAGMA mmap_size = 0")                    # reads go through read(2): the kernel's cache
    return con


def _rss_kib() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def build(path: str, size_bytes: int, cache_kib: int) -> dict[str, Any]:
    """Create the database at `path` (it must not exist) and insert rows until the file holds size_bytes."""
    if os.path.exists(path):
        raise FileExistsError(f"{path} exists already")
    t0 = time.perf_counter()
    con = _connect(path, cache_kib)
    try:
        con.execute(f"PRAGMA page_size = {PAGE_BYTES}")
        con.execute("PRAGMA journal_mode = OFF")   # a scratch database: no rollback journal beside it
        con.execute("PRAGMA synchronous = OFF")
        con.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, payload BLOB NOT NULL)")
        per_row = PAGE_BYTES // (PAGE_BYTES // (ROW_PAYLOAD_BYTES + 40))  # a page holds 3 rows
        next_id = 1
        while os.path.getsize(path) < size_bytes:
            left = size_bytes - os.path.getsize(path)
            rows = max(1, min(BATCH_BYTES, left) // per_row)
            con.execute("BEGIN")
            con.execute(INSERT, (next_id, next_id + rows - 1, ROW_PAYLOAD_BYTES))
            con.execute("COMMIT")
            next_id += rows
    finally:
        con.close()
    return {"duration_s": time.perf_counter() - t0, "size_bytes": os.path.getsize(path), "rows": next_id - 1,
            "rss_kib": _rss_kib()}


def scan(path: str, cache_kib: int) -> dict[str, Any]:
    """A full table scan (a report over every row): reads every page of the file."""
    t0 = time.perf_counter()
    con = _connect(path, cache_kib)
    try:
        rows, payload = con.execute("SELECT count(*), sum(length(payload)) FROM items").fetchone()
    finally:
        con.close()
    return {"duration_s": time.perf_counter() - t0, "size_bytes": os.path.getsize(path), "rows": rows,
            "payload_bytes": payload or 0, "rss_kib": _rss_kib()}


def lookups(path: str, cache_kib: int, count: int, seed: int = 0) -> dict[str, Any]:
    """`count` lookups of random rows by primary key (an app serving requests)."""
    t0 = time.perf_counter()
    con = _connect(path, cache_kib)
    try:
        (top,) = con.execute("SELECT max(id) FROM items").fetchone()
        rng = random.Random(seed)
        found = 0
        for _ in range(count):
            row = con.execute("SELECT length(payload) FROM items WHERE id = ?", (rng.randint(1, top),)).fetchone()
            found += row is not None
    finally:
        con.close()
    return {"duration_s": time.perf_counter() - t0, "size_bytes": os.path.getsize(path), "rows": found,
            "rss_kib": _rss_kib()}


def main() -> None:
    serve({"build": build, "scan": scan, "lookups": lookups})


if __name__ == "__main__":
    main()
