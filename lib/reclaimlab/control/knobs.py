"""Actions on the guest's memory knobs: drop caches, compact, reclaim from a cgroup.

Who may turn them is decided in consent.py (root, a writable file, not a shared machine, and the
caller's consent); every action here asks it first and raises consent.SystemChangeRefused with
the reason where not permitted. Never sudo. Each action returns how long the kernel took.

cgroup reclaim: cgroup v2 has `memory.reclaim` (Linux >= 5.19). cgroup v1 (this project's
guests) has none; its nearest honest equivalent is to lower the cgroup's memory.limit_in_bytes
to (usage - bytes) for a moment, which makes the kernel reclaim that cgroup's pages, and to put
the old limit back at once. The result says which method ran. The v1 squeeze only runs on a
WorkloadCgroup this process created: squeezing anyone else's cgroup would take their cache.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

from ..probe import consent, procfs, sources
from ..probe.consent import SystemChangeRefused
from ..units import format_size
from .scratch import owner_alive, owner_tag

DROP_LEVELS = {1: "page cache", 2: "reclaimable slab (dentries and inodes)", 3: "page cache and reclaimable slab"}
CGROUP_PREFIX = "reclaimlab-"


@dataclass(frozen=True)
class KnobResult:
    knob: str            # drop_caches | compact_memory
    value: str           # what was written
    duration_s: float    # the write itself: the kernel works synchronously inside it
    sync_s: float = 0.0  # drop_caches only: the sync before it (dirty pages cannot be dropped)


def _roots(roots: sources.Roots | None) -> sources.Roots:
    return roots or sources.Roots.from_env()


def _write(path: Path, value: str, what: str) -> float:
    t0 = time.perf_counter()
    try:
        with open(path, "w") as f:
            f.write(value)
    except PermissionError as exc:
        raise SystemChangeRefused(f"{what} refused by the kernel: {path}: {exc.strerror}") from None
    return time.perf_counter() - t0


def drop_caches(level: int, allow: bool | None = None, roots: sources.Roots | None = None,
                env: Mapping[str, str] = os.environ) -> KnobResult:
    """sync, then write `level` to /proc/sys/vm/drop_caches: 1 page cache, 2 reclaimable slab, 3 both.

    Only clean, unmapped, unused pages go; dirty ones must reach the disk first, hence the sync.
    """
    if isinstance(level, bool) or not isinstance(level, int) or level not in DROP_LEVELS:
        raise ValueError(f"drop_caches level must be 1 (page cache), 2 (reclaimable slab) or 3 (both); got {level!r}")
    path = consent.require("drop_caches", _roots(roots), allow, env)
    t0 = time.perf_counter()
    os.sync()
    sync_s = time.perf_counter() - t0
    return KnobResult("drop_caches", str(level), _write(path, str(level), "drop_caches"), sync_s)


def compact_memory(allow: bool | None = None, roots: sources.Roots | None = None,
                   env: Mapping[str, str] = os.environ) -> KnobResult:
    """Write 1 to /proc/sys/vm/compact_memory: compact every zone now (returns when done)."""
    path = consent.require("compact_memory", _roots(roots), allow, env)
    return KnobResult("compact_memory", "1", _write(path, "1", "compact_memory"))


def compaction_proactiveness(roots: sources.Roots | None = None) -> int | None:
    """vm.compaction_proactiveness (0-100; kernel >= 5.9), or None where the kernel lacks it."""
    text = sources.read_optional(_roots(roots).proc / consent.KNOB_FILES["compaction_proactiveness"])
    return int(text) if text is not None else None


@contextlib.contextmanager
def set_compaction_proactiveness(value: int, allow: bool | None = None, roots: sources.Roots | None = None,
                                 env: Mapping[str, str] = os.environ) -> Iterator[int]:
    """Set vm.compaction_proactiveness for the `with` block; yields the old value, restored on exit.

    Restored on exceptions and Ctrl-C too; only a SIGKILL of this process leaves it changed.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise ValueError(f"compaction_proactiveness must be an integer 0-100; got {value!r}")
    path = consent.require("compaction_proactiveness", _roots(roots), allow, env)
    old = path.read_text().strip()
    _write(path, str(value), "compaction_proactiveness")
    try:
        yield int(old)
    finally:
        _write(path, old, "restoring compaction_proactiveness")


