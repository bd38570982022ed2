"""Plumbing shared by every workload: a child process driven by one-line JSON commands.

Why a child process: the notebook kernel must never hold the gigabytes itself (an OOM kill would
take the learner's session), and CPU-bound work in the kernel's process starves the sampler thread
(67-440 ms sampler gaps, measured on the kit's dev guest, 2026-11). Why subprocess and not multiprocessing 'fork': forking a notebook
kernel that runs threads (the sampler, ZMQ) can deadlock the child on a lock held at fork time.

Lifetime rules, so no child ever outlives its parent with gigabytes:
  * the child sets PR_SET_PDEATHSIG=SIGKILL first thing, then checks getppid() is still the parent
    that started it (the parent may have died before prctl ran);
  * the child exits on EOF on its stdin (the parent closed the pipe or died);
  * the child makes itself the OOM killer's first choice (oom_score_adj 1000), so under memory
    pressure the kernel kills the workload, not the notebook;
  * the parent side (`ChildProcess`) kills the child on close, on any exception (KeyboardInterrupt
    included) and when garbage-collected or at interpreter exit.

Caveat: Linux delivers PDEATHSIG when the parent *thread* that forked the child exits. Start a
workload from the thread that outlives it (a notebook cell runs on the kernel's main thread).

Protocol: the parent writes ``{"cmd": NAME, ...}`` lines to the child's stdin; the child answers
each with one line ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}`` on its stdout.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import select
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path
from typing import Any, Callable

from ...probe.procfs import parse_status_kib

PARENT_PID_ENV = "RECLAIMLAB_PARENT_PID"
PR_SET_PDEATHSIG = 1  # include/uapi/linux/prctl.h
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class WorkloadError(RuntimeError):
    """A workload child failed or died; str() says what happened and what to look at."""


def libc() -> ctypes.CDLL:
    """The C library, loaded once, with the prototypes the workloads use (no compiler needed)."""
    global _LIBC
    if _LIBC is None:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        vp, sz = ctypes.c_void_p, ctypes.c_size_t
        for name, res, args in (
            ("calloc", vp, [sz, sz]), ("free", None, [vp]),
            ("memset", vp, [vp, ctypes.c_int, sz]),
            ("mmap", vp, [vp, sz, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]),
            ("munmap", ctypes.c_int, [vp, sz]), ("madvise", ctypes.c_int, [vp, sz, ctypes.c_int]),
            ("mallopt", ctypes.c_int, [ctypes.c_int, ctypes.c_int]),
            ("prctl", ctypes.c_int, [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]),
        ):
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = res, args
        _LIBC = lib
    return _LIBC


_LIBC: ctypes.CDLL | None = None


def os_error(call: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{call} failed: {os.strerror(err)}")


def status_kib(pid: int | str = "self") -> dict[str, int]:
    """The kB fields of /proc/<pid>/status (VmRSS, RssAnon, RssFile, ...); {} once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return parse_status_kib(text)


# ---------------------------------------------------------------- child side

def _tie_lifetime_to_parent() -> None:
    expected_parent = int(os.environ.get(PARENT_PID_ENV, "0"))
    if sys.platform.startswith("linux"):
        if libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise os_error("prctl(PR_SET_PDEATHSIG)")
    # The parent may have died between fork and prctl: then we were re-parented already.
    if expected_parent and os.getppid() != expected_parent:
        os._exit(1)
    try:  # the OOM killer should pick the workload, never the notebook kernel
        Path("/proc/self/oom_score_adj").write_text("1000")
    except OSError:
        pass
    # Ctrl-C in a terminal reaches the whole process group; the parent decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def serve(handlers: dict[str, Callable[..., dict[str, Any]]]) -> None:
    """Child main loop: answer commands until 'exit' or EOF. Handlers return the reply's fields."""
    _tie_lifetime_to_parent()
    out = sys.stdout
    out.write(json.dumps({"ok": True, "pid": os.getpid()}) + "\n")
    out.flush()
    for line in sys.stdin:
        try:
            request = json.loads(line)
            cmd = request.pop("cmd")
            if cmd == "exit":
                reply: dict[str, Any] = {"ok": True}
            else:
                handler = handlers.get(cmd)
                if handler is None:
                    raise ValueError(f"unknown command {cmd!r}; known: {', '.join(sorted(handlers))}")
                reply = {"ok": True, **handler(**request)}
        except Exception as exc:  # report to the parent; the child stays usable
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            cmd = None
        out.write(json.dumps(reply) + "\n")
        out.flush()
        if cmd == "exit":
            break
    os._exit(0)  # skip interpreter teardown: nothing to flush, and it is faster with GBs mapped


