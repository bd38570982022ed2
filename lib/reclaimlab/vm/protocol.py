"""The guest agent's line protocol, host side: pure functions, text in, values out.

The protocol itself is documented at the top of agent.c (version 1). In short, the agent
sends `H` (hello), `S` (sample), `B` (buddyinfo snapshot), `P` (page flags, runs of identical
words), `A` (ack) and `L` (note) lines;
the host sends `<id> <verb> [args]`. Times are the guest's milliseconds since the agent started.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union

from ..probe import procfs
from .errors import VmProtocolError

if TYPE_CHECKING:
    from ..probe.procfs import CpuTimes

PROTOCOL_VERSION = 1
VERBS = ("alloc", "touch", "free", "fragment", "unfragment", "write_file", "read_file", "rm_file", "sync",
         "drop_caches", "compact", "reclaim", "observe", "set", "get", "snapshot", "pageflags", "rate", "quit")


@dataclass(frozen=True)
class Hello:
    t_ms: int
    fields: dict[str, str]


@dataclass(frozen=True)
class Sample:
    t_ms: int
    values: dict[str, int]                  # meminfo names (KiB) and vmstat compact_* counters
    buddy: tuple[int, ...] = ()             # free blocks per order, summed over zones


@dataclass(frozen=True)
class Snapshot:
    t_ms: int
    label: str
    zones: dict[str, tuple[int, ...]]       # zone name -> free blocks per order


@dataclass(frozen=True)
class PageFlags:
    """One P line: reduced kpageflags words of frames pfn, pfn + 1, ... as (word, count) runs."""
    t_ms: int
    id: int                                 # the pageflags command this part answers
    pfn: int                                # the first frame of the first run
    runs: tuple[tuple[int, int], ...]

    @property
    def frames(self) -> int:
        return sum(n for _, n in self.runs)


@dataclass(frozen=True)
class Ack:
    id: int
    t_start_ms: int
    t_end_ms: int
    ok: bool
    detail: dict[str, str] = field(default_factory=dict)  # key=value pairs of an ok reply
    message: str = ""                                       # the text of an err reply

    @property
    def duration_s(self) -> float:
        return (self.t_end_ms - self.t_start_ms) / 1000.0


@dataclass(frozen=True)
class Note:
    t_ms: int
    text: str


Message = Union[Hello, Sample, Snapshot, PageFlags, Ack, Note]


def _int(text: str, line: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise VmProtocolError(f"agent line {line[:80]!r}: {what} {text[:20]!r} is not an integer") from None


def _counts(text: str, line: str) -> tuple[int, ...]:
    return tuple(_int(c, line, "count") for c in text.split(",")) if text else ()


def _pairs(words: list[str], line: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for w in words:
        key, sep, value = w.partition("=")
        if not sep or not key:
            raise VmProtocolError(f"agent line {line[:80]!r}: {w[:30]!r} is not key=value")
        out[key] = value
    return out


def _runs(text: str, line: str) -> tuple[tuple[int, int], ...]:
    out = []
    for run in text.split(","):
        word, star, count = run.partition("*")
        try:
            w, n = int(word, 16), int(count) if star else 1
        except ValueError:
            raise VmProtocolError(f"agent line {line[:80]!r}: run {run[:30]!r} is not <hex word>[*<count>]") from None
        if n < 1 or w < 0:
            raise VmProtocolError(f"agent line {line[:80]!r}: run {run[:30]!r} has no frames")
        out.append((w, n))
    return tuple(out)


def parse_line(line: str) -> Message:
    """One agent line -> Hello | Sample | Snapshot | PageFlags | Ack | Note; VmProtocolError otherwise.

    >>> parse_line("S 100 MemFree=512 compact_stall=0 buddy=3,2,1")
    Sample(t_ms=100, values={'MemFree': 512, 'compact_stall': 0}, buddy=(3, 2, 1))
    """
    line = line.rstrip("\r\n")
    words = line.split(" ")
    kind = words[0]
    if kind not in ("H", "S", "B", "P", "A", "L") or len(words) < 2:
        raise VmProtocolError(f"agent line {line[:80]!r}: not a line of the agent protocol "
                              f"(expected H, S, B, P, A or L and a time)")
    if kind == "A":
        if len(words) < 5 or words[4] not in ("ok", "err"):
            raise VmProtocolError(f"agent line {line[:80]!r}: an ack is 'A <id> <t0> <t1> ok|err ...'")
        ident, t0, t1 = (_int(w, line, "number") for w in words[1:4])
        if words[4] == "ok":
            return Ack(ident, t0, t1, True, _pairs([w for w in words[5:] if w], line))
        return Ack(ident, t0, t1, False, message=" ".join(words[5:]))
    t_ms = _int(words[1], line, "time")
    if kind == "L":
        return Note(t_ms, " ".join(words[2:]))
    if kind == "P":
        if len(words) != 5 or not words[4]:
            raise VmProtocolError(f"agent line {line[:80]!r}: page flags are 'P <t> <id> <pfn> <runs>'")
        return PageFlags(t_ms, _int(words[2], line, "id"), _int(words[3], line, "pfn"), _runs(words[4], line))
    if kind == "H":
        return Hello(t_ms, _pairs([w for w in words[2:] if w], line))
    if kind == "B":
        if len(words) < 4:
            raise VmProtocolError(f"agent line {line[:80]!r}: a snapshot is 'B <t> <label> <zone>:<counts>;...'")
        zones: dict[str, tuple[int, ...]] = {}
        for part in filter(None, words[3].split(";")):
            zone, sep, counts = part.partition(":")
            if not sep:
                raise VmProtocolError(f"agent line {line[:80]!r}: {part[:30]!r} is not <zone>:<counts>")
            zones[zone] = _counts(counts, line)
        return Snapshot(t_ms, words[2], zones)
    pairs = _pairs([w for w in words[2:] if w], line)
    buddy = _counts(pairs.pop("buddy", ""), line)
    return Sample(t_ms, {k: _int(v, line, k) for k, v in pairs.items()}, buddy)


def command_line(ident: int, verb: str, *args: object) -> str:
    """The line the host sends for one command; ValueError for what the agent would refuse to parse."""
    if verb not in VERBS:
        raise ValueError(f"unknown agent command {verb!r}; valid: {', '.join(VERBS)}")
    words = [str(a) for a in args]
    if any(not w or any(c in w for c in " \n\r") for w in words[:-1]) or any(c in "".join(words) for c in "\n\r"):
        raise ValueError(f"agent command arguments {words!r} must be single words without newlines")
    return " ".join([str(ident), verb, *words]) + "\n"


def reportable_free_kib(buddy: tuple[int, ...], min_order: int, page_kib: int = 4) -> int:
    """Free memory in blocks of at least `min_order` (what free page reporting can hand back)."""
    return procfs.free_kib_at_least(buddy, min_order, page_kib)


@dataclass(frozen=True)
class Reading:
    """One `observe` reply: what an autoMemoryReclaim policy sees in the guest at one poll."""
    cpu: "CpuTimes"                 # the aggregate /proc/stat cpu line (own_*: the agent's utime, stime)
    mem_total_kib: int
    mem_free_kib: int
    cached_kib: int
    active_file_kib: int
    inactive_file_kib: int
    sreclaimable_kib: int
    psi_some_avg10: float | None    # /proc/pressure/memory "some avg10"; None where the kernel has no PSI
    refault_file_pages: int | None  # /proc/vmstat workingset_refault_file; None where absent
    sampler_ticks: tuple[int, int] | None = None  # the agent's sampler thread's utime, stime (a part of own_*);
                                                  # None from an agent that does not report it

    @property
    def reclaimable_cache_kib(self) -> int:
        """Active(file) + Inactive(file) + SReclaimable: WSL's GetReclaimableCacheBytes (util.cpp:3740 at 3e27a6a)."""
        return self.active_file_kib + self.inactive_file_kib + self.sreclaimable_kib


