"""Who may turn system-wide knobs here, and why not.

System-wide actions (dropping caches, compaction, reclaim) change memory for every
process on the machine. They run only when all of these hold:
  1. the guest permits it: we are root and the knob's file is writable;
  2. this is not a shared machine: not a container (Binder, JupyterHub), and
     RECLAIMLAB_SHARED is unset or an explicit no (0, false, no, off, or empty). Any other
     value marks the machine as shared, one we do not recognise included (fails closed);
  3. the caller asked for it: allow_system_changes=True (in a lab, in Python, or
     --allow-system-changes on `reclaimlab record` / `reclaimlab labs`), or the instructor
     set RECLAIMLAB_ALLOW_SYSTEM_CHANGES to an explicit yes (1, true, yes or on). Any other
     value is not consent, and the refusal says so.
Never sudo, never a password prompt: without permission we refuse with the reason.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from . import sources

ALLOW_ENV = "RECLAIMLAB_ALLOW_SYSTEM_CHANGES"
SHARED_ENV = "RECLAIMLAB_SHARED"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
INIT_PID_NS_INODE = 0xEFFFFFFC  # include/linux/proc_ns.h: PROC_PID_INIT_INO


class SystemChangeRefused(PermissionError):
    """A system-wide action was refused; str() says why and what would permit it."""


def _word(value: str | None) -> str:
    return (value or "").strip().lower()


def _truthy(value: str | None) -> bool:
    return _word(value) in _TRUE


def container_reason(roots: sources.Roots, env: Mapping[str, str] = os.environ) -> str | None:
    """Why we believe this process is in a container, or None."""
    if env.get("BINDER_LAUNCH_HOST") or env.get("BINDER_REPO_URL"):
        return "Binder (BINDER_* set)"
    if env.get("JUPYTERHUB_USER"):
        return "a JupyterHub single-user server (JUPYTERHUB_USER set)"
    if env.get("KUBERNETES_SERVICE_HOST"):
        return "a Kubernetes pod (KUBERNETES_SERVICE_HOST set)"
    # The kernel gives its initial PID namespace a fixed inode (PROC_PID_INIT_INO): if ours is
    # another, this process shares a kernel it does not own. Checked before marker files
    # because VM images built from container images keep a stale /.dockerenv.
    try:
        pid_ns = os.readlink(roots.proc / "self" / "ns" / "pid")
    except OSError:
        pid_ns = ""
    if pid_ns:
        if pid_ns != f"pid:[{INIT_PID_NS_INODE}]":
            return f"a container (PID namespace {pid_ns} is not the kernel's initial one)"
        return None
    fs_root = roots.proc.parent
    for marker, what in ((".dockerenv", "Docker (/.dockerenv)"), ("run/.containerenv", "Podman (/run/.containerenv)")):
        if (fs_root / marker).exists():
            return what
    cgroup = sources.read_optional(roots.proc / "1" / "cgroup") or ""
    for word in ("docker", "kubepods", "containerd", "libpod", "lxc"):
        if word in cgroup:
            return f"a container (PID 1's cgroup names {word})"
    return None


def shared_reason(roots: sources.Roots, env: Mapping[str, str] = os.environ) -> str | None:
    """Why this machine counts as shared (system-wide knobs stay off), or None."""
    value = env.get(SHARED_ENV)
    if value is not None and _word(value) not in _FALSE:
        if _truthy(value):
            return f"{SHARED_ENV}={value.strip()} marks this machine as shared"
        return (f"{SHARED_ENV}={value!r} is not a value reclaimlab recognises (0, false, no, off or empty mean "
                f"not shared), so it was taken as shared")
    where = container_reason(roots, env)
    if where:
        return f"this runs in {where}, whose kernel other users share"
    return None


def changes_allowed(allow: bool | None = None, env: Mapping[str, str] = os.environ) -> bool:
    """The caller's consent: the explicit parameter wins (only True is a yes), else the environment
    variable (only 1, true, yes or on is a yes)."""
    if allow is not None:
        return allow is True
    return _truthy(env.get(ALLOW_ENV))


def not_allowed(env: Mapping[str, str] = os.environ) -> str:
    """Why there is no consent and how to give it, for a refusal; names an environment value that
    was not recognised as a yes."""
    value = env.get(ALLOW_ENV)
    unrecognised = (f" ({ALLOW_ENV}={value!r} is not a yes: only 1, true, yes or on give consent)"
                    if value is not None and _word(value) not in _TRUE | _FALSE else "")
    return (f"system-wide changes were not allowed{unrecognised}; pass allow_system_changes=True "
            f"(--allow-system-changes on the command line, or set {ALLOW_ENV}=1) on a machine that is yours")


KNOB_FILES = {
    "drop_caches": "sys/vm/drop_caches",
    "compact_memory": "sys/vm/compact_memory",
    "compaction_proactiveness": "sys/vm/compaction_proactiveness",
}


@dataclass(frozen=True)
class KnobAccess:
    name: str            # drop_caches | compact_memory | compaction_proactiveness | memory.reclaim
    path: Path | None    # None where this guest has no such file
    writable: bool
    reason: str          # why not writable, or how it is writable


def knob_access(roots: sources.Roots, cgroup: sources.MemoryCgroup | None = None) -> dict[str, KnobAccess]:
    """Which knobs this process could write (ignoring consent and the shared-machine rule)."""
    is_root = os.geteuid() == 0 if hasattr(os, "geteuid") else False
    out: dict[str, KnobAccess] = {}
    paths = {name: roots.proc / rel for name, rel in KNOB_FILES.items()}
    if cgroup is None:
        cgroup = sources.memory_cgroup(roots)
    paths["memory.reclaim"] = cgroup.reclaim_file if cgroup else None
    for name, path in paths.items():
        if path is None or not path.exists():
            why = ("no cgroup v2 memory.reclaim here (needs cgroup v2 and Linux >= 5.19)"
                   if name == "memory.reclaim" else f"{path} does not exist on this kernel")
            out[name] = KnobAccess(name, None, False, why)
        elif os.access(path, os.W_OK) and (is_root or not roots.is_live or name == "memory.reclaim"):
            out[name] = KnobAccess(name, path, True, "writable" + (" as root" if is_root else ""))
        elif not is_root:
            out[name] = KnobAccess(name, path, False, "needs root (reclaimlab never uses sudo)")
        else:
            out[name] = KnobAccess(name, path, False, f"{path} is read-only here (a container's /proc/sys?)")
    return out


def require(knob: str, roots: sources.Roots, allow: bool | None = None,
            env: Mapping[str, str] = os.environ) -> Path:
    """The knob's path if every rule above permits writing it; else SystemChangeRefused with the reason."""
    access = knob_access(roots).get(knob)
    if access is None:
        raise SystemChangeRefused(f"unknown knob {knob!r}; known: {', '.join(sorted(KNOB_FILES) + ['memory.reclaim'])}")
    if not access.writable or access.path is None:
        raise SystemChangeRefused(f"{knob} refused: {access.reason}")
    shared = shared_reason(roots, env)
    if shared:
        raise SystemChangeRefused(f"{knob} refused: {shared}; system-wide changes stay off on shared machines")
    if not changes_allowed(allow, env):
        raise SystemChangeRefused(f"{knob} refused: {not_allowed(env)}")
    return access.path
