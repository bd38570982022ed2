"""One live experiment at a time per guest: a second one waits, naming the one that runs.

Two live experiments on one guest measure each other: one's allocation moves the other's
MemFree, its freeing moves the other's "returned to host", its drop_caches empties the other's
page cache. So a live run holds a lock while it runs (experiments.run takes it; recorded
mode never does). The lock is flock(2) on a file: the kernel releases it when the holder's
process dies, even by kill -9, so a killed run never leaves a lock behind. The JSON file
beside it says who holds it (pid, user, command, experiment, since when), only for the
message a waiting run prints.

What the lock covers is what an experiment measures:
  * a guest the kit owns: the whole guest's counters and system-wide knobs, so one lock
    for the machine;
  * a shared machine (policy.shared_reason: RECLAIMLAB_SHARED=1, a container such as Binder
    or a JupyterHub server): each participant's experiment measures its own memory cgroup,
    so one lock per memory cgroup, and participants never wait for each other.
"""
from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import hashlib
import json
import os
import pwd
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from . import consent as policy, sources

DEFAULT_TIMEOUT_S = 600.0   # a lab's longest live experiment takes a few minutes
LOCK_DIR_ENV = "RECLAIMLAB_LOCK_DIR"
POLL_S = 0.2


class GuestBusy(RuntimeError):
    """Another live experiment held this guest for longer than the timeout; the message names it."""

    def __init__(self, message: str, holder: dict[str, Any] | None):
        super().__init__(message)
        self.holder = holder


@dataclass(frozen=True)
class Scope:
    key: str          # part of the lock file's name
    description: str  # for messages: "this machine", "memory cgroup /user.slice/..."


def scope(roots: sources.Roots | None = None, env: Mapping[str, str] = os.environ) -> Scope:
    """What one live experiment measures here, and so what the lock serialises."""
    roots = roots or sources.Roots.from_env()
    shared = policy.shared_reason(roots, env)
    if not shared:
        return Scope("machine", "this machine")
    cgroup = sources.memory_cgroup(roots)
    if cgroup is None:
        uid = os.getuid()
        return Scope(f"user-{uid}", f"user {uid} on a shared machine without a memory cgroup")
    where = str(cgroup.path)
    return Scope("cgroup-" + hashlib.sha256(where.encode()).hexdigest()[:16], f"memory cgroup {where}")


def lock_dir(env: Mapping[str, str] = os.environ) -> Path:
    """RECLAIMLAB_LOCK_DIR, else /run/lock (the FHS place, one per machine), else the temp folder."""
    if env.get(LOCK_DIR_ENV):
        return Path(env[LOCK_DIR_ENV])
    run_lock = Path("/run/lock")
    if run_lock.is_dir() and os.access(run_lock, os.W_OK | os.X_OK):
        return run_lock
    return Path(tempfile.gettempdir())


def _open_shared(path: Path, flags: int) -> int:
    """Open (creating, mode 0666) a file every user of the machine can lock and rewrite.

    Without O_CREAT first: fs.protected_regular refuses O_CREAT on another user's file in a
    sticky folder such as /tmp, even where its mode would allow the open."""
    try:
        return os.open(path, flags)
    except FileNotFoundError:
        pass
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return os.open(path, flags)
    try:
        os.fchmod(fd, 0o666)  # the umask took bits away; another user's run must open it too
    except OSError:
        pass
    return fd


