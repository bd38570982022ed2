"""Where the kernel's files are, and reading them: the only I/O under the parsers.

The proc and sys roots are configurable (arguments, or RECLAIMLAB_PROC_ROOT /
RECLAIMLAB_SYS_ROOT) so the whole kit can be pointed at a captured tree.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import procfs


class SourceError(OSError):
    """A kernel file is missing or unreadable; the message names it and says what that means."""


@dataclass(frozen=True)
class Roots:
    proc: Path = Path("/proc")
    sys: Path = Path("/sys")

    @classmethod
    def from_env(cls, proc_root: str | os.PathLike | None = None,
                 sys_root: str | os.PathLike | None = None) -> "Roots":
        return cls(Path(proc_root or os.environ.get("RECLAIMLAB_PROC_ROOT") or "/proc"),
                   Path(sys_root or os.environ.get("RECLAIMLAB_SYS_ROOT") or "/sys"))

    @property
    def is_live(self) -> bool:
        """True when these are the real roots of the machine we run on (not a captured tree)."""
        return self.proc == Path("/proc") and self.sys == Path("/sys")


def _text(path: Path) -> str:
    # Bytes that are not UTF-8 become U+FFFD, as the sampler's readers (fastread) decode: the parser
    # then names the file and line it cannot read, where a strict decode raised from deep inside.
    return path.read_bytes().decode("utf-8", "replace")


def read_text(path: Path) -> str:
    try:
        return _text(path)
    except FileNotFoundError:
        raise SourceError(f"{path}: not found; this kernel or container does not provide it") from None
    except PermissionError:
        raise SourceError(f"{path}: permission denied; run as a user who may read it") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot read ({exc.strerror})") from None


def read_optional(path: Path) -> str | None:
    """The file's text, or None where it does not exist or cannot be read."""
    try:
        return _text(path)
    except OSError:
        return None


def kernel_release(roots: Roots) -> str | None:
    """<proc>/sys/kernel/osrelease (so a captured tree reports its own kernel), or None where unreadable."""
    text = read_optional(roots.proc / "sys" / "kernel" / "osrelease")
    return text.strip() if text and text.strip() else None


def meminfo(roots: Roots) -> dict[str, int]:
    p = roots.proc / "meminfo"
    return procfs.parse_meminfo(read_text(p), str(p))


def vmstat(roots: Roots) -> dict[str, int]:
    p = roots.proc / "vmstat"
    return procfs.parse_vmstat(read_text(p), str(p))


def psi_memory(roots: Roots) -> dict[str, dict[str, float]] | None:
    """/proc/pressure/memory parsed, or None where PSI is missing (no CONFIG_PSI, or psi=0: EOPNOTSUPP)."""
    p = roots.proc / "pressure" / "memory"
    text = read_optional(p)
    return None if text is None else procfs.parse_psi(text, str(p))


def buddyinfo(roots: Roots) -> list[procfs.BuddyZone]:
    p = roots.proc / "buddyinfo"
    return procfs.parse_buddyinfo(read_text(p), str(p))


DEFAULT_PAGE_BYTES = 4096  # x86-64's base page: what a recording that does not state its page size was made with


