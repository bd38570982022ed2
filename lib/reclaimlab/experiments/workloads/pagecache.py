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

from typing import Any

from .allocator import StepResult
from .scratchfile import ScratchFileWorkload


class PageCacheFile(ScratchFileWorkload):
    """One file of `size_bytes` in a fresh scratch folder, driven through a child process.

    directory: the scratch base to use (default: $RECLAIMLAB_SCRATCH, ~/.cache/reclaimlab, /var/tmp);
    it gets the same checks (disk-backed, writable, room for the file).
    """

    CHILD_MODULE = "reclaimlab.experiments.workloads.pagecache_child"
    FILE_NAME = "pagecache.bin"
    WHAT = "page-cache"
    USAGE = "with PageCacheFile(...) as f:"

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

