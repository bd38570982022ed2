"""The QEMU process: start it, talk to the guest agent, read its resident memory, stop it.

    with Machine(build.build(), mem_mib=1536, reporting=True) as vm:
        vm.command("alloc", 512 << 20); vm.command("touch"); vm.command("free")
        vm.host_rss_kib()

The VM never outlives this process, three ways over:
  1. QEMU gets PR_SET_PDEATHSIG=SIGKILL before exec (and exits at once if its parent already
     died in between: the ppid check). Linux sends it when the *thread* that started QEMU
     ends, so start the Machine from a thread that lives as long as you need the VM (a
     notebook's or CLI's main thread is).
  2. The agent channel is a socketpair whose host end only this process holds: when the
     process dies the guest agent reads EOF and powers the guest off (QEMU then exits).
  3. stop() (also via `with`, atexit and garbage collection) asks the agent to quit, then kills.
"""
from __future__ import annotations

import atexit
import collections
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import weakref
from pathlib import Path
from typing import Callable

from ..probe.procfs import parse_status_kib
from . import accel as accel_mod
from .build import GuestImage
from .errors import VmBootError, VmCommandError, VmError, VmSetupError
from .protocol import Ack, Hello, Message, PageFlags, command_line, parse_line

BOOT_TIMEOUT_S = 60.0      # TCG on a busy 2-core machine; a normal boot is ~3 s
QUIT_TIMEOUT_S = 5.0
PR_SET_PDEATHSIG = 1
KERNEL_ARGS = ("console=ttyS0 quiet loglevel=3 panic=-1 "
               # No PS/2 keyboard or mouse to probe, and skip checks that only cost boot time.
               "i8042.noaux i8042.nokbd i8042.nopnp tsc=reliable no_timer_check")


def find_qemu() -> Path:
    path = shutil.which("qemu-system-x86_64")
    if not path:
        raise VmSetupError("qemu-system-x86_64 not found", "qemu-system-x86")
    return Path(path)


def kernel_args(page_reporting_order: int | None = None) -> str:
    """The guest's kernel command line; `page_reporting_order` is set the way WSL sets it
    (microsoft/WSL src/windows/common/helpers.cpp:796 at 3e27a6a: `page_reporting.page_reporting_order=N`)."""
    if page_reporting_order is None:
        return KERNEL_ARGS
    return f"{KERNEL_ARGS} page_reporting.page_reporting_order={page_reporting_order}"


def check_page_reporting_order(order: int | None) -> int | None:
    """None (the kernel's own choice) or a buddy order 0..10; anything else is refused with the reason."""
    if order is None:
        return None
    if isinstance(order, bool) or not isinstance(order, int) or not 0 <= order <= 10:
        raise ValueError(f"page_reporting_order must be a whole number from 0 to 10 (5 = 128 KiB, WSL on "
                         f"Windows builds with the fix; 9 = 2 MiB, elsewhere) or None; got {order!r}")
    return order


def qemu_args(qemu: Path, image: GuestImage, mem_mib: int, accel: str, reporting: bool, agent_fd: int,
              page_reporting_order: int | None = None) -> list[str]:
    """The QEMU command line (pure)."""
    args = [str(qemu), "-accel", accel, "-m", str(mem_mib), "-smp", "1",
            "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
            "-serial", "stdio", "-no-reboot",
            "-kernel", str(image.kernel), "-initrd", str(image.initramfs),
            "-append", kernel_args(page_reporting_order),
            "-device", f"virtio-balloon-pci,free-page-reporting={'on' if reporting else 'off'}",
            "-device", "virtio-serial-pci",
            "-chardev", f"socket,id=agent,fd={agent_fd}",
            "-device", "virtserialport,chardev=agent,name=reclaimlab"]
    if image.disk is not None:
        # snapshot=on: the guest's writes go to a temporary overlay QEMU deletes itself, so the
        # cached disk stays pristine and several VMs may share it.
        args += ["-drive", f"file={image.disk},format=raw,if=virtio,snapshot=on"]
    return args


