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

import shutil
from pathlib import Path
from typing import Any

from ...probe import scratch
from ...units import parse_size
from ._child import ChildProcess, Workload
from .allocator import StepResult

DEFAULT_CACHE_KIB = 2048   # SQLite's own page cache per connection: small, so the kernel's cache does the work


class SqliteApp(Workload):
    """One SQLite database of about `size_bytes` in a fresh scratch folder, built and queried by a child."""

    def __init__(self, size_bytes: int | str, cache_kib: int = DEFAULT_CACHE_KIB, directory: str | Path | None = None,
                 python: str | None = None):
        self.size_bytes = parse_size(size_bytes)
        if not isinstance(cache_kib, int) or isinstance(cache_kib, bool) or not 64 <= cache_kib <= 1 << 20:
            raise ValueError(f"cache_kib is SQLite's own page cache in KiB, a whole number from 64 to 1048576, "
                             f"not {cache_kib!r}")
        self.cache_kib = cache_kib
        self._python = python
        self._directory = Path(directory) if directory else None
        self.run_dir: Path | None = None
        self.path: Path | None = None
        self._child: ChildProcess | None = None

    def start(self) -> "SqliteApp":
        if self._child is not None:
            return self
        base = scratch.scratch_base(self.size_bytes, self._directory)
        self.run_dir = scratch.make_run_dir(base)
        self.path = self.run_dir / "app.sqlite3"
        try:
            self._child = ChildProcess("reclaimlab.experiments.workloads.sqlite_app_child", python=self._python,
                                       what="sqlite app")
        except BaseException:
            self._ended()
            raise
        return self

    @property
    def pid(self) -> int:
        return self._require().pid

    def _require(self) -> ChildProcess:
        if self._child is None:
            raise RuntimeError("the SQLite app is not running; use `with SqliteApp(...) as app:`")
        return self._child

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

    def _ended(self) -> None:
        # after the child is gone (a child still writing would hold the file open)
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.run_dir = None
