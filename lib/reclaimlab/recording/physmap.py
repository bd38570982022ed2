"""A map of physical memory (probe.physmap.Snapshot) as compact JSON, for recordings.

    text = encode(snapshot)          # ~20-60 KB for a 24 GiB guest at 2 MiB blocks
    snapshot = decode(text, source="maps/after_free.json")

The per-block arrays are stored class by class (long runs of one value), zlib-compressed, in base64;
the facts are plain JSON. Readable with the standard library and numpy alone (no pickle, no .npz).

A recording may come from anywhere, so `decode` trusts nothing: it bounds the text before parsing,
each array's size before decompressing (from the shape it is told, itself bounded), decompresses
no further than that size, and checks that every block's pages add up. Any problem is a
RecordingError naming the file and what is wrong.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..probe.physmap import CLASSES, MAX_BLOCK_ORDER, FrameClass, Snapshot
from ..probe.residency import HostMap
from .errors import RecordingError

FORMAT = "reclaimlab-physmap"
VERSION = 1
MAX_TEXT_BYTES = 8 << 20        # a 24 GiB guest's map is < 100 KB; 8 MiB leaves room for 2 TiB at 2 MiB blocks
MAX_ARRAY_BYTES = 64 << 20      # the largest array decode will build, counted before decompressing
MAX_ORDER_LIMIT = 20            # buddy orders a kernel can have (MAX_PAGE_ORDER is at most 10 in practice)
MAX_TEXT_FIELD = 200            # kernel release, time: short strings
ZLIB_LEVEL = 9
_DTYPES = {"|u1", "<u2", "<u4", "|i1"}
_FIX = "the file is not a map written by reclaimlab, or was cut or edited; take the map again"


def _pack(a: np.ndarray) -> dict[str, Any]:
    a = np.ascontiguousarray(a)
    return {"dtype": a.dtype.str, "shape": list(a.shape),
            "zlib_base64": base64.b64encode(zlib.compress(a.tobytes(), ZLIB_LEVEL)).decode("ascii")}


def encode(snap: Snapshot) -> str:
    """The snapshot as one JSON text (ASCII)."""
    return json.dumps(to_doc(snap), separators=(",", ":"))


def to_doc(snap: Snapshot) -> dict[str, Any]:
    """The snapshot as a JSON object (what `encode` writes), for a file that holds several."""
    return {
        "format": FORMAT, "version": VERSION,
        "classes": [c.name for c in CLASSES],
        "page_bytes": snap.page_bytes, "block_order": snap.block_order, "pfn_end": snap.pfn_end,
        "time_utc": snap.time_utc, "kernel_release": snap.kernel_release,
        "memfree_kib": snap.memfree_kib, "per_cpu_pages": snap.per_cpu_pages, "ram_known": snap.ram_known,
        "buddy_before": None if snap.buddy_before is None else list(snap.buddy_before),
        "buddy_after": None if snap.buddy_after is None else list(snap.buddy_after),
        "free_blocks": snap.free_blocks.tolist(),
        # class-major: each class's column of block counts is mostly one value, which zlib folds to little
        "counts_by_class": _pack(snap.counts.T),
        "free_order": _pack(snap.free_order.astype(np.int8)),
    }


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _parse(text: str | bytes, source: str, bound: int = MAX_TEXT_BYTES) -> Any:
    if len(text) > bound:
        raise RecordingError(f"{source}: {len(text):,} bytes, more than a map's bound of {bound:,}; {_FIX}")
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise RecordingError(f"{source}: JSON nested too deep to be a map; {_FIX}") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, NaN, an integer of thousands of digits
        raise RecordingError(f"{source}: not valid JSON ({exc}); {_FIX}") from None


def _load(text: str | bytes, source: str) -> dict:
    return _check_format(_parse(text, source), source)


def _check_format(doc: Any, source: str) -> dict:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise RecordingError(f"{source}: not a map of physical memory (no \"format\": \"{FORMAT}\"); {_FIX}")
    if doc.get("version") != VERSION:
        raise RecordingError(f"{source}: map format version {doc.get('version')!r}; this reclaimlab reads "
                             f"version {VERSION}: update reclaimlab, or take the map again")
    return doc


def _int(doc: dict, key: str, source: str, lo: int, hi: int, optional: bool = False) -> int | None:
    value = doc.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise RecordingError(f"{source}: {key} is {str(value)[:40]!r}, expected a whole number from {lo} to {hi}; {_FIX}")
    return value


def _ints(doc: dict, key: str, source: str, length_max: int, optional: bool = True) -> tuple[int, ...] | None:
    value = doc.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, list) or not 0 < len(value) <= length_max or \
            any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 1 << 62 for v in value):
        raise RecordingError(f"{source}: {key} must be a list of at most {length_max} counts (whole numbers >= 0); {_FIX}")
    return tuple(value)


def _text(doc: dict, key: str, source: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or len(value) > MAX_TEXT_FIELD:
        raise RecordingError(f"{source}: {key} must be a string of at most {MAX_TEXT_FIELD} characters; {_FIX}")
    return value


def _unpack(doc: dict, key: str, shape: tuple[int, ...], source: str) -> np.ndarray:
    """The array stored under `key`, which must have this shape: sized before it is decompressed."""
    packed = doc.get(key)
    if not isinstance(packed, dict) or packed.get("dtype") not in _DTYPES or not isinstance(packed.get("zlib_base64"), str):
        raise RecordingError(f"{source}: {key} must hold dtype (one of {sorted(_DTYPES)}), shape and zlib_base64; {_FIX}")
    if packed.get("shape") != list(shape):
        raise RecordingError(f"{source}: {key} has shape {str(packed.get('shape'))[:60]}, expected {list(shape)} "
                             f"from the map's size; {_FIX}")
    dtype = np.dtype(packed["dtype"])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if expected > MAX_ARRAY_BYTES:
        raise RecordingError(f"{source}: {key} would take {expected:,} bytes, more than the bound of "
                             f"{MAX_ARRAY_BYTES:,}; {_FIX}")
    try:
        compressed = base64.b64decode(packed["zlib_base64"], validate=True)
        inflater = zlib.decompressobj()
        raw = inflater.decompress(compressed, expected + 1)  # never more than the shape allows, plus one to detect excess
    except (binascii.Error, ValueError, zlib.error) as exc:
        raise RecordingError(f"{source}: {key} is not zlib data in base64 ({exc}); {_FIX}") from None
    if len(raw) != expected or not inflater.eof or inflater.unconsumed_tail:
        raise RecordingError(f"{source}: {key} holds {'more' if len(raw) > expected else 'fewer'} bytes than its "
                             f"shape {list(shape)} needs ({expected:,}); {_FIX}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def decode(text: str | bytes, source: str = "map") -> Snapshot:
    """A Snapshot from `encode`'s text; RecordingError naming `source` and the problem otherwise."""
    return from_doc(_load(text, source), source)


