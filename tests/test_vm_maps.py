"""The guest's and the host's maps of the kit's VM: the pure parts (the agent's P lines, QEMU's
pagemap, the agreement between them) without a VM. The VM tests are in test_vm.py (-m vm)."""
from __future__ import annotations

import numpy as np
import pytest

from reclaimlab.probe import physmap
from reclaimlab.probe.physmap import FrameClass as C
from reclaimlab.vm import guestmap, hostmap
from reclaimlab.vm.errors import VmProtocolError
from reclaimlab.vm.protocol import Ack, PageFlags, parse_line

BUDDY, UPTODATE, ANON, LRU = 1 << 10, 1 << 3, 1 << 12, 1 << 5
OTHER = 1  # the agent's "some other flag"


def test_p_line_parses_into_runs():
    p = parse_line(f"P 120 7 1024 {BUDDY | UPTODATE:x},{BUDDY:x}*1023,{ANON | LRU:x}*512,1\n")
    assert p == PageFlags(120, 7, 1024, ((BUDDY | UPTODATE, 1), (BUDDY, 1023), (ANON | LRU, 512), (OTHER, 1)))
    assert p.frames == 1537


@pytest.mark.parametrize("line", ["P 1 2 0", "P 1 2 0 zz*3", "P 1 2 0 400*0", "P 1 2 0 400*x", "P 1 2 x 400",
                                  "P 1 2 0 400 extra"])
def test_bad_p_lines_are_protocol_errors(line):
    with pytest.raises(VmProtocolError, match="agent line"):
        parse_line(line)


def _guest_words() -> np.ndarray:
    """2048 frames: a reported order-10 block, 512 anonymous pages, an unreported order-9 block."""
    words = np.zeros(2048, dtype=np.uint64)
    words[:1024] = BUDDY
    words[0] = BUDDY | UPTODATE
    words[1024:1536] = ANON | LRU
    words[1536:] = BUDDY
    return words


def _parts(words: np.ndarray, per_line: int = 2) -> list[PageFlags]:
    """Runs as the agent sends them, a few per line."""
    runs, start = [], 0
    edges = np.flatnonzero(np.diff(words)) + 1
    for end in list(edges) + [len(words)]:
        runs.append((int(words[start]), int(end - start)))
        start = end
    parts, pfn = [], 0
    for i in range(0, len(runs), per_line):
        chunk = tuple(runs[i:i + per_line])
        parts.append(PageFlags(0, 5, pfn, chunk))
        pfn += sum(n for _, n in chunk)
    return parts


def _ack(frames: int, **extra: str) -> Ack:
    return Ack(5, 0, 10, True, {"frames": str(frames), "runs": "4", "lines": "2", "read_ms": "9",
                                "memfree_kib": "6144", "before": "0,0,0,0,0,0,0,0,0,1,1",
                                "after": "0,0,0,0,0,0,0,0,0,1,1", **extra})


def test_runs_rebuild_every_word_and_missing_lines_are_refused():
    words = _guest_words()
    parts = _parts(words, per_line=1)
    assert np.array_equal(guestmap.words_from_runs(parts, 2048), words)
    assert np.array_equal(guestmap.words_from_runs(_parts(words, per_line=3), 2048), words)
    with pytest.raises(VmProtocolError, match="starts at frame 1024, expected 1 "):
        guestmap.words_from_runs([parts[0], parts[2]])            # the middle line lost
    with pytest.raises(VmProtocolError, match="agent read 4096"):
        guestmap.words_from_runs(parts, 4096)                    # fewer frames than the ack says


def test_guest_snapshot_from_the_agent_is_the_local_decoders():
    words = _guest_words()
    snap = guestmap.snapshot_from(_ack(2048), _parts(words), block_order=9, kernel_release="6.1.0-57-amd64")
    counts, largest, by_order, frames = physmap.summarise([(0, words)], 9)
    assert np.array_equal(snap.counts, counts) and frames == snap.pfn_end == 2048
    assert list(snap.counts[:, C.FREE_REPORTED]) == [512, 512, 0, 0]
    assert list(snap.counts[:, C.ANON]) == [0, 0, 512, 0] and snap.counts[3, C.FREE] == 512
    assert snap.free_reported_kib == 4096 and snap.memfree_kib == 6144
    assert snap.buddy_after == (0,) * 9 + (1, 1) and snap.free_pages_by_order() == (0,) * 9 + (512, 1024)


def test_frames_marked_ours_by_the_agent_are_the_maps_ours():
    """`pageflags ours`: bit 62 on the alloc buffer's frames (agent.c PAGEFLAGS_OURS) becomes the ours class,
    the local run's class for the workload's PFNs; the other classes are decoded as without the mark."""
    words = _guest_words()
    marked = words.copy()
    marked[1024:1280] |= guestmap.OURS_BIT                       # half the anonymous pages are the buffer's
    snap = guestmap.snapshot_from(_ack(2048, ours_pages="256"), _parts(marked), block_order=9)
    assert list(snap.counts[:, C.OURS]) == [0, 0, 256, 0] and list(snap.counts[:, C.ANON]) == [0, 0, 256, 0]
    assert list(snap.counts[:, C.FREE_REPORTED]) == [512, 512, 0, 0]
    plain = guestmap.snapshot_from(_ack(2048), _parts(words), block_order=9)
    assert plain.pages(C.OURS) == 0 and np.array_equal(np.delete(snap.counts, [C.OURS, C.ANON], axis=1),
                                                        np.delete(plain.counts, [C.OURS, C.ANON], axis=1))