# ---------------------------------------------------------------- cgroups

def _require_cgroup_write(what: str, path: Path, roots: sources.Roots, allow: bool | None,
                          env: Mapping[str, str]) -> None:
    """consent's rules (shared machine, consent) for a file of a cgroup we name, not our own cgroup."""
    if not os.access(path, os.W_OK):
        raise SystemChangeRefused(f"{what} refused: {path} is not writable here (needs root; reclaimlab never uses sudo)")
    shared = consent.shared_reason(roots, env)
    if shared:
        raise SystemChangeRefused(f"{what} refused: {shared}; system-wide changes stay off on shared machines")
    if not consent.changes_allowed(allow, env):
        raise SystemChangeRefused(f"{what} refused: {consent.not_allowed(env)}")


class WorkloadCgroup:
    """A memory cgroup of our own for a workload child, removed again on exit.

        with WorkloadCgroup() as cg, PageCacheFile(size) as f:
            cg.add(f.pid); f.write(); f.sync()
            knobs.cgroup_reclaim(n, allow=True, cgroup=cg)

    Created under this process's memory cgroup, so every limit above still binds and the charges
    still count there (cgroup v1 here; on v2 the parent must delegate the memory controller).
    On exit the tasks are moved back to the parent, v1 pages still charged are reclaimed
    (memory.force_empty, so no dying cgroup lingers holding them) and the folder is removed.
    Folders left by a SIGKILLed run are removed by the next one (their owner pid is dead).
    """

    def __init__(self, roots: sources.Roots | None = None, parent: Path | None = None):
        self.roots = _roots(roots)
        self._parent = parent
        self.path: Path | None = None
        self.version = 0

    def _find_parent(self) -> tuple[int, Path]:
        if self._parent is not None:
            version = 2 if (self._parent / "memory.current").exists() or (self._parent / "cgroup.subtree_control").exists() else 1
            return version, self._parent
        own = sources.memory_cgroup(self.roots)
        if own is None:
            raise SystemChangeRefused("no memory cgroup found for this process (is the memory controller mounted?)")
        if own.version == 2:
            control = sources.read_optional(own.path / "cgroup.subtree_control") or ""
            if "memory" not in control.split():
                raise SystemChangeRefused(f"cannot make a memory cgroup under {own.path}: its cgroup.subtree_control "
                                          "does not delegate the memory controller")
        return own.version, own.path

    def __enter__(self) -> "WorkloadCgroup":
        self.version, parent = self._find_parent()
        self._clean_stale(parent)
        path = parent / f"{CGROUP_PREFIX}{owner_tag()}-{secrets.token_hex(3)}"
        try:
            path.mkdir()
        except PermissionError:
            raise SystemChangeRefused(f"cannot create a cgroup under {parent}: permission denied (needs root)") from None
        self.path = path
        return self

    @property
    def memory(self) -> sources.MemoryCgroup:
        if self.path is None:
            raise RuntimeError("the cgroup is not created yet; use `with WorkloadCgroup() as cg:`")
        return sources.MemoryCgroup(self.version, self.path)

    def add(self, pid: int) -> None:
        """Move process `pid` (all its threads) into this cgroup; its new pages are charged here."""
        (self.memory.path / "cgroup.procs").write_text(str(pid))

    def pids(self) -> list[int]:
        text = sources.read_optional(self.memory.path / "cgroup.procs") or ""
        return [int(p) for p in text.split()]

    def usage_bytes(self) -> int:
        return self.memory.usage_bytes()

    def file_anon_bytes(self) -> tuple[int | None, int | None]:
        return procfs.cgroup_file_anon_bytes(self.memory.stat())

    def __exit__(self, exc_type, exc, tb) -> None:
        self.remove()

    def remove(self) -> None:
        if self.path is None:
            return
        path, self.path = self.path, None
        _remove_cgroup(path, self.version)

    @staticmethod
    def _clean_stale(parent: Path) -> None:
        for entry in parent.glob(f"{CGROUP_PREFIX}*"):
            tag = entry.name[len(CGROUP_PREFIX):].rsplit("-", 1)[0]
            if entry.is_dir() and not owner_alive(tag):
                _remove_cgroup(entry, 2 if (entry / "memory.current").exists() else 1)