_READING_KEYS = ("cpu", "own", "mem_total", "mem_free", "cached", "active_file", "inactive_file", "sreclaimable",
                 "psi_some_avg10", "refault_file")


def parse_reading(detail: dict[str, str]) -> Reading:
    """The key=value detail of an `observe` ack -> Reading; VmProtocolError naming what is missing or wrong.

    >>> r = parse_reading({"cpu": "1,0,2,97,0,0,0,0", "own": "0,1", "mem_total": "2000", "mem_free": "900",
    ...                    "cached": "800", "active_file": "100", "inactive_file": "600", "sreclaimable": "50",
    ...                    "psi_some_avg10": "none", "refault_file": "7"})
    >>> r.cpu.busy, r.reclaimable_cache_kib, r.psi_some_avg10, r.refault_file_pages
    (3, 750, None, 7)
    """
    from ..probe.procfs import CpuTimes

    missing = [k for k in _READING_KEYS if k not in detail]
    if missing:
        raise VmProtocolError(f"observe reply lacks {', '.join(missing)} (an agent older than this kit? rebuild the VM)")
    line = " ".join(f"{k}={v}" for k, v in detail.items())
    cpu = _counts(detail["cpu"], line)
    own = _counts(detail["own"], line)
    if len(cpu) != 8 or len(own) != 2:
        raise VmProtocolError(f"observe reply {line[:80]!r}: cpu= needs 8 counters and own= 2")
    mem = {k: _int(detail[k], line, k) for k in _READING_KEYS[2:8]}
    if mem["mem_total"] <= 0 or min(mem.values()) < 0:
        raise VmProtocolError(f"observe reply {line[:80]!r}: a meminfo field is missing (-1) or MemTotal is 0")
    psi_text = detail["psi_some_avg10"]
    try:
        psi = None if psi_text == "none" else float(psi_text)
    except ValueError:
        raise VmProtocolError(f"observe reply {line[:80]!r}: psi_some_avg10 {psi_text[:20]!r} is not a number") from None
    refaults = None if detail["refault_file"] == "none" else _int(detail["refault_file"], line, "refault_file")
    sampler = _counts(detail["sampler"], line) if "sampler" in detail else None
    if sampler is not None and len(sampler) != 2:
        raise VmProtocolError(f"observe reply {line[:80]!r}: sampler= needs 2 counters")
    return Reading(CpuTimes(*cpu, own_user=own[0], own_system=own[1]), mem["mem_total"], mem["mem_free"],
                   mem["cached"], mem["active_file"], mem["inactive_file"], mem["sreclaimable"], psi, refaults,
                   None if sampler is None else (sampler[0], sampler[1]))
