"""Page-cache workload: write, sync and read back a file of N bytes on the guest's disk.

    with PageCacheFile(parse_size("1.5GB")) as f:
        f.write()    # Cached and Dirty grow by the size
        f.sync()     # fsync: Dirty falls, Cached stays (clean pages: drop_caches can drop them)
        f.read()     # served from the cache (fast) or, after drop_caches, from the disk
    # the file and its folder are gone here, also after Ctrl-C or an error

The I/O runs in a child process (so the sampler thread in this process is not starved, and the
child can be moved into a WorkloadCgroup to have the cache charged there: `f.pid`). If this
process is SIGKILLed the file stays behind; the next PageCacheFile removes it (see scratch.py).
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ...units import parse_size
from ...probe import scratch
from ._child import ChildProcess, Workload
from .allocator import StepResult


class PageCacheFile(Workload):
    """One file of `size_bytes` in a fresh scratch folder, driven through a child process.

    directory: the scratch base to use (default: $RECLAIMLAB_SCRATCH, ~/.cache/reclaimlab, /var/tmp);
    it gets the same checks (disk-backed, writable, room for the file).
    """

    def __init__(self, size_bytes: int | str, directory: str | Path | None = None, python: str | None = None):
        self.size_bytes = parse_size(size_bytes)
        self._python = python
        self._directory = Path(directory) if directory else None
        self.run_dir: Path | None = None
        self.path: Path | None = None
        self._child: ChildProcess | None = None

    def start(self) -> "PageCacheFile":
        if self._child is not None:
            return self
        base = scratch.scratch_base(self.size_bytes, self._directory)
        self.run_dir = scratch.make_run_dir(base)
        self.path = self.run_dir / "pagecache.bin"
        try:
            self._child = ChildProcess("reclaimlab.experiments.workloads.pagecache_child", python=self._python,
                                       what="page-cache")
        except BaseException:
            self._ended()
            raise
        return self

    @property
    def pid(self) -> int:
        return self._require().pid

    def _require(self) -> ChildProcess:
        if self._child is None:
            raise RuntimeError("the page-cache workload is not running; use `with PageCacheFile(...) as f:`")
        return self._child

    def _step(self, step: str, **params: Any) -> StepResult:
        reply = self._require().request(step, path=str(self.path), **params)
        size = reply.get("size_bytes", self.size_bytes)
        duration_s = reply["duration_s"]
        rate = size / duration_s / 1e9 if step != "sync" and duration_s > 0 else None
        return StepResult(step, duration_s, size, None, rate, {"path": str(self.path)})

    def write(self) -> StepResult:
        return self._step("write", size_bytes=self.size_bytes)

    def sync(self) -> StepResult:
        return self._step("sync")

    def read(self) -> StepResult:
        return self._step("read")

    def remove(self) -> None:
        """Delete the file and its folder (its cached pages are freed with it)."""
        self._ended()

    def _ended(self) -> None:
        # after the child is gone: a child still writing would hold the file open
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.run_dir = None