@contextlib.contextmanager
def own_workload_cgroup(roots: sources.Roots | None = None) -> Iterator[tuple["WorkloadCgroup | None", str | None]]:
    """A WorkloadCgroup where this guest permits one, else None and the reason (never an error).

    For experiments that only want to *measure* their own workload (not reclaim from it): a
    sub-cgroup of our own, holding only our child, changes nothing for anyone else, so it needs
    no consent; where the kernel refuses (not root, v2 without a delegated memory controller)
    the experiment runs without it and says why. Removed on exit, exceptions and Ctrl-C included.
    """
    try:
        cgroup = WorkloadCgroup(roots).__enter__()
    except (SystemChangeRefused, OSError) as exc:
        yield None, str(exc)
        return
    try:
        yield cgroup, None
    finally:
        cgroup.remove()


def _remove_cgroup(path: Path, version: int) -> None:
    parent_procs = path.parent / "cgroup.procs"
    for _ in range(3):  # a task may fork while we move them; a few rounds catch the stragglers
        text = sources.read_optional(path / "cgroup.procs") or ""
        if not text.split():
            break
        for pid in text.split():
            try:
                parent_procs.write_text(pid)
            except OSError:
                pass  # it exited meanwhile
    if version == 1:
        try:
            (path / "memory.force_empty").write_text("0")
        except OSError:
            pass  # best effort: rmdir still succeeds; the pages stay charged to a dying cgroup
    for _ in range(50):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
            time.sleep(0.02)  # exiting tasks leave the cgroup asynchronously
    path.rmdir()


@dataclass(frozen=True)
class ReclaimResult:
    method: str            # "memory.reclaim" | "cgroup-v1 limit_in_bytes squeeze"
    requested_bytes: int
    reclaimed_bytes: int   # usage before - usage after (others may allocate meanwhile: a measurement)
    duration_s: float
    note: str = ""         # e.g. why less than asked was reclaimed
    request: str = ""      # what was written: "<bytes>" or "<bytes> swappiness=0" (v2), the goal limit (v1)


V1_SQUEEZE = "cgroup-v1 limit_in_bytes squeeze"


def cgroup_reclaim(size_bytes: int, allow: bool | None = None,
                   cgroup: WorkloadCgroup | sources.MemoryCgroup | None = None,
                   roots: sources.Roots | None = None, env: Mapping[str, str] = os.environ,
                   swappiness: int | None = None) -> ReclaimResult:
    """Ask the kernel to reclaim `size_bytes` from a memory cgroup.

    cgroup v2: write to its memory.reclaim (default: this process's cgroup, as WSL does for
    the whole guest). cgroup v1: the limit squeeze described in the module doc, only on a
    WorkloadCgroup (pass one). Without swap only page cache and reclaimable slab can go.
    `swappiness` (0..200): v2 writes "<bytes> swappiness=<n>" as WSL's newer thread does; a kernel
    that rejects the key (EINVAL: before Linux 6.13) gets the bytes alone and the note says so. v1's
    squeeze has no such argument (the note says so); without swap it reclaims no anonymous memory anyway.
    """
    if isinstance(size_bytes, bool) or not isinstance(size_bytes, int) or size_bytes <= 0:
        raise ValueError(f"cgroup_reclaim needs a positive number of bytes; got {size_bytes!r}")
    if swappiness is not None and (isinstance(swappiness, bool) or not isinstance(swappiness, int)
                                   or not 0 <= swappiness <= 200):
        raise ValueError(f"swappiness must be a whole number from 0 to 200 (memory.reclaim's range); got {swappiness!r}")
    roots = _roots(roots)
    target = cgroup.memory if isinstance(cgroup, WorkloadCgroup) else cgroup
    if target is None:
        target = sources.memory_cgroup(roots)
        if target is None:
            raise SystemChangeRefused("cgroup reclaim refused: no memory cgroup found for this process")
    if target.version == 2:
        return _reclaim_v2(size_bytes, target, cgroup is None, roots, allow, env, swappiness)
    if not isinstance(cgroup, WorkloadCgroup):
        raise SystemChangeRefused(
            "cgroup reclaim refused: this is cgroup v1, which has no memory.reclaim; its stand-in (lowering "
            "memory.limit_in_bytes for a moment) only runs on a WorkloadCgroup this process created, "
            "never on a cgroup others' processes live in; pass cgroup=<WorkloadCgroup>")
    result = _squeeze_v1(size_bytes, target, roots, allow, env)
    if swappiness is not None:
        extra = f"swappiness={swappiness} not passed: the v1 squeeze has no such argument"
        result = dataclasses.replace(result, note="; ".join(x for x in (result.note, extra) if x))
    return result


