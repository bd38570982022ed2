"""The map of physical memory: kpageflags words decoded on synthetic frames, the reader on a fake /proc,
the compact encoding (and hostile encodings refused), and live on this guest against /proc/buddyinfo."""
from __future__ import annotations

import base64
import json
import os
import zlib
from pathlib import Path

import numpy as np
import pytest

from reclaimlab.probe import physmap, procfs, sources
from reclaimlab.probe.physmap import FrameClass as C
from reclaimlab.recording import physmap as codec
from reclaimlab.recording.recording import RecordingError

UPTODATE, LRU, SLAB, BUDDY, ANON = 1 << 3, 1 << 5, 1 << 7, 1 << 10, 1 << 12
NOPAGE, OFFLINE, PGTABLE, RESERVED = 1 << 20, 1 << 23, 1 << 26, 1 << 32
REPORTED = BUDDY | UPTODATE


def words(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.uint64)


def free_of(n: int, free: list[range], heads: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    f = np.zeros(n, dtype=bool)
    for r in free:
        f[r.start:r.stop] = True
    h = np.zeros(n, dtype=bool)
    h[list(heads)] = True
    return f, h


# --- classify: one class per frame ---

def test_classify_gives_every_class_its_frames():
    w = words(0, LRU | UPTODATE, LRU | ANON, SLAB | ANON, PGTABLE, RESERVED, BUDDY, REPORTED, NOPAGE, OFFLINE,
              LRU | 1 << 14)  # the last: shmem (swap-backed, not anonymous) counts as page cache, as in Cached
    assert physmap.classify(w).tolist() == [C.NO_FLAGS, C.FILE, C.ANON, C.SLAB, C.PGTABLE, C.KERNEL,
                                            C.FREE, C.FREE, C.HOLE, C.HOLE, C.FILE]


def test_classify_outside_system_ram_is_a_hole_whatever_the_flags():
    ram = np.array([True, False, True])
    assert physmap.classify(words(0, 0, LRU), ram).tolist() == [C.NO_FLAGS, C.HOLE, C.FILE]


def test_words_from_bytes_drops_a_torn_last_word():
    data = np.array([BUDDY, LRU], dtype="<u8").tobytes() + b"\x01\x02\x03"
    assert physmap.words_from_bytes(data).tolist() == [BUDDY, LRU]


# --- free_blocks: the order of each free block, derived ---

def test_a_whole_aligned_run_is_one_block_of_the_largest_order():
    order, reported, counts = physmap.free_blocks(*free_of(1024, [range(0, 1024)]))
    assert counts[0].tolist() == [0] * 10 + [1] and not reported.any() and (order == 10).all()


def test_an_unaligned_run_splits_into_the_aligned_blocks_the_allocator_would_hold():
    # frames 3..12 free: 3 (order 0), 4-7 and 8-11 (order 2), 12 (order 0)
    order, _reported, counts = physmap.free_blocks(*free_of(16, [range(3, 13)]), max_order=3)
    assert counts[0].tolist() == [2, 0, 2, 0]
    assert order[:14].tolist() == [-1, -1, -1, 0, 2, 2, 2, 2, 2, 2, 2, 2, 0, -1]


def test_blocks_longer_than_the_largest_order_are_clipped_to_it():
    _o, _r, counts = physmap.free_blocks(*free_of(2048, [range(0, 2048)]), max_order=10)
    assert counts[0, 10] == 2 and counts.sum() == 2


def test_a_reported_head_starts_a_block_and_marks_all_its_frames():
    # free 0..1023; only the second half's head reads BUDDY|UPTODATE: two order-9 blocks, not one of order 10
    order, reported, counts = physmap.free_blocks(*free_of(1024, [range(0, 1024)], heads=(512,)))
    assert counts[0, 9] == 1 and counts[1, 9] == 1 and counts[:, 10].sum() == 0
    assert not reported[:512].any() and reported[512:].all()


def test_a_reported_head_inside_a_small_run_splits_it_at_the_head():
    _o, reported, counts = physmap.free_blocks(*free_of(8, [range(0, 4)], heads=(2,)), max_order=3)
    assert counts[0].tolist() == [0, 1, 0, 0] and counts[1].tolist() == [0, 1, 0, 0]
    assert reported.tolist() == [False, False, True, True, False, False, False, False]


def test_free_blocks_refuses_a_chunk_that_could_cut_a_block():
    with pytest.raises(ValueError, match="multiple of 2\\*\\*10"):
        physmap.free_blocks(*free_of(1000, []))


# --- summarise: per block counts, over chunks ---

def guest_words() -> np.ndarray:
    """4096 frames: an anon block, a page-cache block, a reported free order-10 block, a half free block
    (unreported order 8), a hole of 512, then kernel and flagless frames."""
    w = np.zeros(4096, dtype=np.uint64)
    w[0:512] = LRU | ANON
    w[512:1024] = LRU
    w[1024:2048] = BUDDY
    w[1024] = REPORTED
    w[2048:2304] = BUDDY
    w[2304:2560] = SLAB
    w[2560:3072] = NOPAGE
    w[3072:3100] = RESERVED
    return w


def summarise(w: np.ndarray, chunk: int = 2048, **kw):
    chunks = [(lo, w[lo:lo + chunk]) for lo in range(0, len(w), chunk)]
    return physmap.summarise(chunks, **kw)


def test_summarise_counts_pages_of_each_class_per_block():
    counts, largest, by_order, frames = summarise(guest_words(), block_order=9)
    assert frames == 4096 and counts.shape == (8, len(physmap.CLASSES)) and counts.dtype == np.uint16
    assert counts[0, C.ANON] == 512 and counts[1, C.FILE] == 512
    assert counts[2, C.FREE_REPORTED] == counts[3, C.FREE_REPORTED] == 512
    assert counts[4, C.FREE] == 256 and counts[4, C.SLAB] == 256
    assert counts[5, C.HOLE] == 512 and counts[6, C.KERNEL] == 28 and counts[6, C.NO_FLAGS] == 484
    assert largest.tolist() == [-1, -1, 10, 10, 8, -1, -1, -1]
    assert by_order[1, 10] == 1 and by_order[0, 8] == 1 and by_order.sum() == 2


def test_any_block_order_sums_to_the_same_pages():
    small, _l, _b, _f = summarise(guest_words(), block_order=4)
    large, _l, _b, _f = summarise(guest_words(), block_order=12, chunk=4096)
    assert small.shape == (256, len(physmap.CLASSES)) and large.shape == (1, len(physmap.CLASSES))
    assert small.sum(axis=0).tolist() == large.sum(axis=0).tolist()


def test_a_truncated_final_chunk_counts_only_the_frames_it_has():
    w = guest_words()[:3000]  # not a multiple of the block (512) nor of the largest buddy order (1024)
    counts, largest, _b, frames = summarise(w, chunk=1024, block_order=9)
    assert frames == 3000 and len(counts) == 6
    assert counts.sum(axis=1).tolist() == [512] * 5 + [3000 - 5 * 512]


def test_ours_marks_the_given_frames_unless_they_are_free_now():
    w = guest_words()
    counts, *_ = summarise(w, block_order=9, ours_pfns=[5, 6, None, 1500, 6])
    assert counts[0, C.OURS] == 2 and counts[0, C.ANON] == 510
    assert counts[2, C.OURS] == 0  # pfn 1500 is free: it was freed after we read where it was


def test_summarise_refuses_chunks_out_of_order():
    w = guest_words()
    with pytest.raises(ValueError, match="contiguous"):
        physmap.summarise([(1024, w[1024:2048]), (0, w[:1024])])


def test_block_order_out_of_range_names_the_range():
    with pytest.raises(ValueError, match="from 0 to 20"):
        physmap.check_block_order(21)
    with pytest.raises(ValueError, match="whole number"):
        physmap.check_block_order(9.5)


# --- the Snapshot's sums ---

def snapshot(**facts) -> physmap.Snapshot:
    counts, largest, by_order, frames = summarise(guest_words(), block_order=9)
    return physmap.Snapshot(counts, largest, by_order, 4096, 9, frames, "2026-12-06T07:00:00.000000Z", "6.18.44",
                            **facts)


def test_snapshot_sums_reported_and_unreported_free_memory():
    snap = snapshot()
    assert snap.free_reported_kib == 1024 * 4
    assert snap.free_unreported_kib_by_order() == {8: 256 * 4}
    assert snap.free_pages_by_order()[10] == 1024 and snap.blocks == 8
    assert snap.dominant.tolist()[:4] == [C.ANON, C.FILE, C.FREE_REPORTED, C.FREE_REPORTED]
    assert snap.has_ours.sum() == 0


def test_snapshot_names_free_memory_outside_the_buddy_lists():
    snap = snapshot(memfree_kib=100_000, buddy_after=(0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1), per_cpu_pages=100)
    assert snap.outside_buddy_kib == 100_000 - (256 + 1024 + 100) * 4
    assert snap.why_no_outside_buddy() is None


def test_snapshot_says_why_it_cannot_tell_memory_outside_the_buddy_lists():
    snap = snapshot(memfree_kib=100_000, buddy_after=(1,))
    assert snap.outside_buddy_kib is None
    assert "per-CPU lists" in snap.why_no_outside_buddy()


# --- the reader, on a fake /proc ---

def fake_proc(tmp_path, w: np.ndarray, torn: bytes = b"") -> sources.Roots:
    proc = tmp_path / "proc"
    (proc / "sys" / "kernel").mkdir(parents=True)
    (proc / "kpageflags").write_bytes(w.astype("<u8").tobytes() + torn)
    (proc / "sys" / "kernel" / "osrelease").write_text("6.18.44-test\n")
    (proc / "meminfo").write_text("MemTotal: 16384 kB\nMemFree: 9000 kB\n")
    (proc / "buddyinfo").write_text("Node 0, zone   Normal  0 0 0 0 0 0 0 0 1 0 1\n")
    (proc / "zoneinfo").write_text("Node 0, zone   Normal\n  pagesets\n    cpu: 0\n              count: 12\n")
    return sources.Roots(proc, tmp_path / "sys")


def test_read_snapshot_reads_a_file_in_chunks_and_the_facts_around_it(tmp_path):
    roots = fake_proc(tmp_path, guest_words(), torn=b"\x00\x04")
    snap = physmap.read_snapshot(roots, chunk_pages=1024)
    expected, *_ = summarise(guest_words(), block_order=9)
    assert (snap.counts == expected).all() and snap.pfn_end == 4096
    assert snap.kernel_release == "6.18.44-test" and snap.memfree_kib == 9000 and snap.per_cpu_pages == 12
    assert snap.buddy_before == snap.buddy_after and not snap.ram_known
    assert snap.outside_buddy_kib == 9000 - (1280 + 12) * snap.page_bytes // 1024


def test_read_snapshot_without_kpageflags_says_what_is_missing(tmp_path):
    roots = fake_proc(tmp_path, guest_words())
    (roots.proc / "kpageflags").unlink()
    with pytest.raises(physmap.MapUnavailable, match="kpageflags: not found.*recorded maps instead"):
        physmap.read_snapshot(roots)


def test_read_snapshot_not_permitted_is_a_permission_error_naming_root(tmp_path, monkeypatch):
    roots = fake_proc(tmp_path, guest_words())

    def denied(path, flags, *a):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(physmap.os, "open", denied)
    with pytest.raises(PermissionError, match="permission denied: mapping physical memory needs root"):
        physmap.read_snapshot(roots)


def test_parse_iomem_keeps_top_level_system_ram_only():
    text = ("00000000-00000fff : Reserved\n00001000-0009fbff : System RAM\n"
            "00100000-bfffffff : System RAM\n  01000000-0225b13f : Kernel code\n"
            "c0001000-eebfffff : PCI Bus 0000:00\n100000000-63fffffff : System RAM\n")
    assert procfs.parse_iomem_ram(text) == [(0x1000, 0x9fbff), (0x100000, 0xbfffffff), (0x100000000, 0x63fffffff)]
    assert procfs.parse_iomem_ram("00000000-00000000 : System RAM\n") == []  # hidden from a user: unknown


def test_parse_iomem_names_a_line_that_is_not_iomem():
    with pytest.raises(procfs.ProcParseError, match="line 1"):
        procfs.parse_iomem_ram("System RAM\n")


# --- the compact encoding ---

def test_encode_decode_round_trip_keeps_every_array_and_fact():
    snap = snapshot(memfree_kib=9000, buddy_before=(1, 2), buddy_after=(2, 1), per_cpu_pages=7, ram_known=True)
    back = codec.decode(codec.encode(snap))
    assert (back.counts == snap.counts).all() and (back.free_order == snap.free_order).all()
    assert (back.free_blocks == snap.free_blocks).all()
    for name in ("page_bytes", "block_order", "pfn_end", "time_utc", "kernel_release", "memfree_kib",
                 "buddy_before", "buddy_after", "per_cpu_pages", "ram_known"):
        assert getattr(back, name) == getattr(snap, name), name


def test_encode_of_a_24_gib_guest_at_2_mib_blocks_fits_in_100_kb():
    # 12,800 blocks, mixed: a fragmented stretch where every block holds several classes
    rng = np.random.default_rng(1)
    w = np.where(rng.random(6_553_600) < 0.5, BUDDY, LRU).astype(np.uint64)
    w[:1 << 20] = LRU | ANON
    w[3 << 20:] = 0
    counts, largest, by_order, frames = physmap.summarise([(0, w)], block_order=9)
    snap = physmap.Snapshot(counts, largest, by_order, 4096, 9, frames, "t", "k")
    text = codec.encode(snap)
    assert len(text) <= 100_000, len(text)
    assert (codec.decode(text).counts == counts).all()


def doc_of(snap=None) -> dict:
    return json.loads(codec.encode(snap or snapshot()))


def refused(doc_or_text, match: str) -> None:
    text = doc_or_text if isinstance(doc_or_text, (str, bytes)) else json.dumps(doc_or_text)
    with pytest.raises(RecordingError, match=match):
        codec.decode(text, source="maps/x.json")


def test_hostile_oversized_text_is_refused_before_parsing():
    """hostile-inputs review, case 12: a file of any size is refused by its length, before it is parsed."""
    refused(" " * (codec.MAX_TEXT_BYTES + 1), "maps/x.json: .*more than a map's bound")


def test_hostile_deep_nesting_is_refused_not_a_recursion_error():
    """hostile-inputs review, case 11: JSON nested 100,000 deep is a clear error, not a RecursionError."""
    refused("[" * 100_000 + "]" * 100_000, "nested too deep")


def test_hostile_integer_of_thousands_of_digits_is_refused():
    """hostile-inputs review, case 12: a number of 5,000 digits (past Python's int limit) is a clear error."""
    refused('{"pfn_end": ' + "9" * 5000 + "}", "not valid JSON")


def test_hostile_nan_is_refused():
    """hostile-inputs review, case 9: NaN where a number belongs is refused, not loaded."""
    doc = doc_of()
    text = json.dumps(doc).replace('"memfree_kib":null', '"memfree_kib":NaN').replace('"memfree_kib": null', '"memfree_kib": NaN')
    refused(text, "NaN is not a number JSON allows")


def test_hostile_negative_or_wrong_type_facts_are_refused():
    """hostile-inputs review, case 9: a negative size or a fact of the wrong type names the field."""
    doc = doc_of()
    doc["pfn_end"] = -1
    refused(doc, "pfn_end is '-1'")
    doc = doc_of()
    doc["block_order"] = "9"
    refused(doc, "block_order")
    doc = doc_of()
    doc["kernel_release"] = ["x"]
    refused(doc, "kernel_release must be a string")


def test_hostile_decompression_bomb_stops_at_the_declared_size():
    """hostile-inputs review, case 12: zlib data that inflates past its declared shape is cut off and refused."""
    doc = doc_of()
    bomb = zlib.compress(b"\0" * (50 << 20), 9)  # 50 MB of zeros in ~50 KB
    doc["counts_by_class"]["zlib_base64"] = base64.b64encode(bomb).decode()
    refused(doc, "counts_by_class holds more bytes than its shape")


def test_hostile_huge_declared_map_is_refused_before_decompressing():
    """hostile-inputs review, case 12: a map claiming 2**52 frames is refused by its size, nothing inflated."""
    doc = doc_of()
    doc["pfn_end"] = 1 << 52
    refused(doc, "has shape|more than the bound")


def test_hostile_counts_that_do_not_add_up_are_refused():
    """hostile-inputs review, case 9: a block whose pages by class do not add up to its size is refused."""
    snap = snapshot()
    counts = snap.counts.copy()
    counts[3, C.ANON] += 1
    doc = doc_of(physmap.Snapshot(counts, snap.free_order, snap.free_blocks, 4096, 9, snap.pfn_end, "t", "k"))
    refused(doc, "block 3 holds 513 pages")


def test_hostile_free_order_out_of_range_is_refused():
    """hostile-inputs review, case 9: a free block order above the largest the map knows is refused."""
    snap = snapshot()
    order = snap.free_order.copy()
    order[2] = 99
    doc = doc_of(physmap.Snapshot(snap.counts, order, snap.free_blocks, 4096, 9, snap.pfn_end, "t", "k"))
    refused(doc, "free_order outside -1..10")


def test_hostile_bad_base64_or_other_format_is_refused():
    """hostile-inputs review, case 9: an array that is not base64, or another file's JSON, is named as such."""
    doc = doc_of()
    doc["free_order"]["zlib_base64"] = "***"
    refused(doc, "free_order is not zlib data in base64")
    refused({"experiment": "calloc-reclaim"}, "not a map of physical memory")
    doc = doc_of()
    doc["version"] = 2
    refused(doc, "version 2; this reclaimlab reads version 1")


# --- live, on this guest ---

def _root_with_kpageflags() -> str | None:
    if os.geteuid() != 0:
        return "needs root: /proc/kpageflags is root's only"
    if not os.access("/proc/kpageflags", os.R_OK):
        return "/proc/kpageflags is not readable here"
    return None


def _reported_heads() -> int:
    fd = os.open("/proc/kpageflags", os.O_RDONLY)
    try:
        return sum(int(np.count_nonzero((w & REPORTED) == REPORTED))
                   for _lo, w in physmap.read_chunks(fd))
    finally:
        os.close(fd)


@pytest.mark.live
def test_live_map_agrees_with_buddyinfo_and_reported_heads():
    """On this guest: free pages by order as in /proc/buddyinfo taken around the map, within what changed
    between the two readings plus 2 % and 1 MiB (the map walks every frame over ~1 s, and small free blocks
    come and go meanwhile: a CI run here saw order 0 at 2,173 pages against 2,122 and 2,110 around it);
    reported blocks as the BUDDY|UPTODATE heads read separately."""
    why = _root_with_kpageflags()
    if why:
        pytest.skip(why)
    snap = physmap.read_snapshot()
    before, after = snap.buddy_before, snap.buddy_after
    assert before is not None and after is not None
    mapped = snap.free_pages_by_order()
    for k in range(len(before)):
        b, a = before[k] << k, after[k] << k
        slack = abs(b - a) + 0.02 * max(b, a) + (2 << k) + 256  # 256 pages: 1 MiB of churn during the read
        assert abs(mapped[k] - (a + b) / 2) <= slack, (k, mapped[k], b, a)
    heads = _reported_heads()
    mapped_reported = int(snap.free_blocks[1].sum())
    assert abs(mapped_reported - heads) <= 0.05 * heads + 32, (mapped_reported, heads)
    memfree_pages = snap.memfree_kib * 1024 // snap.page_bytes
    if abs(memfree_pages - snap.buddy_free_pages) > 0.01 * memfree_pages:
        outside = snap.outside_buddy_kib
        assert outside is not None, snap.why_no_outside_buddy()
        # what MemFree counts beyond the free lists has no flags in the map: it is among NO_FLAGS frames
        assert snap.class_kib()[C.NO_FLAGS] >= 0.9 * outside


@pytest.mark.live
def test_live_map_of_this_guest_encodes_in_100_kb():
    why = _root_with_kpageflags()
    if why:
        pytest.skip(why)
    snap = physmap.read_snapshot()
    text = codec.encode(snap)
    assert len(text) <= 100_000
    assert (codec.decode(text).counts == snap.counts).all()


# --- the picture and `reclaimlab map` ---

def test_chart_draws_runs_of_one_class_and_outlines_ours():
    from reclaimlab.present import physmap_chart
    counts, largest, by_order, frames = summarise(guest_words(), block_order=9, ours_pfns=[5])
    snap = physmap.Snapshot(counts, largest, by_order, 4096, 9, frames, "2026-12-06T07:00:00.000000Z", "k")
    spec = physmap_chart.physmap_chart(snap, columns=4).to_dict()
    runs = spec["layer"][0]["data"]["values"]
    # 8 blocks on 2 lines of 4: ours (block 0 is anon, outlined separately), file, reported x2 | free, hole, no flags x2
    assert [(r["row"], r["col"], r["col2"]) for r in runs] == [(0, 0, 1), (0, 1, 2), (0, 2, 4), (1, 0, 1), (1, 1, 2), (1, 2, 4)]
    assert spec["layer"][1]["data"]["values"] == [{"col": 0, "col2": 1, "row": 0}]
    assert spec["layer"][0]["encoding"]["color"]["scale"]["range"][C.ANON] == physmap_chart.STACK_COLORS[0]
    text = physmap_chart.alt_text(snap)
    assert "8 blocks of 2.00 MiB" in text and "free, reported to the host 2" in text and "1 blocks, outlined" in text


def test_chart_refuses_an_image_type_it_cannot_write(tmp_path):
    from reclaimlab.present import physmap_chart
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        physmap_chart.save_image(snapshot(), tmp_path / "map.jpg")


def _cli(*args: str):
    from click.testing import CliRunner
    from reclaimlab.cli.app import main
    return CliRunner().invoke(main, ["map", *args])


def test_map_where_kpageflags_is_missing_says_why_and_exits_2(tmp_path):
    (tmp_path / "proc").mkdir()
    result = _cli("--proc-root", str(tmp_path / "proc"))
    assert result.exit_code == 2 and result.exc_info[0] is SystemExit
    assert "kpageflags: not found" in result.output and "recorded maps instead" in result.output
    assert "Traceback" not in result.output


def test_map_not_root_says_it_needs_root_and_exits_2(tmp_path, monkeypatch):
    roots = fake_proc(tmp_path, guest_words())

    def denied(path, flags, *a):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(physmap.os, "open", denied)
    result = _cli("--proc-root", str(roots.proc))
    assert result.exit_code == 2 and "permission denied: mapping physical memory needs root" in result.output
    assert "Traceback" not in result.output


def test_map_refuses_bad_options_before_reading(tmp_path):
    assert _cli("--order", "30").exit_code == 2
    assert "--watch 0.1: must be at least 1" in _cli("--watch", "0.1").output
    assert ".png or .svg" in _cli("--out", str(tmp_path / "map.jpg")).output
    assert "does not exist" in _cli("--out", str(tmp_path / "no" / "map.png")).output


def test_map_of_a_fake_proc_prints_a_letter_per_block_and_a_legend(tmp_path):
    roots = fake_proc(tmp_path, guest_words())
    result = _cli("--proc-root", str(roots.proc), "--columns", "4")
    assert result.exit_code == 0, result.output
    grid = [line.split()[-1] for line in result.output.splitlines()[1:3]]
    assert grid == ["acrr", "f-.."]  # piped: letters, no colour escapes
    assert "\x1b[" not in result.output and "a anonymous: 2.00 MiB" in result.output


@pytest.mark.live
def test_live_map_draws_this_guest_and_writes_svg_and_png(tmp_path):
    why = _root_with_kpageflags()
    if why:
        pytest.skip(why)
    for name in ("map.svg", "map.png"):
        result = _cli("--out", str(tmp_path / name))
        assert result.exit_code == 0, result.output
        assert f"map written to {tmp_path / name}" in result.output and "free, reported to the host" in result.output
    assert (tmp_path / "map.svg").read_text().startswith("<svg")
    assert (tmp_path / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.live
def test_live_map_as_an_unprivileged_user_says_it_needs_root():
    """The same command, the same guest, as `nobody`: one sentence naming root, exit 2, no traceback."""
    import shutil
    import subprocess
    import sys
    if _root_with_kpageflags() is not None or shutil.which("runuser") is None:
        pytest.skip("needs root (to drop to nobody) and runuser")
    lib = str(Path(__file__).resolve().parents[1] / "lib")
    out = subprocess.run(["runuser", "-u", "nobody", "--", "env", f"PYTHONPATH={lib}", "HOME=/tmp", sys.executable,
                          "-c", "from reclaimlab.cli.app import main; main(['map'])"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "/proc/kpageflags: permission denied: mapping physical memory needs root" in out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
