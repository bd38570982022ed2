"""/proc/<pid>/pagemap: a workload's own pages in physical memory (PFNs), parsed apart from the reading."""
from __future__ import annotations

import struct

from reclaimlab.probe import pagemap

PRESENT = 1 << 63


def _entries(*values: int) -> bytes:
    return b"".join(struct.pack("<Q", v) for v in values)


def _fake_proc(tmp_path, pid: int, data: bytes):
    (tmp_path / str(pid)).mkdir()
    (tmp_path / str(pid) / "pagemap").write_bytes(data)
    return tmp_path


def test_parse_keeps_present_pfns_and_every_stride_th_entry():
    # present pfn 0x1234 with soft-dirty/exclusive flag bits set; swapped (not present); present; absent
    data = _entries(PRESENT | (1 << 55) | (1 << 56) | 0x1234, 0x7, PRESENT | 0x200, 0)
    assert pagemap.parse_pfns(data) == [0x1234, None, 0x200, None]
    assert pagemap.parse_pfns(data, stride=2) == [0x1234, 0x200]
    assert pagemap.parse_pfns(data[:-3]) == [0x1234, None, 0x200]  # a torn last entry is dropped


def test_read_starts_at_the_address_page(tmp_path):
    proc = _fake_proc(tmp_path, 7, _entries(*(PRESENT | (100 + i) for i in range(8))))
    assert pagemap.read_pfns(7, address=2 * 4096, pages=4, proc=proc) == [102, 103, 104, 105]
    assert pagemap.read_pfns(7, address=2 * 4096, pages=4, stride=2, proc=proc) == [102, 104]


def test_hidden_pfns_and_a_gone_process_read_as_unknown(tmp_path):
    # not root: present pages read PFN 0 (Linux >= 4.2)
    proc = _fake_proc(tmp_path, 8, _entries(PRESENT, PRESENT, PRESENT))
    assert pagemap.read_pfns(8, 0, 3, proc=proc) is None
    assert pagemap.read_pfns(9, 0, 3, proc=proc) is None


def test_blocks_holding_and_moved_pages():
    before = [0, 1, 511, 512, 1024, None]      # order 9: blocks 0, 1, 2
    after = [0, 1, 2, 3, None, 5000]           # compaction packed them into block 0
    assert pagemap.blocks_holding(before, 9) == 3
    assert pagemap.blocks_holding(after, 9) == 2
    assert pagemap.moved_pages(before, after) == 2  # 511 -> 2, 512 -> 3; a page absent either time is not counted
    assert pagemap.vacated_blocks(before, after, 9) == 2  # blocks 1 and 2 hold none of them now
    spread = [0, 600, 1100, 1700]                   # moved, yet still in blocks 0, 1, 2 (and now 3): none left
    assert pagemap.vacated_blocks([0, 1, 511, 512, 1024], spread, 9) == 0
    assert pagemap.blocks_holding(spread, 9) == 4   # more blocks pinned than before: no contradiction