def _reclaim_v2(size_bytes: int, target: sources.MemoryCgroup, own: bool, roots: sources.Roots,
                allow: bool | None, env: Mapping[str, str], swappiness: int | None = None) -> ReclaimResult:
    if own:
        path = consent.require("memory.reclaim", roots, allow, env)
    else:
        path = target.path / "memory.reclaim"
        if not path.exists():
            raise SystemChangeRefused(f"memory.reclaim refused: {path} does not exist (needs Linux >= 5.19)")
        _require_cgroup_write("memory.reclaim", path, roots, allow, env)
    before = target.usage_bytes()
    notes = []
    request = str(size_bytes) if swappiness is None else f"{size_bytes} swappiness={swappiness}"
    t0 = time.perf_counter()
    try:
        try:
            _write_request(path, request)
        except OSError as exc:
            if exc.errno != errno.EINVAL or swappiness is None:
                raise
            # Kernels before 6.13 know no keys in memory.reclaim: ask for the bytes alone, and say so.
            notes.append(f"this kernel rejected 'swappiness={swappiness}' (EINVAL); asked for the bytes alone")
            request = str(size_bytes)
            _write_request(path, request)
    except OSError as exc:
        if exc.errno != errno.EAGAIN:
            raise
        notes.append("the kernel reclaimed less than asked (EAGAIN): what is left is not reclaimable now")
    duration_s = time.perf_counter() - t0
    return ReclaimResult("memory.reclaim", size_bytes, before - target.usage_bytes(), duration_s,
                         "; ".join(notes), request)


def _write_request(path: Path, request: str) -> None:
    with open(path, "w") as f:
        f.write(request)


def _squeeze_v1(size_bytes: int, target: sources.MemoryCgroup, roots: sources.Roots,
                allow: bool | None, env: Mapping[str, str]) -> ReclaimResult:
    limit_file = target.limit_file
    _require_cgroup_write(V1_SQUEEZE, limit_file, roots, allow, env)
    old_limit = limit_file.read_text().strip()
    before = target.usage_bytes()
    goal = max(0, before - size_bytes)
    note = ""
    t0 = time.perf_counter()
    try:
        # The kernel reclaims until usage fits under the new limit, or gives up with EBUSY
        # (it never sets a limit below usage, so the write itself OOM-kills no one).
        with open(limit_file, "w") as f:
            f.write(str(goal))
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise
        note = (f"EBUSY: the kernel could not get the cgroup below {format_size(goal)}; what remains is not "
                "reclaimable now (anonymous memory without swap, dirty or mapped pages)")
    finally:
        with open(limit_file, "w") as f:  # put the old limit back at once, whatever happened
            f.write(old_limit)
    duration_s = time.perf_counter() - t0
    return ReclaimResult(V1_SQUEEZE, size_bytes, before - target.usage_bytes(), duration_s, note,
                         f"limit_in_bytes={goal}")