def _open_lock(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return _open_shared(path, os.O_RDWR)
    except PermissionError:
        return os.open(path, os.O_RDONLY)  # flock needs no write access


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _command() -> str:
    try:
        raw = Path("/proc/self/cmdline").read_bytes()
        words = [w.decode(errors="replace") for w in raw.split(b"\0") if w]
    except OSError:
        words = list(sys.argv)
    text = " ".join(words)
    return text if len(text) <= 200 else text[:197] + "..."


def _user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid {os.getuid()}"


def describe_holder(holder: dict[str, Any] | None, now_s: float | None = None) -> str:
    """'calloc-reclaim (the kit's VM), started 14:02:11 UTC, 95 s ago, by pid 1234 (user root: reclaimlab ...)'."""
    if not holder:
        return "another reclaimlab live experiment (it has not said which yet)"
    now_s = time.time() if now_s is None else now_s
    since = holder.get("since_epoch_s")
    ago = f", {max(0, now_s - since):.0f} s ago" if isinstance(since, (int, float)) else ""
    command = holder.get("command") or "?"
    if "ipykernel" in command:
        command = f"a Jupyter notebook kernel: {command}"
    where = " (in the kit's VM)" if holder.get("guest") == "vm" else ""
    started = str(holder.get("since_utc", "?")).replace("T", " ").replace("Z", " UTC")
    return (f"{holder.get('experiment', '?')}{where}, started {started}{ago}, by pid {holder.get('pid', '?')} "
            f"(user {holder.get('user', '?')}: {command})")


def read_holder(info_path: Path) -> dict[str, Any] | None:
    """The description the current holder wrote, or None (not written yet, or left by a dead run)."""
    try:
        holder = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(holder, dict) or not _alive(holder.get("pid")):
        return None
    return holder


def _write_holder(info_path: Path, holder: dict[str, Any]) -> None:
    """Written only while holding the lock, so no two writers race; a reader retries a torn read."""
    try:
        fd = _open_shared(info_path, os.O_WRONLY)
    except OSError:
        return  # another user's file we may not write: the waiting message will say less, nothing else
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.truncate(0)
        f.write(json.dumps(holder, indent=2) + "\n")


def _clear_holder(info_path: Path) -> None:
    try:
        fd = os.open(info_path, os.O_WRONLY | os.O_TRUNC)
        os.close(fd)
    except OSError:
        pass


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def hold(experiment: str, *, guest: str = "local", timeout_s: float = DEFAULT_TIMEOUT_S,
         roots: sources.Roots | None = None, env: Mapping[str, str] = os.environ,
         say: Callable[[str], None] = _stderr) -> Iterator[dict[str, Any]]:
    """Hold this guest's live-experiment lock for the block; wait up to `timeout_s` for it.

    Says once (through `say`) who holds it while waiting; raises GuestBusy naming the holder
    when `timeout_s` passes. Yields the description it wrote for others to read.
    """
    if not isinstance(timeout_s, (int, float)) or isinstance(timeout_s, bool) or not timeout_s >= 0:
        raise ValueError(f"lock_timeout_s must be a number of seconds >= 0, not {timeout_s!r}")
    where = scope(roots, env)
    base = lock_dir(env)
    lock_path = base / f"reclaimlab-{where.key}.lock"
    info_path = base / f"reclaimlab-{where.key}.json"
    try:
        fd = _open_lock(lock_path)
    except OSError as exc:
        raise GuestBusy(f"cannot open the live-experiment lock {lock_path} ({exc.strerror}); set {LOCK_DIR_ENV} "
                        f"to a folder every user of this machine can write", None) from None
    try:
        if not _try_lock(fd):
            holder = read_holder(info_path)
            if holder is None:  # a torn read or not written yet: look once more
                time.sleep(POLL_S)
                holder = read_holder(info_path)
            say(f"⏳ waiting: another live experiment runs on {where.description}: {describe_holder(holder)}. "
                f"Two at once would measure each other, so this one starts when it ends "
                f"(waiting up to {timeout_s:g} s).")
            deadline_s = time.monotonic() + timeout_s
            while not _try_lock(fd):
                if time.monotonic() >= deadline_s:
                    holder = read_holder(info_path) or holder
                    raise GuestBusy(
                        f"{experiment}: {where.description} was still busy after {timeout_s:g} s with "
                        f"{describe_holder(holder)}. Let it finish (or stop it) and run again, wait longer "
                        f"(lock_timeout_s= in Python, --wait on the command line), or use mode='recorded'.",
                        holder)
                time.sleep(POLL_S)
            say(f"▶ {where.description} is free now: starting {experiment}")
        now = _dt.datetime.now(_dt.timezone.utc)
        holder = {"pid": os.getpid(), "user": _user(), "command": _command(), "experiment": experiment,
                  "guest": guest, "since_utc": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "since_epoch_s": now.timestamp(),
                  "scope": where.description}
        _write_holder(info_path, holder)
        try:
            yield holder
        finally:
            _clear_holder(info_path)
    finally:
        os.close(fd)  # releases the flock
