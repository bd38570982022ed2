"""Pure parsers for the kernel's /proc and /sys files: text in, values out.

No I/O happens here; `sources.py` reads the files. Every parser tolerates lines a
kernel version adds (kept) or lacks (absent from the result, never invented), and
raises `ProcParseError` naming the file and the line when the text is not what
that file ever looks like.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


class ProcParseError(ValueError):
    """The text is not in the format of the file it claims to be."""


def _bad(source: str, lineno: int, line: str, expected: str) -> ProcParseError:
    if "\ufffd" in line:  # readers decode bytes that are not text as U+FFFD; the kernel writes none
        return ProcParseError(f"{source}: line {lineno} {line!r} holds bytes that are not text (shown as "
                              f"\ufffd), which the kernel never writes there, so the file is corrupt (a damaged "
                              f"copy of a /proc or /sys tree: capture it again)")
    return ProcParseError(f"{source}: line {lineno} {line!r} is not {expected}")


def parse_meminfo(text: str, source: str = "/proc/meminfo") -> dict[str, int]:
    """/proc/meminfo -> {field: KiB} (HugePages_* counts stay counts).

    >>> parse_meminfo("MemTotal:  1024 kB\\nHugePages_Total: 0\\n")
    {'MemTotal': 1024, 'HugePages_Total': 0}
    """
    out: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, rest = line.partition(":")
        parts = rest.split()
        if not sep or not parts or len(parts) > 2 or (len(parts) == 2 and parts[1] != "kB") or "\ufffd" in name:
            raise _bad(source, lineno, line, "'Name:  <number> kB'")
        try:
            out[name.strip()] = int(parts[0])
        except ValueError:
            raise _bad(source, lineno, line, "'Name:  <number> kB'") from None
    if not out:
        raise ProcParseError(f"{source}: empty; expected lines like 'MemTotal:  1024 kB'")
    return out


def parse_flat_keyed(text: str, source: str) -> dict[str, int]:
    """'name value' lines (/proc/vmstat, cgroup memory.stat) -> {name: int}."""
    out: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or "\ufffd" in parts[0]:
            raise _bad(source, lineno, line, "'name <number>'")
        try:
            out[parts[0]] = int(parts[1])
        except ValueError:
            raise _bad(source, lineno, line, "'name <number>'") from None
    return out


def parse_vmstat(text: str, source: str = "/proc/vmstat") -> dict[str, int]:
    """/proc/vmstat -> {counter: value}. Counters are pages or event counts, as the kernel keeps them."""
    out = parse_flat_keyed(text, source)
    if not out:
        raise ProcParseError(f"{source}: empty; expected lines like 'nr_free_pages 1234'")
    return out


def parse_psi(text: str, source: str = "/proc/pressure/memory") -> dict[str, dict[str, float]]:
    """A PSI file (/proc/pressure/*, a cgroup's *.pressure) -> {"some"|"full": {avg10, avg60, avg300, total}}.

    avg* are percentages of wall time (0-100) that some (or all) tasks stalled, total is microseconds.

    >>> parse_psi("some avg10=1.50 avg60=0.00 avg300=0.00 total=42\\n")["some"]["avg10"]
    1.5
    """
    out: dict[str, dict[str, float]] = {}
    expected = "'some avg10=<n> avg60=<n> avg300=<n> total=<n>'"
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        kind, *fields = line.split()
        if kind not in ("some", "full") or not fields:
            raise _bad(source, lineno, line, expected)
        values: dict[str, float] = {}
        for field in fields:
            key, sep, value = field.partition("=")
            try:
                values[key] = float(value)
            except ValueError:
                raise _bad(source, lineno, line, expected) from None
            if not sep:
                raise _bad(source, lineno, line, expected)
        if "avg10" not in values:
            raise _bad(source, lineno, line, expected)
        out[kind] = values
    if "some" not in out:
        raise ProcParseError(f"{source}: no 'some' line; expected {expected}")
    return out


def free_kib_at_least(free_blocks: Any, min_order: int = 0, page_kib: int = 4) -> int:
    """Free memory (KiB) held in buddy blocks of order >= `min_order`: what free page reporting at that
    order can hand over. The one place this sum is written.

    free_blocks: free blocks per order, as a sequence indexed by order (a /proc/buddyinfo line, the kit's
    VM's summed buddy tuple) or a mapping {order: blocks} (a recording's buddyinfo rows summed by order).
    page_kib: the base page (4 KiB on x86-64; a recording's meta says its own where it knows it).

    >>> free_kib_at_least((10, 0, 1), 1)      # one order-2 block of 4 pages
    16
    >>> free_kib_at_least({9: 2, 0: 5}, 9)    # two 2 MiB blocks
    4096
    """
    items = free_blocks.items() if hasattr(free_blocks, "items") else enumerate(free_blocks)
    return sum(int(n) << int(k) for k, n in items if int(k) >= min_order) * int(page_kib)


def reporting_order(value: Any) -> int | None:
    """A page_reporting_order as an order reporting works at: an int >= 0 (a whole float or a string
    of digits as a recording's JSON may carry it), else None: missing, a bool, other text, and -1, which
    Linux >= 6.2 shows until a balloon registers (5.14-6.1 showed MAX_ORDER, which we cannot tell from
    a real order). The one place this check is written.

    >>> [reporting_order(v) for v in (9, "5", 9.0, -1, True, None, "x")]
    [9, 5, 9, None, None, None, None]
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        return int(value) if value.isdigit() else None
    if isinstance(value, float):
        return int(value) if value.is_integer() and value >= 0 else None
    return value if isinstance(value, int) and value >= 0 else None


@dataclass(frozen=True)
class BuddyZone:
    """One line of /proc/buddyinfo: free blocks per order (order k = 2**k pages)."""

    node: int
    zone: str
    free_blocks: tuple[int, ...]

    def free_pages(self, min_order: int = 0) -> int:
        return sum(n << k for k, n in enumerate(self.free_blocks) if k >= min_order)

    def blocks_at_least(self, min_order: int) -> int:
        return sum(n for k, n in enumerate(self.free_blocks) if k >= min_order)


def parse_buddyinfo(text: str, source: str = "/proc/buddyinfo") -> list[BuddyZone]:
    """/proc/buddyinfo -> one BuddyZone per 'Node N, zone NAME c0 c1 ...' line."""
    zones = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.replace(",", " ").split()
        try:
            if parts[0] != "Node" or parts[2] != "zone" or len(parts) < 5:
                raise ValueError
            zones.append(BuddyZone(int(parts[1]), parts[3], tuple(int(p) for p in parts[4:])))
        except (ValueError, IndexError):
            raise _bad(source, lineno, line, "'Node 0, zone Normal <counts per order>'") from None
    if not zones:
        raise ProcParseError(f"{source}: empty; expected lines like 'Node 0, zone Normal 3 2 ...'")
    return zones


def parse_zoneinfo_per_cpu_pages(text: str, source: str = "/proc/zoneinfo") -> int:
    """/proc/zoneinfo -> pages on the per-CPU page lists (every zone's `pagesets`, every CPU's `count:`).

    A freed page goes to its CPU's list first and reaches the buddy free lists only when the list is
    trimmed; until then it is in neither MemFree nor /proc/buddyinfo, and free page reporting, which
    walks the buddy lists, cannot see it. Since Linux 6.7 a list can grow far past its old bound
    (the `high` the kernel tunes per CPU)."""
    in_pagesets = False
    pages, seen = 0, False
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if line.startswith("Node "):
            in_pagesets = False
        elif stripped == "pagesets":
            in_pagesets, seen = True, True
        elif in_pagesets and stripped.startswith("count:"):
            try:
                pages += int(stripped.split()[1])
            except (ValueError, IndexError):
                raise _bad(source, lineno, line, "'count: <pages>' in a zone's pagesets") from None
    if not seen:
        raise ProcParseError(f"{source}: no 'pagesets' section; expected per-zone blocks with per-CPU 'count:' lines")
    return pages


def buddy_totals(zones: list[BuddyZone]) -> tuple[int, ...]:
    """Free blocks per order summed over all zones and nodes."""
    width = max(len(z.free_blocks) for z in zones)
    return tuple(sum(z.free_blocks[k] for z in zones if k < len(z.free_blocks)) for k in range(width))


def parse_cgroup_number(text: str, source: str) -> int | None:
    """A single-number cgroup file (memory.current, memory.max, memory.usage_in_bytes, ...).

    Returns None for 'max' (cgroup v2's "no limit").
    """
    value = text.strip()
    if value == "max":
        return None
    try:
        return int(value)
    except ValueError:
        raise ProcParseError(f"{source}: {value[:40]!r} is not a number of bytes or 'max'") from None


# cgroup v1 reports "no limit" as a huge page-aligned number (LONG_MAX rounded down to a page).
CGROUP_V1_UNLIMITED_BYTES = 1 << 62


def cgroup_limit_bytes(text: str, source: str) -> int | None:
    """memory.max (v2) or memory.limit_in_bytes (v1) -> bytes, or None when unlimited."""
    value = parse_cgroup_number(text, source)
    if value is None or value >= CGROUP_V1_UNLIMITED_BYTES:
        return None
    return value


def parse_memory_stat(text: str, source: str = "memory.stat") -> dict[str, int]:
    """cgroup memory.stat (v1 or v2) -> {key: bytes or count}."""
    return parse_flat_keyed(text, source)


def cgroup_file_anon_keys(stat: Mapping[str, int]) -> tuple[str | None, str | None]:
    """The memory.stat keys of (page cache, anonymous) memory in this stat, None where absent.

    v2 calls them 'file' and 'anon'; v1 calls them 'cache' and 'rss' (and the
    hierarchical 'total_cache' / 'total_rss', preferred since children count too).
    """
    if "file" in stat or "anon" in stat:
        wanted = ("file", "anon")
    else:
        wanted = ("total_cache" if "total_cache" in stat else "cache", "total_rss" if "total_rss" in stat else "rss")
    file_key, anon_key = (k if k in stat else None for k in wanted)
    return file_key, anon_key


def cgroup_file_anon_bytes(stat: Mapping[str, int]) -> tuple[int | None, int | None]:
    """(page cache bytes, anonymous bytes) from memory.stat of either cgroup version (cgroup_file_anon_keys)."""
    file_key, anon_key = cgroup_file_anon_keys(stat)
    return (stat[file_key] if file_key else None), (stat[anon_key] if anon_key else None)


def parse_module_param(text: str, source: str) -> int | bool | str:
    """A /sys/module/*/parameters/* value: int, bool ('Y'/'N') or the raw string."""
    value = text.strip()
    if value in ("Y", "N"):
        return value == "Y"
    try:
        return int(value)
    except ValueError:
        return value


def parse_cgroup_membership(text: str) -> dict[str, str]:
    """/proc/self/cgroup -> {controller: path}; the cgroup v2 entry is under key ''.

    '4:memory:/a/b' -> {'memory': '/a/b'}; '0::/user.slice' -> {'': '/user.slice'}.
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        _hier, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if not controllers:
            out[""] = path
        for c in controllers.split(","):
            if c:
                out[c] = path
    return out


def parse_status_kib(text: str) -> dict[str, int]:
    """The kB fields of a /proc/<pid>/status text (VmRSS, RssAnon, RssFile, ...), in KiB.

    >>> parse_status_kib("Name:\\tx\\nVmRSS:\\t  1024 kB\\nRssAnon:\\t  512 kB\\n")
    {'VmRSS': 1024, 'RssAnon': 512}
    """
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            out[name] = int(parts[0])
    return out


@dataclass(frozen=True)
class CpuTimes:
    """The aggregate `cpu` line of /proc/stat, in jiffies (guest time is already inside user/nice)."""

    user: int
    nice: int
    system: int
    idle: int
    iowait: int = 0
    irq: int = 0
    softirq: int = 0
    steal: int = 0
    own_user: int = 0     # this process's utime/stime (all threads), where the reader adds them to leave itself out
    own_system: int = 0

    @property
    def total(self) -> int:
        return self.user + self.nice + self.system + self.idle + self.iowait + self.irq + self.softirq + self.steal

    @property
    def busy(self) -> int:
        """Everything but idle and iowait, as the newer WSL thread counts it."""
        return self.total - self.idle - self.iowait


def parse_cpu_times(text: str, source: str = "/proc/stat") -> CpuTimes:
    """The aggregate 'cpu ' line of /proc/stat text -> CpuTimes."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            try:
                fields = [int(x) for x in line.split()[1:9]]
            except ValueError:
                break
            if len(fields) >= 4:
                return CpuTimes(*fields)
            break
    raise ProcParseError(f"{source}: no aggregate line like 'cpu  <user> <nice> <system> <idle> ...'")


def cpu_shares(prev: CpuTimes | None, now: CpuTimes) -> tuple[float | None, float | None]:
    """(user share, busy share) of all CPU time between two readings; (None, None) without a previous one.

    The own_* ticks (this process, when recorded) are taken out of both: the lab's notebook, sampler
    and reclaim daemon are the apparatus, not the guest's workload.
    """
    if prev is None:
        return None, None
    total = now.total - prev.total
    if now.user < prev.user or now.busy < prev.busy or total < 0:   # counters went backwards: no interval
        return None, None
    if total == 0:   # no time passed: WSL counts that as idle
        return 0.0, 0.0
    own_user = max(0, now.own_user - prev.own_user)
    own_busy = own_user + max(0, now.own_system - prev.own_system)
    return (max(0, now.user - prev.user - own_user) / total, max(0, now.busy - prev.busy - own_busy) / total)


@dataclass(frozen=True)
class PidStat:
    """The fields of /proc/<pid>/stat this kit uses, in clock ticks (USER_HZ)."""

    utime_ticks: int   # field 14: user time, all threads
    stime_ticks: int   # field 15: system time, all threads
    start_ticks: int   # field 22: start time after boot (with the pid, names a process even after pid reuse)


def parse_pid_stat(text: str, source: str = "/proc/<pid>/stat") -> PidStat:
    """/proc/<pid>/stat -> PidStat (fields 14, 15 and 22; the comm field may hold spaces and ')').

    >>> parse_pid_stat("42 (a b) S 1 2 3 4 5 6 7 8 9 10 70 30 0 0 20 0 8 0 100 0 0")
    PidStat(utime_ticks=70, stime_ticks=30, start_ticks=100)
    """
    fields = text[text.rfind(")") + 2:].split() if ")" in text else []
    try:
        return PidStat(int(fields[11]), int(fields[12]), int(fields[19]))
    except (ValueError, IndexError):
        raise ProcParseError(f"{source}: {text[:80]!r} is not '<pid> (<comm>) <state> <ppid> ...' "
                             "with numbers in fields 14, 15 and 22") from None


def parse_iomem_ram(text: str, source: str = "/proc/iomem") -> list[tuple[int, int]]:
    """/proc/iomem -> the top-level 'System RAM' ranges as (first byte, last byte), inclusive.

    An unprivileged reader sees every address as 0 (the kernel hides them): that reads as [], "unknown",
    never as "no RAM".

    >>> parse_iomem_ram("00001000-0009fbff : System RAM\\n  01000000-0225b13f : Kernel code\\n")
    [(4096, 654335)]
    """
    ranges = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if line[:1].isspace() or not line.strip():  # nested resources are inside a top-level one
            continue
        span, sep, name = line.partition(" : ")
        first, dash, last = span.partition("-")
        try:
            if not sep or not dash:
                raise ValueError
            lo, hi = int(first, 16), int(last, 16)
        except ValueError:
            raise _bad(source, lineno, line, "'<start>-<end> : <name>' in hex") from None
        if name.strip() == "System RAM" and hi > lo:
            ranges.append((lo, hi))
    return ranges