def page_bytes() -> int:
    """This machine's base page in bytes (SC_PAGE_SIZE; 4096 where it cannot be asked)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return DEFAULT_PAGE_BYTES


def per_cpu_free_kib(roots: Roots) -> int | None:
    """KiB of free pages on the per-CPU page lists (/proc/zoneinfo), or None where it cannot be read."""
    p = roots.proc / "zoneinfo"
    try:
        return procfs.parse_zoneinfo_per_cpu_pages(read_text(p), str(p)) * (page_bytes() // 1024)
    except (OSError, SourceError, procfs.ProcParseError):
        return None


def uptime_s(roots: Roots) -> float | None:
    """Seconds since the guest booted (/proc/uptime's first field), or None where it cannot be read."""
    text = read_optional(roots.proc / "uptime")
    try:
        return round(float(text.split()[0]), 1) if text else None
    except (ValueError, IndexError):
        return None


PAGE_REPORTING_PARAMS = Path("module/page_reporting/parameters")


def page_reporting_params(roots: Roots) -> dict[str, int | bool | str]:
    """All page_reporting module parameters present ({} where the module exposes none).

    Upstream has only page_reporting_order; some kernels (like this project's
    machines) add reported_kib and others. Read what is there, invent nothing.
    """
    d = roots.sys / PAGE_REPORTING_PARAMS
    out: dict[str, int | bool | str] = {}
    if not d.is_dir():
        return out
    for p in sorted(d.iterdir()):
        text = read_optional(p)
        if text is not None:
            out[p.name] = procfs.parse_module_param(text, str(p))
    return out


def page_reporting_order(roots: Roots) -> int | None:
    """The order free page reporting works at on this guest (the module parameter, not the kernel
    command line: the two can differ), or None where it does not say one (procfs.reporting_order)."""
    return procfs.reporting_order(page_reporting_params(roots).get("page_reporting_order"))


@dataclass(frozen=True)
class MemoryCgroup:
    """The memory cgroup this process is charged to."""

    version: int  # 1 or 2
    path: Path    # its folder under the sys root

    def file(self, v1: str, v2: str) -> Path:
        return self.path / (v2 if self.version == 2 else v1)

    @property
    def usage_file(self) -> Path:
        return self.file("memory.usage_in_bytes", "memory.current")

    @property
    def limit_file(self) -> Path:
        return self.file("memory.limit_in_bytes", "memory.max")

    @property
    def stat_file(self) -> Path:
        return self.path / "memory.stat"

    @property
    def reclaim_file(self) -> Path | None:
        """cgroup v2 memory.reclaim (kernel >= 5.19), where present."""
        p = self.path / "memory.reclaim"
        return p if self.version == 2 and p.exists() else None

    def usage_bytes(self) -> int:
        return procfs.parse_cgroup_number(read_text(self.usage_file), str(self.usage_file)) or 0

    def limit_bytes(self) -> int | None:
        """The tightest limit that applies: this cgroup's or, on v1, the hierarchy's."""
        limit = procfs.cgroup_limit_bytes(read_text(self.limit_file), str(self.limit_file))
        if self.version == 1:
            stat = self.stat()
            hier = stat.get("hierarchical_memory_limit")
            if hier is not None and hier < procfs.CGROUP_V1_UNLIMITED_BYTES:
                limit = hier if limit is None else min(limit, hier)
        else:
            # v2: a parent's memory.max also binds us; walk up while the files exist.
            parent = self.path.parent
            while (parent / "memory.max").exists():
                text = read_optional(parent / "memory.max")
                if text is not None:
                    pl = procfs.cgroup_limit_bytes(text, str(parent / "memory.max"))
                    if pl is not None:
                        limit = pl if limit is None else min(limit, pl)
                if parent == parent.parent:
                    break
                parent = parent.parent
        return limit

    def stat(self) -> dict[str, int]:
        return procfs.parse_memory_stat(read_text(self.stat_file), str(self.stat_file))


def memory_cgroup(roots: Roots, pid: str = "self") -> MemoryCgroup | None:
    """Find the memory cgroup of `pid`, preferring v2 where it has the memory controller."""
    text = read_optional(roots.proc / pid / "cgroup")
    if text is None:
        return None
    membership = procfs.parse_cgroup_membership(text)
    base = roots.sys / "fs" / "cgroup"
    if "" in membership:
        rel = membership[""].lstrip("/")
        for mount in (base, base / "unified"):
            d = mount / rel
            if (d / "memory.current").exists():
                return MemoryCgroup(2, d)
    if "memory" in membership:
        rel = membership["memory"].lstrip("/")
        for d in (base / "memory" / rel, base / "memory"):
            # In a container with its own cgroup namespace the path may not exist under the mount.
            if (d / "memory.usage_in_bytes").exists():
                return MemoryCgroup(1, d)
    return None
