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
  * a shared machine (consent.shared_reason: RECLAIMLAB_SHARED, a container such as Binder
    or a JupyterHub server): each participant's experiment measures its own memory cgroup,
    so one lock per memory cgroup, and participants never wait for each other.
Both kinds take the machine's lock file: a machine-wide run exclusively, a shared one as a
shared flock (then its cgroup's lock exclusively). So where two processes disagree on whether
the machine is shared (one has RECLAIMLAB_SHARED set, the other not), the setting cannot give
either a second, independent lock: a machine-wide run still waits for every other live run,
and they for it. (Only root's shared runs create that file: a participant's would make root's
machine-wide run refuse it. Every machine-wide run creates it, so this holds from the first one on.)

Where the lock lives, and whom it trusts. The folder is the first of /run/lock and /tmp that
is sticky and every user may write: the same answer for root and every user, and no
environment variable changes it (TMPDIR included), so a guest never has two locks. Such a
folder is also where another user can plant a file under our names, so:
  * every file there is opened with O_NOFOLLOW (a planted symbolic link is refused, never
    followed), and fstat then checks what was opened: a regular file with one link, owned
    by root or by us (the effective uid). Root so trusts only its own files; an unprivileged
    user trusts root's and its own. Anything else is refused with its path and what to do;
  * the lock file is never written: flock needs only a read-only descriptor, so it is
    created 0644 by the first run and nobody truncates or writes through it;
  * the note is written to a new file of ours and renamed into place (a rename replaces a
    planted link or file, never writes through it), and removed again at the end if it is
    still ours. Only its writer may change it (0644). A reader reads at most NOTE_MAX_BYTES,
    believes it only where its owner is root or runs the process it names, and shows every
    field as plain text (no terminal escapes), bounded in length.
Any user who may run a live experiment here may hold the lock, as a run of theirs would; a
waiting run names them.
"""
from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import hashlib
import json
import os
import pwd
import secrets
import stat
import sys
import time
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from ..probe import consent, sources

DEFAULT_TIMEOUT_S = 600.0   # a lab's longest live experiment takes a few minutes
POLL_S = 0.2
CANDIDATE_DIRS = ("/run/lock", "/tmp")  # the FHS place for lock files, else the one every system has
NOTE_MAX_BYTES = 4096       # our own note is ~300 bytes; anything bigger was not written by a run
FIELD_MAX_CHARS = 200       # one field of the note as a waiting run shows it
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # NONBLOCK: a planted FIFO must not hang us


class GuestBusy(RuntimeError):
    """Another live experiment held this guest for longer than the timeout; the message names it."""

    def __init__(self, message: str, holder: dict[str, Any] | None):
        super().__init__(message)
        self.holder = holder


class LockFileRefused(GuestBusy):
    """The lock's folder or file is not one a run may safely use; the message names it and the fix."""

    def __init__(self, message: str):
        super().__init__(message, None)


@dataclass(frozen=True)
class Scope:
    key: str          # part of the lock file's name
    description: str  # for messages: "this machine", "memory cgroup /user.slice/..."


def scope(roots: sources.Roots | None = None, env: Mapping[str, str] = os.environ) -> Scope:
    """What one live experiment measures here, and so what the lock serialises."""
    roots = roots or sources.Roots.from_env()
    shared = consent.shared_reason(roots, env)
    if not shared:
        return Scope("machine", "this machine")
    cgroup = sources.memory_cgroup(roots)
    if cgroup is None:
        uid = os.getuid()
        return Scope(f"user-{uid}", f"user {uid} on a shared machine without a memory cgroup")
    where = str(cgroup.path)
    return Scope("cgroup-" + hashlib.sha256(where.encode()).hexdigest()[:16], f"memory cgroup {where}")


def machine_lock_dir() -> Path:
    """The first of CANDIDATE_DIRS that is a sticky folder every user may write, else /tmp.

    The same answer for every user of the machine, whatever the environment says: one lock per guest."""
    for candidate in CANDIDATE_DIRS:
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_mode & 0o1003 == 0o1003:
            return Path(candidate)
    return Path(CANDIDATE_DIRS[-1])


def _trusted_uids() -> set[int]:
    return {0, os.geteuid()}


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "symbolic link"), (stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "FIFO"),
                       (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "special file"


def file_problem(st: os.stat_result, trusted_uids: set[int]) -> str | None:
    """What makes an opened file unfit to be ours (pure), or None: a regular file, one link, a trusted owner."""
    if not stat.S_ISREG(st.st_mode):
        return f"is a {_kind(st.st_mode)}, not a regular file"
    if st.st_nlink != 1:  # a hard link to some other file (fs.protected_hardlinks=0 lets anyone make one)
        return f"has {st.st_nlink} hard links where a file of reclaimlab's has one"
    if st.st_uid not in trusted_uids:
        return f"belongs to user {_user_name(st.st_uid)} (uid {st.st_uid}), not to root or to you"
    return None


def folder_problem(st: os.stat_result, trusted_uids: set[int]) -> str | None:
    """What makes a lock folder unsafe (pure), or None: others could swap our files in it unless it is sticky."""
    if not stat.S_ISDIR(st.st_mode):
        return f"is a {_kind(st.st_mode)}, not a folder"
    if st.st_uid not in trusted_uids:
        return f"belongs to user {_user_name(st.st_uid)} (uid {st.st_uid}), not to root or to you"
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        return "may be written by other users but is not sticky, so they could replace the files in it"
    return None


def _refuse(path: Path, problem: str) -> LockFileRefused:
    return LockFileRefused(
        f"the live-experiment lock {path} {problem}, so reclaimlab will not use it (another user may have "
        f"put it there). If no reclaimlab live run is using it, remove it (rm -r {path}, as root or as its "
        f"owner) and run again; where several people use this machine, set RECLAIMLAB_SHARED=1 so that each "
        f"memory cgroup has a lock of its own.")


def _check_folder(directory: Path) -> None:
    try:
        st = os.stat(directory)
    except OSError as exc:
        raise LockFileRefused(f"the live-experiment lock folder {directory} cannot be used ({exc.strerror}); "
                              f"reclaimlab keeps its lock in {' or '.join(CANDIDATE_DIRS)}") from None
    problem = folder_problem(st, _trusted_uids())
    if problem:
        raise LockFileRefused(f"the live-experiment lock folder {directory} {problem}; reclaimlab will not keep "
                              f"its lock there (give it a folder owned by root or you, chmod +t if others may write it)")


def _open_checked(path: Path, create: bool = True) -> int:
    """A read-only descriptor of the regular file at `path`, created (0644) if absent (FileNotFoundError
    where not `create`); never follows a link."""
    try:
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except FileNotFoundError:
            if not create:
                raise
            try:  # O_EXCL: fails on anything already there, a dangling link included
                fd = os.open(path, _OPEN_FLAGS | os.O_CREAT | os.O_EXCL, 0o644)
                os.fchmod(fd, 0o644)  # the umask may have taken the read bits others need to lock it
            except FileExistsError:
                fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refuse(path, "is a symbolic link, not a file") from None
        raise LockFileRefused(f"cannot open the live-experiment lock {path} ({exc.strerror}); if something "
                              f"other than reclaimlab's lock file is there, remove it and run again") from None
    problem = file_problem(os.fstat(fd), _trusted_uids())
    if problem:
        os.close(fd)
        raise _refuse(path, problem)
    return fd


def _try_lock(fd: int, op: int = fcntl.LOCK_EX) -> bool:
    try:
        fcntl.flock(fd, op | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise


def _alive(pid: Any) -> bool:
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    return True


def _pid_owner(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def _command() -> str:
    try:
        raw = Path("/proc/self/cmdline").read_bytes()
        words = [w.decode(errors="replace") for w in raw.split(b"\0") if w]
    except OSError:
        words = list(sys.argv)
    text = " ".join(words)
    return text if len(text) <= FIELD_MAX_CHARS else text[:FIELD_MAX_CHARS - 3] + "..."


def _user() -> str:
    return _user_name(os.getuid())


def plain_text(value: Any, limit: int = FIELD_MAX_CHARS) -> str:
    """`value` as plain text for a terminal: each control or format character (ESC, CR, BEL, C1,
    bidi overrides: what could move the cursor, clear the screen or reorder the line) becomes '?',
    and at most `limit` characters."""
    text = "".join("?" if unicodedata.category(c).startswith("C") else c for c in str(value))
    return text if len(text) <= limit else text[:limit - 3] + "..."


def describe_holder(holder: dict[str, Any] | None, now_s: float | None = None) -> str:
    """'calloc-reclaim (the kit's VM), started 14:02:11 UTC, 95 s ago, by pid 1234 (user root: reclaimlab ...)'.

    The note is another process's text: every field is shown as plain_text."""
    if not holder:
        return "another reclaimlab live experiment (it has not said which yet)"
    now_s = time.time() if now_s is None else now_s
    since = holder.get("since_epoch_s")
    ago = (f", {max(0.0, now_s - since):.0f} s ago"
           if isinstance(since, (int, float)) and not isinstance(since, bool) and abs(since) < 1e12 else "")
    command = plain_text(holder.get("command") or "?")
    if "ipykernel" in command:
        command = f"a Jupyter notebook kernel: {command}"
    where = " (in the kit's VM)" if holder.get("guest") == "vm" else ""
    started = plain_text(holder.get("since_utc", "?"), 40).replace("T", " ").replace("Z", " UTC")
    return (f"{plain_text(holder.get('experiment', '?'), 80)}{where}, started {started}{ago}, "
            f"by pid {plain_text(holder.get('pid', '?'), 20)} (user {plain_text(holder.get('user', '?'), 64)}: {command})")


def read_holder(info_path: Path) -> dict[str, Any] | None:
    """The note the current holder wrote, or None (absent, left by a dead run, or not one to believe).

    Believed only where it is a regular file of at most NOTE_MAX_BYTES owned by root or by the
    user who runs the process it names; its "user" is that file's owner, not what it says."""
    try:
        fd = os.open(info_path, _OPEN_FLAGS)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > NOTE_MAX_BYTES:
            return None
        raw = os.read(fd, NOTE_MAX_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        holder = json.loads(raw.decode("utf-8")) if len(raw) <= NOTE_MAX_BYTES else None
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested too deep
        return None
    if not isinstance(holder, dict) or not _alive(holder.get("pid")):
        return None
    if st.st_uid != 0 and st.st_uid != _pid_owner(holder["pid"]):
        return None
    return {**holder, "user": _user_name(st.st_uid)}


def _publish_note(directory: Path, name: str, holder: dict[str, Any]) -> os.stat_result | None:
    """Write the note to a new file of ours and rename it to `name`: it never writes through a file
    or link already there, and a reader never sees half a note. None where it could not (another
    user's stale note in a sticky folder cannot be replaced): waiting runs then say less, nothing else."""
    temporary = directory / f"{name}.{secrets.token_hex(8)}.tmp"
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)
            f.write((json.dumps(holder, indent=2) + "\n").encode("utf-8"))
            written = os.fstat(f.fileno())
        os.rename(temporary, directory / name)
        return written
    except OSError:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        return None


def _withdraw_note(path: Path, written: os.stat_result | None) -> None:
    """Remove the note if it is still the file we wrote (unlink removes a name; it writes no file)."""
    if written is None:
        return
    try:
        now = os.lstat(path)
        if (now.st_dev, now.st_ino) == (written.st_dev, written.st_ino):
            os.unlink(path)
    except OSError:
        pass


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


MACHINE_KEY = "machine"


def _machine_fd_if_any(path: Path) -> int | None:
    """For a run on a shared machine: the machine's lock file where one of root's or ours is there, created
    only by root. A participant never creates it (root's machine-wide run would then refuse a file of theirs)
    and skips one it does not trust; every machine-wide run creates it, so once one has run, participants'
    runs wait for the next one and it for them."""
    try:
        return _open_checked(path, create=os.geteuid() == 0)
    except (FileNotFoundError, LockFileRefused):
        return None
SHARED_HOLDERS = ("live experiments of users for whom this machine is shared (RECLAIMLAB_SHARED set, or a "
                  "container), each measuring its own memory cgroup")


def _acquire(fd: int, op: int, info_path: Path, description: str, experiment: str, timeout_s: float,
             deadline_s: float, say: Callable[[str], None], unnamed: str | None = None) -> None:
    """flock `op` on `fd`, waiting until `deadline_s`: says once who holds it (the note at `info_path`, else
    `unnamed`), GuestBusy naming them when the time is up."""
    if _try_lock(fd, op):
        return

    def who(holder: dict[str, Any] | None) -> str:
        return describe_holder(holder) if holder is not None or unnamed is None else unnamed

    holder = read_holder(info_path)
    if holder is None:  # not written yet: look once more
        time.sleep(POLL_S)
        holder = read_holder(info_path)
    say(f"⏳ waiting: another live experiment runs on {description}: {who(holder)}. "
        f"Two at once would measure each other, so this one starts when it ends "
        f"(waiting up to {timeout_s:g} s).")
    while not _try_lock(fd, op):
        if time.monotonic() >= deadline_s:
            holder = read_holder(info_path) or holder
            raise GuestBusy(
                f"{experiment}: {description} was still busy after {timeout_s:g} s with "
                f"{who(holder)}. Let it finish (or stop it) and run again, wait longer "
                f"(lock_timeout_s= in Python, --wait on the command line), or use mode='recorded'.",
                holder)
        time.sleep(POLL_S)
    say(f"▶ {description} is free now: starting {experiment}")


@contextmanager
def hold(experiment: str, *, guest: str = "local", timeout_s: float = DEFAULT_TIMEOUT_S,
         roots: sources.Roots | None = None, env: Mapping[str, str] = os.environ,
         say: Callable[[str], None] = _stderr, directory: Path | None = None) -> Iterator[dict[str, Any]]:
    """Hold this guest's live-experiment lock for the block; wait up to `timeout_s` for it.

    Says once (through `say`) who holds it while waiting; raises GuestBusy naming the holder
    when `timeout_s` passes, LockFileRefused where the lock's folder or file is unsafe to use.
    Yields the description it wrote for others to read. `directory` (tests only) replaces
    machine_lock_dir(): a second lock for the same guest is what the lock exists to prevent.
    """
    if not isinstance(timeout_s, (int, float)) or isinstance(timeout_s, bool) or not timeout_s >= 0:
        raise ValueError(f"lock_timeout_s must be a number of seconds >= 0, not {timeout_s!r}")
    where = scope(roots, env)
    base = machine_lock_dir() if directory is None else Path(directory)
    _check_folder(base)
    lock_path = base / f"reclaimlab-{where.key}.lock"
    info_path = base / f"reclaimlab-{where.key}.json"
    machine_path = base / f"reclaimlab-{MACHINE_KEY}.lock"
    machine_fd = _open_checked(machine_path) if where.key == MACHINE_KEY else _machine_fd_if_any(machine_path)
    fd = machine_fd
    try:
        deadline_s = time.monotonic() + timeout_s
        if where.key == MACHINE_KEY:  # the whole guest: no other live run of any scope
            _acquire(machine_fd, fcntl.LOCK_EX, info_path, where.description, experiment, timeout_s, deadline_s,
                     say, SHARED_HOLDERS)
        else:  # shared: the machine's lock shared with other cgroups' runs, then this cgroup's own
            if machine_fd is not None:
                _acquire(machine_fd, fcntl.LOCK_SH, base / f"reclaimlab-{MACHINE_KEY}.json", "this machine as a whole",
                         experiment, timeout_s, deadline_s, say)
            fd = _open_checked(lock_path)
            _acquire(fd, fcntl.LOCK_EX, info_path, where.description, experiment, timeout_s, deadline_s, say)
        now = _dt.datetime.now(_dt.timezone.utc)
        holder = {"pid": os.getpid(), "user": _user(), "command": _command(), "experiment": experiment,
                  "guest": guest, "since_utc": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "since_epoch_s": now.timestamp(),
                  "scope": where.description}
        written = _publish_note(base, info_path.name, holder)
        try:
            yield holder
        finally:
            _withdraw_note(info_path, written)
    finally:
        for held in {fd, machine_fd} - {None}:
            os.close(held)  # releases the flock