# ---------------------------------------------------------------- parent side

def _lib_dir() -> str:
    return str(Path(__file__).resolve().parents[2])  # .../lib, so `python -m reclaimlab...` imports


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    for stream in (proc.stdin, proc.stdout):
        try:
            if stream:
                stream.close()
        except OSError:
            pass


class ChildProcess:
    """Parent side of a workload child: start, send a command and wait for its reply, stop.

    A context manager; also killed by a finalizer if the object is dropped or Python exits.
    """

    def __init__(self, module: str, args: list[str] | None = None, python: str | None = None,
                 what: str = "workload"):
        self.what = what
        env = dict(os.environ)
        env[PARENT_PID_ENV] = str(os.getpid())
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_lib_dir(), env.get("PYTHONPATH")) if p)
        env.pop("PYTHONSTARTUP", None)
        self._proc = subprocess.Popen(
            [python or sys.executable, "-u", "-m", module, *(args or [])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True, bufsize=1,
            close_fds=True)
        self._finalizer = weakref.finalize(self, _kill, self._proc)
        try:
            hello = self._read_reply("start")
        except BaseException:
            self.kill()
            raise
        self.pid: int = hello["pid"]

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def _death_message(self, cmd: str) -> str:
        code = self._proc.wait(timeout=5)
        if code < 0:
            sig = signal.Signals(-code).name
            hint = " (SIGKILL: the OOM killer? see `dmesg`)" if -code == signal.SIGKILL else ""
            how = f"was killed by {sig}{hint}"
        else:
            how = f"exited with status {code}"
        return f"{self.what} child {self._proc.pid} {how} during {cmd!r}"

    def _read_reply(self, cmd: str, timeout_s: float | None = None) -> dict[str, Any]:
        assert self._proc.stdout is not None
        if timeout_s is not None:
            ready, _, _ = select.select([self._proc.stdout], [], [], timeout_s)
            if not ready:
                self.kill()
                raise WorkloadError(f"{self.what} child did not answer {cmd!r} within {timeout_s:.0f} s; killed it")
        line = self._proc.stdout.readline()
        if not line:
            raise WorkloadError(self._death_message(cmd))
        reply = json.loads(line)
        if not reply.pop("ok", False):
            raise WorkloadError(f"{self.what} child: {cmd} failed: {reply.get('error')}")
        return reply

    def request(self, cmd: str, timeout_s: float | None = None, **params: Any) -> dict[str, Any]:
        """Send one command and block until the child answers (the caller's thread only waits)."""
        if not self.alive:
            raise WorkloadError(self._death_message(cmd))
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(json.dumps({"cmd": cmd, **params}) + "\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            raise WorkloadError(self._death_message(cmd)) from None
        return self._read_reply(cmd, timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        """Ask the child to exit; kill it if it does not within timeout_s."""
        if self.alive:
            try:
                self.request("exit", timeout_s=timeout_s)
                self._proc.wait(timeout=timeout_s)
            except (WorkloadError, OSError, ValueError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def kill(self) -> None:
        self._finalizer()  # idempotent: runs _kill at most once

    def __enter__(self) -> "ChildProcess":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.kill()  # an error or Ctrl-C: do not wait politely, take the memory back now


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """(fn(), seconds it took) on the monotonic clock."""
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


class Workload:
    """The life cycle every workload shares: `with` closes the child on success and kills it on any
    exception (KeyboardInterrupt included), so no gigabytes outlive the block. Subclasses set
    `self._child`, define start(), and put their own cleanup in `_ended()`."""

    _child: "ChildProcess | None" = None

    def start(self) -> "Workload":
        raise NotImplementedError

    def _ended(self) -> None:
        """Forget (or remove) what belonged to the child; runs after close() and kill()."""

    def close(self) -> None:
        """Stop the child politely (its memory goes with it)."""
        try:
            if self._child is not None:
                self._child.close()
        finally:
            self._child = None
            self._ended()

    def kill(self) -> None:
        try:
            if self._child is not None:
                self._child.kill()
        finally:
            self._child = None
            self._ended()

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.kill()
