"""The host's map of a guest's RAM: how many pages of each guest-physical block the host holds.

Pure data (vm.hostmap reads it from QEMU's pagemap; recording.physmap stores it beside the guest's
map of the same step). Here, below both, so a recording can load it without the VM code.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class HostMap:
    """Per block of guest-physical memory: pages the host holds (present) and has swapped out."""

    resident_pages: np.ndarray   # (blocks,) present pages per block
    swapped_pages: np.ndarray    # (blocks,) swapped-out pages per block
    block_order: int
    page_bytes: int
    pages: int                   # pages of guest RAM mapped (the last block may be short)

    @property
    def blocks(self) -> int:
        return len(self.resident_pages)

    @property
    def resident(self) -> np.ndarray:
        """True where the host holds any page of the block."""
        return self.resident_pages > 0

    @property
    def resident_kib(self) -> int:
        return int(self.resident_pages.sum(dtype=np.int64)) * self.page_bytes // 1024
