"""Allocator: anonymous memory held by a child process, step by step, as the seed's C program does.

    with Allocator(parse_size("3GB")) as a:
        sampler.mark("alloc");  a.calloc()        # calloc(n, 1): commits almost nothing
        sampler.mark("touch");  a.touch()         # memset every page: AnonPages rises by n
        sampler.mark("free");   a.free()          # free(): glibc munmaps the chunk at once
        sampler.mark("touch");  a.touch_again()   # refault: new pages, hot or from the host

Each step blocks until the child has done it and returns a StepResult (its duration, the
child's RssAnon afterwards, GB/s for touches), so the caller can mark events around it.
The child dies with this process, `kill -9` included (see _child.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...units import parse_size
from ._child import ChildProcess, Workload, status_kib


@dataclass(frozen=True)
class StepResult:
    step: str                  # calloc | mmap | touch | free | ...
    duration_s: float          # time the child spent in the call itself
    size_bytes: int
    rss_anon_kib: int | None   # the child's RssAnon right after the step
    gb_per_s: float | None = None  # touches only: 10^9 bytes per second
    detail: dict[str, Any] = field(default_factory=dict)


def _result(step: str, reply: dict[str, Any]) -> StepResult:
    keys = ("duration_s", "size_bytes", "rss_anon_kib", "gb_per_s")
    return StepResult(step, reply["duration_s"], reply["size_bytes"], reply.get("rss_anon_kib"),
                      reply.get("gb_per_s"), {k: v for k, v in reply.items() if k not in keys})


class Allocator(Workload):
    """A child process that callocs, touches, holds and frees `size_bytes` on command.

    huge_pages=False (default): ``calloc(size_bytes, 1)`` exactly as the seed's C program.
    huge_pages=True: a 2 MiB-aligned private anonymous mmap with MADV_HUGEPAGE (THP here is
    'madvise'), freed with munmap; calloc's chunks are not 2 MiB aligned.
    """

    def __init__(self, size_bytes: int | str, huge_pages: bool = False, python: str | None = None):
        self.size_bytes = parse_size(size_bytes)
        self.huge_pages = huge_pages
        self._python = python
        self._child: ChildProcess | None = None
        self.allocated = False

    # -- lifetime
    def start(self) -> "Allocator":
        if self._child is None:
            self._child = ChildProcess("reclaimlab.experiments.workloads.allocator_child", python=self._python,
                                       what="allocator")
        return self

    @property
    def pid(self) -> int:
        return self._require().pid

    def _ended(self) -> None:
        self.allocated = False

    def _require(self) -> ChildProcess:
        if self._child is None:
            raise RuntimeError("the allocator is not running; use `with Allocator(...) as a:` or a.start()")
        return self._child

    # -- steps
    def calloc(self) -> StepResult:
        """Allocate (calloc, or the huge-page mmap); returns at once: nothing is committed yet."""
        reply = self._require().request("alloc", size_bytes=self.size_bytes, huge_pages=self.huge_pages)
        self.allocated = True
        return _result("mmap" if self.huge_pages else "calloc", reply)

    def touch(self) -> StepResult:
        """Write every page (memset); the child checks one byte per page and reports a checksum."""
        return _result("touch", self._require().request("touch"))

    def free(self) -> StepResult:
        reply = self._require().request("free")
        self.allocated = False
        return _result("free", reply)

    def touch_again(self) -> StepResult:
        """The refault step: touch again; after free(), allocate anew first (new pages from the kernel).

        Right after a free those pages are still in the guest (fast); after the host took them
        back through page reporting, the host must supply them again (slow). If the buffer was
        never freed this rewrites committed memory (no faults at all).
        """
        refault = not self.allocated
        if refault:
            self.calloc()
        result = self.touch()
        detail = dict(result.detail, refault=refault)
        return StepResult("touch_again", result.duration_s, result.size_bytes, result.rss_anon_kib,
                          result.gb_per_s, detail)

    def status(self) -> dict[str, Any]:
        """The child's /proc/<pid>/status memory fields (kB) as the parent reads them."""
        return status_kib(self.pid)
