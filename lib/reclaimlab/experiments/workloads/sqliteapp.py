"""An application workload: a small SQLite app that builds a database of N bytes and queries it.

    with SqliteApp(parse_size("1.5GiB")) as app:
        app.build()        # the database file grows to the size; its pages fill the page cache
        app.scan()         # a full table scan: every page read, from the cache
        app.lookups(20000) # random lookups by primary key
    # the database and its folder are gone here, also after Ctrl-C or an error

The blog's container app in miniature: the app's own memory stays at tens of MiB (SQLite's cache is
capped at `cache_kib`, no mmap), while the kernel keeps the file's pages cached. The app runs in a child
process (sqlite_app_child.py) in a fresh scratch folder on the guest's disk, like PageCacheFile: checked
for room, removed at the end; if this process is SIGKILLed, the next run removes the folder (scratch.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .allocator import StepResult
from .scratchfile import ScratchFileWorkload

DEFAULT_CACHE_KIB = 2048   # SQLite's own page cache per connection: small, so the kernel's cache does the work


class SqliteApp(ScratchFileWorkload):
    """One SQLite database of about `size_bytes` in a fresh scratch folder, built and queried by a child."""

    CHILD_MODULE = "reclaimlab.experiments.workloads.sqlite_app_child"
    FILE_NAME = "app.sqlite3"
    WHAT = "SQLite app"
    USAGE = "with SqliteApp(...) as app:"

    def __init__(self, size_bytes: int | str, cache_kib: int = DEFAULT_CACHE_KIB, directory: str | Path | None = None,
                 python: str | None = None):
        if not isinstance(cache_kib, int) or isinstance(cache_kib, bool) or not 64 <= cache_kib <= 1 << 20:
            raise ValueError(f"cache_kib is SQLite's own page cache in KiB, a whole number from 64 to 1048576, "
                             f"not {cache_kib!r}")
        super().__init__(size_bytes, directory, python)
        self.cache_kib = cache_kib

    def _step(self, step: str, **params: Any) -> StepResult:
        reply = self._require().request(step, path=str(self.path), cache_kib=self.cache_kib, **params)
        size = reply["size_bytes"]
        duration_s = reply["duration_s"]
        rate = size / duration_s / 1e9 if step != "lookups" and duration_s > 0 else None
        return StepResult(step, duration_s, size, None, rate,
                          {"path": str(self.path), "rows": reply.get("rows"), "rss_kib": reply.get("rss_kib")})

    def build(self) -> StepResult:
        return self._step("build", size_bytes=self.size_bytes)

    def scan(self) -> StepResult:
        return self._step("scan")

    def lookups(self, count: int = 20000) -> StepResult:
        return self._step("lookups", count=int(count))
