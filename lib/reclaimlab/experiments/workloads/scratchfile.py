"""The life cycle of a workload whose child process works on one file in a fresh scratch folder.

PageCacheFile (a plain file) and SqliteApp (a database) share it: the folder is checked for room and
made by control/scratch.py at start(), the child runs `CHILD_MODULE`, and the folder is removed once the
child has gone (a child still writing would hold the file open); if this process is SIGKILLed, the next
run removes it (scratch.py).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ...control import scratch
from ...units import parse_size
from ._child import ChildProcess, Workload


class ScratchFileWorkload(Workload):
    """One file of about `size_bytes` in a fresh scratch folder, driven through a child process.

    directory: the scratch base to use (default: $RECLAIMLAB_SCRATCH, ~/.cache/reclaimlab, /var/tmp);
    it gets the same checks (disk-backed, writable, room for the file)."""

    CHILD_MODULE = ""   # the child's module (python -m)
    FILE_NAME = ""      # the file's name inside the run folder
    WHAT = ""           # the workload in words, for errors
    USAGE = ""          # how to use it, for the error when it is not running

    def __init__(self, size_bytes: int | str, directory: str | Path | None = None, python: str | None = None):
        self.size_bytes = parse_size(size_bytes)
        self._python = python
        self._directory = Path(directory) if directory else None
        self.run_dir: Path | None = None
        self.path: Path | None = None
        self._child: ChildProcess | None = None

    def start(self) -> "ScratchFileWorkload":
        if self._child is not None:
            return self
        base = scratch.scratch_base(self.size_bytes, self._directory)
        self.run_dir = scratch.make_run_dir(base)
        self.path = self.run_dir / self.FILE_NAME
        try:
            self._child = ChildProcess(self.CHILD_MODULE, python=self._python, what=self.WHAT)
        except BaseException:
            self._ended()
            raise
        return self

    @property
    def pid(self) -> int:
        return self._require().pid

    def _require(self) -> ChildProcess:
        if self._child is None:
            raise RuntimeError(f"the {self.WHAT} workload is not running; use `{self.USAGE}`")
        return self._child

    def _ended(self) -> None:
        # after the child is gone: a child still writing would hold the file open
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.run_dir = None