def read_rss_kib(pid: int) -> tuple[int | None, int | None]:
    """(VmRSS, RssAnon) of a process in KiB, from /proc/<pid>/status; (None, None) once it is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            text = f.read().decode("ascii", "replace")
    except OSError:
        return None, None
    return parse_status_rss_kib(text)


def parse_status_rss_kib(text: str) -> tuple[int | None, int | None]:
    """(VmRSS, RssAnon) in KiB from a /proc/<pid>/status text (procfs.parse_status_kib)."""
    fields = parse_status_kib(text)
    return fields.get("VmRSS"), fields.get("RssAnon")


def _die_with(parent_pid: int) -> Callable[[], None]:
    # libc is opened here, in the parent, when a VM starts (not at import), never in the child below
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:  # runs in the child between fork and exec: no allocation-heavy work
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)
    return preexec


Listener = Callable[[float, Message], None]


class Machine:
    """One guest under QEMU. Not reusable: make a new Machine for a new boot."""

    def __init__(self, image: GuestImage, mem_mib: int = 1536, reporting: bool = True,
                 accel: accel_mod.Accel | None = None, cache_dir: Path | None = None,
                 page_reporting_order: int | None = None):
        self.image = image
        self.mem_mib = int(mem_mib)
        self.reporting = bool(reporting)
        # asked for on the kernel command line; what the guest runs with is in hello (read from sysfs)
        self.page_reporting_order = check_page_reporting_order(page_reporting_order)
        self.qemu = find_qemu()
        self._cache_dir = cache_dir or image.dir.parent
        self.accel = accel
        self.hello: Hello | None = None
        self.boot_s: float | None = None
        self.proc: subprocess.Popen | None = None
        self.console: collections.deque[str] = collections.deque(maxlen=40)
        self._sock: socket.socket | None = None
        self._listeners: list[Listener] = []
        self._acks: dict[int, Ack] = {}
        self._page_flags: dict[int, list[PageFlags]] = {}  # P lines by command id, until page_flags() takes them
        self._cond = threading.Condition()
        self._next_id = 1
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._finalizer = weakref.finalize(self, Machine._kill, None)

    # -- life cycle ------------------------------------------------------------------------------
    @property
    def pid(self) -> int:
        if self.proc is None:
            raise VmError("the VM is not started")
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout_s: float = BOOT_TIMEOUT_S) -> "Machine":
        """Boot and wait for the agent's hello. KVM where it works (tried once per host boot)."""
        if self.proc is not None:
            raise VmError("this Machine was already started; make a new one")
        if self.accel is None:
            self.accel = self._choose_accel()
        if self.accel.name == "kvm" and "RECLAIMLAB_VM_ACCEL" not in os.environ and \
                accel_mod.known_verdict(self._cache_dir, self.qemu) is None:
            try:
                return self._boot(min(timeout_s, accel_mod.KVM_TRIAL_TIMEOUT_S))
            except VmBootError as exc:
                self._reset()
                why = f"/dev/kvm opens, but the guest did not boot under KVM within " \
                      f"{accel_mod.KVM_TRIAL_TIMEOUT_S:g} s ({str(exc)[:80]})"
                accel_mod.store_verdict(self._cache_dir, self.qemu, False, why)
                self.accel = accel_mod.Accel("tcg", f"TCG software emulation: {why}")
            else:
                accel_mod.store_verdict(self._cache_dir, self.qemu, True, "the guest booted under KVM")
                return self
        return self._boot(timeout_s)

    def _choose_accel(self) -> accel_mod.Accel:
        forced = accel_mod.forced()
        if forced:
            return forced
        ok, why = accel_mod.kvm_device()
        if not ok:
            return accel_mod.Accel("tcg", f"TCG software emulation: {why}")
        known = accel_mod.known_verdict(self._cache_dir, self.qemu)
        if known is None:
            return accel_mod.Accel("kvm", why)  # to be confirmed by the trial boot in start()
        return accel_mod.Accel("kvm", known[1]) if known[0] else \
            accel_mod.Accel("tcg", f"TCG software emulation: {known[1]}")

    def _boot(self, timeout_s: float) -> "Machine":
        assert self.accel is not None
        host_end, guest_end = socket.socketpair()
        self._sock = host_end
        args = qemu_args(self.qemu, self.image, self.mem_mib, self.accel.name, self.reporting, guest_end.fileno(),
                         self.page_reporting_order)
        t0 = time.monotonic()
        try:
            self.proc = subprocess.Popen(args, pass_fds=(guest_end.fileno(),), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         preexec_fn=_die_with(os.getpid()), start_new_session=True)
        except OSError as exc:
            host_end.close()
            raise VmBootError(f"cannot start {self.qemu}: {exc.strerror}") from None
        finally:
            guest_end.close()
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, Machine._kill, self.proc)
        atexit.register(self._finalizer)
        self._spawn(self._read_console, "reclaimlab-vm-console")
        self._spawn(self._read_agent, "reclaimlab-vm-agent")
        with self._cond:
            self._cond.wait_for(lambda: self.hello is not None or not self.alive, timeout_s)
        if self.hello is None:
            status = "still running" if self.alive else f"exited with status {self.proc.poll()}"
            self._kill(self.proc)
            self._join()
            tail = " | ".join(line for line in list(self.console)[-4:] if line.strip()) or "no console output"
            raise VmBootError(f"the guest agent did not say hello within {timeout_s:g} s under "
                              f"{self.accel.hypervisor} (QEMU {status}); console: {tail[:400]}")
        self.boot_s = time.monotonic() - t0
        return self

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _reset(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self.proc, self._sock, self.hello, self._threads = None, None, None, []
        self.console.clear()

    def stop(self) -> int | None:
        """Ask the agent to power off, kill QEMU if it does not; returns QEMU's exit status."""
        if self._closed or self.proc is None:
            self._closed = True
            return None if self.proc is None else self.proc.poll()
        self._closed = True
        if self.alive and self.hello is not None:
            try:
                self._send("quit")
            except (OSError, VmError):
                pass
            try:
                self.proc.wait(QUIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass
        self._kill(self.proc)
        self._join()
        self._finalizer.detach()
        atexit.unregister(self._finalizer)
        return self.proc.returncode

    @staticmethod
    def _kill(proc: subprocess.Popen | None) -> None:
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass

    def _join(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(5)
        if self._sock is not None:
            self._sock.close()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> "Machine":
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- the agent -------------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> None:
        """Call listener(host_monotonic_s, message) for every S, B and L line (in the reader thread)."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def command(self, verb: str, *args: object, timeout_s: float = 120.0) -> Ack:
        """Run one agent command and wait for its ack; VmCommandError if the agent reports failure."""
        return self._wait_ack(self._send(verb, *args), verb, args, timeout_s)

    def page_flags(self, timeout_s: float = 60.0, ours: bool = False) -> tuple[Ack, list[PageFlags]]:
        """The guest's /proc/kpageflags as the agent sends it: (its ack, its P lines in order).
        ours: the frames of the agent's alloc buffer marked (agent.c `pageflags ours`).
        vm/guestmap.py turns them into a map."""
        args = ("ours",) if ours else ()
        ident = self._send("pageflags", *args)
        try:
            ack = self._wait_ack(ident, "pageflags", args, timeout_s)
        finally:
            with self._cond:
                parts = self._page_flags.pop(ident, [])
        return ack, parts

    def _wait_ack(self, ident: int, verb: str, args: tuple, timeout_s: float) -> Ack:
        with self._cond:
            self._cond.wait_for(lambda: ident in self._acks or not self.alive, timeout_s)
            ack = self._acks.pop(ident, None)
        if ack is None:
            why = "QEMU exited" if not self.alive else f"no answer within {timeout_s:g} s"
            raise VmError(f"guest command {verb} {' '.join(map(str, args))}: {why}")
        if not ack.ok:
            raise VmCommandError(f"guest command {verb} {' '.join(map(str, args))} failed: {ack.message}")
        return ack

    def _send(self, verb: str, *args: object) -> int:
        if self._sock is None or not self.alive:
            raise VmError("the VM is not running")
        with self._cond:
            ident = self._next_id
            self._next_id += 1
        self._sock.sendall(command_line(ident, verb, *args).encode())
        return ident

    def _read_agent(self) -> None:
        assert self._sock is not None
        f = self._sock.makefile("rb")
        try:
            for raw in f:
                now = time.monotonic()
                try:
                    msg = parse_line(raw.decode("ascii", "replace"))
                except VmError as exc:
                    self.console.append(f"[agent] {exc}")
                    continue
                if isinstance(msg, PageFlags):  # big, and only for the command that asked: not for listeners
                    with self._cond:
                        self._page_flags.setdefault(msg.id, []).append(msg)
                    continue
                if isinstance(msg, Ack):
                    with self._cond:
                        self._acks[msg.id] = msg
                        self._cond.notify_all()
                    continue
                if isinstance(msg, Hello):
                    with self._cond:
                        self.hello = msg
                        self._cond.notify_all()
                for listener in list(self._listeners):
                    listener(now, msg)
        except (OSError, ValueError):
            pass  # the socket was closed by stop()
        finally:
            with self._cond:
                self._cond.notify_all()

    def _read_console(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            for raw in self.proc.stdout:
                self.console.append(raw.decode("utf-8", "replace").rstrip())
        except (OSError, ValueError):
            pass
        finally:
            with self._cond:
                self._cond.notify_all()

    # -- the host's view -------------------------------------------------------------------------
    def host_rss_kib(self) -> tuple[int | None, int | None]:
        """QEMU's (VmRSS, RssAnon) in KiB: what Task Manager's vmmem is to WSL 2."""
        return read_rss_kib(self.pid)