def test_the_agent_documents_and_marks_ours_with_the_bit_guestmap_decodes():
    from pathlib import Path
    source = (Path(guestmap.__file__).parent / "agent.c").read_text(encoding="utf-8")
    assert "pageflags [ours]" in source and "#define PAGEFLAGS_OURS KPF_BIT(62)" in source
    assert int(guestmap.OURS_BIT) == 1 << 62


def _pagemap(present: np.ndarray, swapped: np.ndarray | None = None) -> bytes:
    entries = np.where(present, np.uint64(1 << 63) | np.uint64(0x1234), np.uint64(0))
    if swapped is not None:
        entries = entries | np.where(swapped, np.uint64(1 << 62), np.uint64(0))
    return entries.astype("<u8").tobytes()


def test_fold_counts_present_and_swapped_pages_per_block():
    present = np.zeros(1024 + 100, dtype=bool)        # two blocks of order 9 and a short third
    present[3] = True                                # one page keeps block 0 resident
    present[1024:1124] = True                        # the short block wholly resident
    swapped = np.zeros_like(present)
    swapped[600:610] = True
    h = hostmap.fold(_pagemap(present, swapped), block_order=9)
    assert list(h.resident_pages) == [1, 0, 100] and list(h.swapped_pages) == [0, 10, 0]
    assert list(h.resident) == [True, False, True] and h.resident_kib == 404 and h.pages == 1124


MAPS = """\
5600-5700 r--p 00000000 fe:00 2170935                    /usr/bin/qemu-system-x86_64
561dee6c6000-561defb8c000 rw-p 00000000 00:00 0                          [heap]
7f192fe00000-7f19afe00000 rw-p 00000000 00:00 0 
7f19b0000000-7f19effff000 rwxp 00000000 00:00 0 
7f19fd900000-7f19fda00000 rw-p 00000000 00:00 0 
"""


def test_guest_ram_is_the_one_anonymous_mapping_of_its_size():
    assert hostmap.parse_ram_mapping(MAPS, 2 << 30) == (0x7f192fe00000, 0x7f19afe00000)
    with pytest.raises(hostmap.HostMapError, match="0 anonymous"):
        hostmap.parse_ram_mapping(MAPS, 1 << 30)
    twice = MAPS + "7f1a00000000-7f1a80000000 rw-p 00000000 00:00 0 \n"
    with pytest.raises(hostmap.HostMapError, match="2 anonymous"):
        hostmap.parse_ram_mapping(twice, 2 << 30)


def test_a_guest_above_the_pci_hole_is_refused():
    with pytest.raises(hostmap.HostMapError, match="at most 3072 MiB"):
        hostmap.read_host_map(1, 4 << 30)


def test_agreement_counts_both_sides():
    guest = guestmap.snapshot_from(_ack(2048), _parts(_guest_words()), block_order=9)
    # blocks: 0,1 reported; 2 anon; 3 free not reported. Host: holds block 1 (a mismatch) and 2.
    present = np.zeros(2048, dtype=bool)
    present[512 + 7] = True
    present[1024:1536] = True
    a = hostmap.agreement(guest, hostmap.fold(_pagemap(present), 9))
    assert (a.both, a.guest_only, a.host_only, a.host_only_free) == (1, 1, 1, 1)
    assert a.over_either == pytest.approx(1 / 3) and a.over_all == pytest.approx(2 / 4)
    present[512 + 7] = False
    a = hostmap.agreement(guest, hostmap.fold(_pagemap(present), 9))
    assert (a.both, a.guest_only, a.host_only) == (2, 0, 1) and a.over_either == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="same block_order"):
        hostmap.agreement(guest, hostmap.fold(_pagemap(present), 5))


def test_holes_are_runs_of_empty_blocks_in_kib():
    present = np.ones(32 * 16, dtype=bool)           # 16 blocks of order 5 (128 KiB)
    present[0:32] = False                             # a 128 KiB hole at the start
    present[5 * 32:8 * 32] = False                    # a 384 KiB hole
    present[15 * 32:] = False                         # a 128 KiB hole at the end
    present[10 * 32 + 3] = False                      # one page: the block is still resident
    h = hostmap.fold(_pagemap(present), block_order=5)
    assert list(hostmap.hole_sizes_kib(h)) == [128, 384, 128]
    assert list(hostmap.hole_sizes_kib(hostmap.fold(_pagemap(np.ones(64, dtype=bool)), 5))) == []


def test_side_by_side_chart_puts_the_hosts_blocks_beside_the_guests():
    from reclaimlab.present import physmap_chart
    guest = guestmap.snapshot_from(_ack(2048), _parts(_guest_words()), block_order=9)
    present = np.zeros(2048, dtype=bool)
    present[512 + 7] = True                           # block 1: a page
    present[1024:1536] = True                         # block 2: all of it
    host = hostmap.fold(_pagemap(present), 9)
    assert list(physmap_chart.host_categories(host)) == [0, 1, 2, 0]
    spec = physmap_chart.guest_host_chart(guest, host, columns=2).to_dict()
    left, right = spec["hconcat"]
    assert [(r["row"], r["col"], r["col2"], r["what"]) for r in right["data"]["values"]] == [
        (0, 0, 1, "the host holds none of it"), (0, 1, 2, "the host holds part of it"),
        (1, 0, 1, "the host holds all of it"), (1, 1, 2, "the host holds none of it")]
    assert left["data"]["values"][0]["what"] == "free, reported to the host"   # one layer: its data sits on the chart
    assert "1 wholly held by the host, 1 in part, 2 not at all" in spec["description"]
    with pytest.raises(ValueError, match="same block_order"):
        physmap_chart.guest_host_chart(guest, hostmap.fold(_pagemap(present), 5))
