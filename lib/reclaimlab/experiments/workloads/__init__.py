"""Workloads: each runs in a child process that dies with its parent (see _child.py)."""
from __future__ import annotations

from ._child import WorkloadError
from .allocator import Allocator, StepResult
from .busy import BusyLoop
from .fragmenter import FragmentResult, Fragmenter
from .pagecache import PageCacheFile
from .sqliteapp import SqliteApp
from ...control.scratch import ScratchError

__all__ = ["Allocator", "BusyLoop", "FragmentResult", "Fragmenter", "PageCacheFile", "ScratchError", "SqliteApp", "StepResult",
           "WorkloadError"]
