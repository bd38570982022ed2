"""Scratch space on the guest's real disk, and cleaning up what a killed run left behind.

The page-cache workload needs a disk-backed file: tmpfs and ramfs live in memory as shared memory
(Shmem), which drop_caches never drops, so they would show the wrong thing.

Each run works in its own folder ``reclaimlab-<pid>-<starttime>-<random>`` under the scratch
base. If a run is SIGKILLed its folder stays; the next run deletes every such folder whose owner
(pid *and* start time, so a reused pid does not count) is no longer alive. Folders of runs still
alive, e.g. a colleague's in the same tree, are left alone.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..units import MIB, format_size
from ..probe import procfs

SCRATCH_ENV = "RECLAIMLAB_SCRATCH"
PREFIX = "reclaimlab-"
MEMORY_FILESYSTEMS = {"tmpfs", "ramfs", "devtmpfs", "hugetlbfs", "proc", "sysfs"}
DISK_SPARE_BYTES = 256 * MIB  # never fill a disk to the last byte


class ScratchError(OSError):
    """No suitable scratch space; str() says why and how to choose another place."""


def filesystem_type(path: Path, mounts_text: str | None = None) -> str:
    """The type of the filesystem holding `path` (longest matching mount point in /proc/mounts)."""
    if mounts_text is None:
        mounts_text = Path("/proc/mounts").read_text()
    target = os.path.realpath(path)
    best, best_type = "", "unknown"
    for line in mounts_text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        mount_point = parts[1].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, parts[2]
    return best_type


def _start_ticks(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return str(procfs.parse_pid_stat(stat, f"/proc/{pid}/stat").start_ticks)


def owner_tag(pid: int | None = None) -> str:
    """'<pid>-<start time>': names a process uniquely even after its pid is reused."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}-{_start_ticks(pid)}"


def owner_alive(tag: str) -> bool:
    """Is the process named by owner_tag() still running? Unknown shapes count as alive (never deleted)."""
    parts = tag.split("-")
    if len(parts) != 2 or not parts[0].isdigit():
        return True
    return _start_ticks(int(parts[0])) == parts[1]


def _owner_alive(name: str) -> bool:
    return owner_alive(name[len(PREFIX):].rsplit("-", 1)[0])


def clean_stale(base: Path) -> list[Path]:
    """Remove scratch folders under `base` left by runs that are no longer alive; returns them."""
    removed = []
    try:
        entries = list(base.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if entry.name.startswith(PREFIX) and entry.is_dir() and not entry.is_symlink() and not _owner_alive(entry.name):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _candidates(directory: str | os.PathLike | None = None) -> list[tuple[Path, bool]]:
    """(base folder, chosen explicitly by the user?) in order of preference."""
    if directory is not None:
        return [(Path(directory).expanduser(), True)]
    if os.environ.get(SCRATCH_ENV):
        return [(Path(os.environ[SCRATCH_ENV]).expanduser(), True)]
    return [(Path.home() / ".cache" / "reclaimlab", False), (Path("/var/tmp"), False)]


def scratch_base(size_bytes: int, directory: str | os.PathLike | None = None) -> Path:
    """The first disk-backed, writable base with room for size_bytes; else ScratchError with the reasons."""
    reasons = []
    for base, explicit in _candidates(directory):
        try:
            base.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reasons.append(f"{base}: cannot create ({exc.strerror})")
            continue
        fs = filesystem_type(base)
        if fs in MEMORY_FILESYSTEMS:
            reasons.append(f"{base} is on {fs}, which lives in memory (Shmem) and is never dropped from the cache")
        elif not os.access(base, os.W_OK):
            reasons.append(f"{base}: not writable")
        else:
            st = os.statvfs(base)
            free_bytes = st.f_bavail * st.f_frsize
            if free_bytes < size_bytes + DISK_SPARE_BYTES:
                reasons.append(f"{base} has {format_size(free_bytes)} free; {format_size(size_bytes)} "
                               f"plus {format_size(DISK_SPARE_BYTES)} to spare are needed")
            else:
                return base
        if explicit:
            break
    raise ScratchError(f"no scratch space for a {format_size(size_bytes)} file: {'; '.join(reasons)}; "
                       f"set {SCRATCH_ENV} to a folder on a disk with room")


def make_run_dir(base: Path) -> Path:
    """This run's own folder under base (name carries our pid and start time; see the module doc)."""
    clean_stale(base)
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{owner_tag()}-", dir=base))