def from_doc(doc: Any, source: str = "map") -> Snapshot:
    """A Snapshot from `to_doc`'s object, checked as `decode` checks a text."""
    doc = _check_format(doc, source)
    if doc.get("classes") != [c.name for c in CLASSES]:
        raise RecordingError(f"{source}: classes {str(doc.get('classes'))[:120]} are not this reclaimlab's "
                             f"{[c.name for c in CLASSES]}; update reclaimlab, or take the map again")
    page_bytes = _int(doc, "page_bytes", source, 512, 1 << 30)
    block_order = _int(doc, "block_order", source, 0, MAX_BLOCK_ORDER)
    pfn_end = _int(doc, "pfn_end", source, 0, 1 << 52)
    block_pages = 1 << block_order
    blocks = -(-pfn_end // block_pages)
    counts = _unpack(doc, "counts_by_class", (len(CLASSES), blocks), source).T
    free_order = _unpack(doc, "free_order", (blocks,), source)
    free_blocks = doc.get("free_blocks")
    rows = [_ints({"free_blocks": r}, "free_blocks", source, MAX_ORDER_LIMIT + 1, optional=False)
            for r in (free_blocks if isinstance(free_blocks, list) and len(free_blocks) == 2 else [None, None])]
    if len(rows[0]) != len(rows[1]):
        raise RecordingError(f"{source}: free_blocks rows differ in length; {_FIX}")
    max_order = len(rows[0]) - 1
    _check_blocks(counts, free_order, pfn_end, block_pages, max_order, source)
    return Snapshot(np.ascontiguousarray(counts), free_order.copy(), np.array(rows, dtype=np.int64), page_bytes,
                    block_order, pfn_end, _text(doc, "time_utc", source), _text(doc, "kernel_release", source),
                    memfree_kib=_int(doc, "memfree_kib", source, 0, 1 << 52, optional=True),
                    buddy_before=_ints(doc, "buddy_before", source, MAX_ORDER_LIMIT + 1),
                    buddy_after=_ints(doc, "buddy_after", source, MAX_ORDER_LIMIT + 1),
                    per_cpu_pages=_int(doc, "per_cpu_pages", source, 0, 1 << 52, optional=True),
                    ram_known=doc.get("ram_known") is True)


def _check_blocks(counts: np.ndarray, free_order: np.ndarray, pfn_end: int, block_pages: int, max_order: int,
                  source: str) -> None:
    """Every block's pages add up to its size (the last one to what is left); orders in range."""
    if not len(counts):
        return
    sums = counts.sum(axis=1, dtype=np.int64)
    last = pfn_end - (len(counts) - 1) * block_pages
    bad = np.flatnonzero(sums[:-1] != block_pages)
    if len(bad) or sums[-1] != last:
        at = int(bad[0]) if len(bad) else len(counts) - 1
        raise RecordingError(f"{source}: block {at} holds {int(sums[at])} pages by class, not "
                             f"{block_pages if len(bad) else last}; {_FIX}")
    if free_order.min() < -1 or free_order.max() > max_order:
        raise RecordingError(f"{source}: free_order outside -1..{max_order}; {_FIX}")
    has_free = (counts[:, FrameClass.FREE] + counts[:, FrameClass.FREE_REPORTED]) > 0
    if np.any(has_free != (free_order >= 0)):
        raise RecordingError(f"{source}: free_order disagrees with the free pages of block "
                             f"{int(np.flatnonzero(has_free != (free_order >= 0))[0])}; {_FIX}")


# --- the maps of one recording: physmap.json, one map per step of the run --------------------------------

STEPS_FORMAT = "reclaimlab-physmap-steps"
STEPS_VERSION = 1
STEPS_FILE = "physmap.json"
MAX_STEPS = 64                      # a run takes a handful (before, touched, freed, ...); 64 is far above any
MAX_STEPS_FILE_BYTES = 16 << 20     # ~11-60 KB a map of this 24 GiB guest: 64 maps of a 1 TiB guest still fit
MAX_STEPS_ARRAY_BYTES = 256 << 20   # all the maps of one recording, decoded, counted before decompressing
MAX_MAPPED_BYTES = 16 << 40         # physical addresses a map may cover (16 TiB)
MAX_LABEL = 64
MAX_READ_S = 600.0
HOLE_ALLOWANCE_KIB = 4 << 20        # physical address space beyond RAM: the PCI hole below 4 GiB and the like


@dataclass(frozen=True, eq=False)
class MapStep:
    """One map of physical memory taken during a run, at the step `label` (the buddyinfo label, or its own)."""

    label: str
    t_s: float                  # when the read began, on the samples' clock
    read_s: float               # how long reading the map took
    snapshot: Snapshot
    ours_pages: int | None = None   # the workload's pages located (None: no workload then, or its PFNs unreadable)
    host: HostMap | None = None     # the kit's VM: the host's map of the same step, read right after the guest's
    host_read_s: float | None = None


# The host's map, stored beside the guest's in the same entry ("host": {...}); a reader that predates it
# ignores the key, and a file without it (a local run, a recording before 2026-12-06) loads as before.
HOST_FORMAT = "reclaimlab-hostmap"


def host_to_doc(host: HostMap) -> dict[str, Any]:
    return {"format": HOST_FORMAT, "page_bytes": host.page_bytes, "block_order": host.block_order,
            "pages": host.pages, "resident_pages": _pack(host.resident_pages.astype("<u4")),
            "swapped_pages": _pack(host.swapped_pages.astype("<u4"))}


def host_from_doc(doc: Any, where: str, guest: Snapshot) -> HostMap:
    """The host's map of one step, checked against itself and the guest's map it stands beside."""
    if not isinstance(doc, dict) or doc.get("format") != HOST_FORMAT:
        raise RecordingError(f"{where}: host must be a JSON object with \"format\": \"{HOST_FORMAT}\"; {_FIX}")
    page_bytes = _int(doc, "page_bytes", where + " host", 512, 1 << 30)
    block_order = _int(doc, "block_order", where + " host", 0, MAX_BLOCK_ORDER)
    if block_order != guest.block_order or page_bytes != guest.page_bytes:
        raise RecordingError(f"{where}: the host's map has blocks of order {block_order} and pages of {page_bytes} "
                             f"bytes, the guest's of order {guest.block_order} and {guest.page_bytes} bytes: they "
                             f"cannot be laid side by side; {_FIX}")
    # The host maps the guest's RAM from guest-physical 0; it cannot hold more than the guest's map covers
    # plus the address holes (HOLE_ALLOWANCE_KIB), and no fewer than one page.
    limit = guest.pfn_end + (HOLE_ALLOWANCE_KIB * 1024) // page_bytes
    pages = _int(doc, "pages", where + " host", 1, limit)
    block_pages = 1 << block_order
    blocks = -(-pages // block_pages)
    arrays = []
    for key in ("resident_pages", "swapped_pages"):
        a = _unpack(doc, key, (blocks,), where + " host").astype(np.uint32)
        last = pages - (blocks - 1) * block_pages
        if len(a) and (a[:-1].max(initial=0) > block_pages or a[-1] > last):
            at = int(np.flatnonzero(np.append(a[:-1] > block_pages, a[-1] > last))[0])
            raise RecordingError(f"{where}: host {key} of block {at} is {int(a[at])}, more than the block's "
                                 f"{block_pages if at < blocks - 1 else last} pages; {_FIX}")
        arrays.append(a)
    return HostMap(arrays[0], arrays[1], block_order, page_bytes, pages)


def encode_steps(steps: list[MapStep]) -> str:
    """The maps of a run as the text of physmap.json."""
    return json.dumps({"format": STEPS_FORMAT, "version": STEPS_VERSION, "maps": [
        {"label": s.label, "t_s": round(float(s.t_s), 6), "read_s": round(float(s.read_s), 4),
         "ours_pages": s.ours_pages, "map": to_doc(s.snapshot),
         **({} if s.host is None else {"host": host_to_doc(s.host),
                                       "host_read_s": round(float(s.host_read_s or 0.0), 4)})}
        for s in steps]}, separators=(",", ":")) + "\n"


def _number(entry: dict, key: str, where: str, lo: float, hi: float) -> float:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not lo <= value <= hi:
        raise RecordingError(f"{where}: {key} is {str(value)[:40]!r}, expected a number from {lo:g} to {hi:g}; {_FIX}")
    return float(value)


def _mapped_kib(doc: Any, where: str) -> tuple[int, int]:
    """(KiB of physical addresses the map covers, bytes its arrays take decoded), read before decoding it."""
    if not isinstance(doc, dict):
        raise RecordingError(f"{where}: map must be a JSON object; {_FIX}")
    page_bytes = _int(doc, "page_bytes", where, 512, 1 << 30)
    block_order = _int(doc, "block_order", where, 0, MAX_BLOCK_ORDER)
    pfn_end = _int(doc, "pfn_end", where, 0, 1 << 52)
    mapped = pfn_end * page_bytes
    if mapped > MAX_MAPPED_BYTES:
        raise RecordingError(f"{where}: the map covers {mapped:,} bytes of physical addresses, more than the bound of "
                             f"{MAX_MAPPED_BYTES:,}; {_FIX}")
    blocks = -(-pfn_end // (1 << block_order))
    return mapped // 1024, blocks * (len(CLASSES) * 4 + 1)


def decode_steps(text: str | bytes, source: str = STEPS_FILE, span_s: tuple[float, float] | None = None,
                 mem_total_kib: int | None = None, slack_s: float = 1.0) -> list[MapStep]:
    """The maps of physmap.json; RecordingError naming the file, the map and the problem otherwise.

    span_s: the samples' first and last t_s (a map lies inside, give or take slack_s);
    mem_total_kib: the guest's MemTotal from the samples, where known: a map covers at least that much
    physical address space and at most twice it plus HOLE_ALLOWANCE_KIB (a block count out of that
    range belongs to another machine, or was forged to make the decoder allocate)."""
    doc = _parse(text, source, MAX_STEPS_FILE_BYTES)
    if not isinstance(doc, dict) or doc.get("format") != STEPS_FORMAT:
        raise RecordingError(f"{source}: not the maps of a recording (no \"format\": \"{STEPS_FORMAT}\"); {_FIX}")
    if doc.get("version") != STEPS_VERSION:
        raise RecordingError(f"{source}: maps format version {str(doc.get('version'))[:20]}; this reclaimlab reads "
                             f"version {STEPS_VERSION}: update reclaimlab, or record again")
    entries = doc.get("maps")
    if not isinstance(entries, list) or not 0 < len(entries) <= MAX_STEPS:
        raise RecordingError(f"{source}: \"maps\" must be a list of 1 to {MAX_STEPS} maps; {_FIX}")
    steps, decoded_bytes = [], 0
    for i, entry in enumerate(entries):
        where = f"{source}: map {i}"
        if not isinstance(entry, dict):
            raise RecordingError(f"{where}: must be a JSON object; {_FIX}")
        label = entry.get("label")
        if not isinstance(label, str) or not 0 < len(label) <= MAX_LABEL:
            raise RecordingError(f"{where}: label must be a name of 1 to {MAX_LABEL} characters; {_FIX}")
        where = f"{source}: map {i} ({label!r})"
        t_s = _number(entry, "t_s", where, 0.0, 1e9)
        if span_s is not None and not span_s[0] - slack_s <= t_s <= span_s[1] + slack_s:
            raise RecordingError(f"{where}: taken at t_s={t_s:g}, outside the samples' time span ({span_s[0]:g} to "
                                 f"{span_s[1]:g} s): the files do not belong together; {_FIX}")
        read_s = _number(entry, "read_s", where, 0.0, MAX_READ_S)
        ours = _int(entry, "ours_pages", where, 0, 1 << 52, optional=True)
        mapped_kib, size = _mapped_kib(entry.get("map"), where)
        if mem_total_kib is not None and not mem_total_kib <= mapped_kib <= 2 * mem_total_kib + HOLE_ALLOWANCE_KIB:
            raise RecordingError(f"{where}: the map covers {mapped_kib:,} KiB of physical addresses, but the samples' "
                                 f"MemTotal is {mem_total_kib:,} KiB (a map covers at least that, and at most twice it "
                                 f"plus {HOLE_ALLOWANCE_KIB:,} KiB of holes): it is not this guest's map; {_FIX}")
        decoded_bytes += size
        if decoded_bytes > MAX_STEPS_ARRAY_BYTES:
            raise RecordingError(f"{where}: the maps would take more than {MAX_STEPS_ARRAY_BYTES:,} bytes decoded; {_FIX}")
        snap = from_doc(entry["map"], where)
        host, host_read_s = None, None
        if "host" in entry:
            decoded_bytes += size // (len(CLASSES) * 4 + 1) * 8
            if decoded_bytes > MAX_STEPS_ARRAY_BYTES:
                raise RecordingError(f"{where}: the maps would take more than {MAX_STEPS_ARRAY_BYTES:,} bytes decoded; {_FIX}")
            host = host_from_doc(entry["host"], where, snap)
            host_read_s = _number(entry, "host_read_s", where, 0.0, MAX_READ_S)
        steps.append(MapStep(label, t_s, read_s, snap, ours, host, host_read_s))
    return steps
