"""Host-side views: how much memory the host holds for this guest, never invented where absent.

Two views exist today, each a `HostView` with a sample column name:

  ReportedKib     `host_reported_kib`: the KiB this guest has reported free to the host so far,
                  from /sys/module/page_reporting/parameters/reported_kib (a non-upstream
                  parameter some kernels, like this project's machines, expose). Cheap: one
                  pread on a descriptor kept open.
  WslVmmemView    `host_vm_working_set_kib`: on WSL 2, the working set of the Windows process
                  that holds the VM (`vmmemWSL`, on older Windows `vmmem`), asked through interop
                  (tasklist.exe or powershell.exe). One call costs 0.1-3 s, so a daemon thread
                  polls at ~1 Hz and `read()` only returns its latest answer.

The kit's own QEMU guest adds a third (`host_vm_rss_kib`, the QEMU process's VmRSS) by
subclassing HostView. `read()` never blocks and returns None where the host said nothing recent.
"""
from __future__ import annotations

import csv
import io
import math
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from . import consent, sources

REPORTED_KIB_FILE = sources.PAGE_REPORTING_PARAMS / "reported_kib"
VMMEM_IMAGES = ("vmmemWSL", "vmmem")  # Windows 11 22H2+ names WSL's VM process vmmemWSL
WSL2_RELEASE = re.compile(r"microsoft-standard-WSL2", re.IGNORECASE)
# WSL 1 has no Linux kernel: Windows' lxcore answers system calls and reports a release such as
# "4.4.0-19041-Microsoft" (the Windows build; capital M, no "standard"), WSL 2's kernels say
# "...-microsoft-standard[-WSL2]".
WSL1_RELEASE = re.compile(r"^\d+\.\d+\.\d+-\d+-Microsoft$")
SYSTEM32 = Path("Windows/System32")
TASKLIST_REL = SYSTEM32 / "tasklist.exe"
POWERSHELL_REL = SYSTEM32 / "WindowsPowerShell/v1.0/powershell.exe"

# Sum over all processes of the image: Get-Process returns one per VM, tasklist one row each.
POWERSHELL_SCRIPT = (
    "$p = Get-Process -Name vmmemWSL -ErrorAction SilentlyContinue; "
    "if (-not $p) { $p = Get-Process -Name vmmem -ErrorAction SilentlyContinue }; "
    "if ($p) { [long](($p | Measure-Object -Property WorkingSet64 -Sum).Sum) }"
)


class InteropError(RuntimeError):
    """A Windows executable could not answer through WSL interop; str() says what happened."""


class HostView:
    """One source of host-side memory, read by the sampler once per sample.

    Subclasses set `name` (short id), `column` (the sample column, units in the name) and
    `source` (where the numbers come from, for metadata), and implement `read()`, which must
    return at once: an int, or None where there is no fresh value.
    """

    name: str = ""
    column: str = ""
    source: str = ""

    def read(self) -> int | None:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the view holds (descriptors, threads). Safe to call twice."""

    def __enter__(self) -> "HostView":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.column} from {self.source}>"


@dataclass(frozen=True)
class HostViewSpec:
    """A host view this guest has, as the probe reports it (no descriptor or thread yet)."""

    name: str
    column: str
    source: str  # a file or an executable path

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "column": self.column, "source": self.source}


# --- (a) reported_kib ---------------------------------------------------------------------------

class ReportedKib(HostView):
    """KiB reported free to the host so far (cumulative), or None where the kernel has no such file."""

    name = "reported_kib"
    column = "host_reported_kib"

    def __init__(self, roots: sources.Roots | None = None) -> None:
        path = (roots or sources.Roots.from_env()).sys / REPORTED_KIB_FILE
        self.source = str(path)
        try:
            # Kept open: a pread at offset 0 makes sysfs render the value afresh (~1-5 us).
            self._fd: int | None = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self._fd = None

    @property
    def available(self) -> bool:
        return self._fd is not None

    def read(self) -> int | None:
        if self._fd is None:
            return None
        try:
            return int(os.pread(self._fd, 32, 0))
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


# --- (b) WSL 2: vmmemWSL / vmmem through interop ---------------------------------------------

def parse_tasklist_csv_kib(text: str) -> int | None:
    """`tasklist.exe /FO CSV /NH` output -> the processes' summed "Mem Usage" in KiB.

    None where no process row is present (tasklist then prints a one-line, localised
    "INFO: No tasks ..." message). Group separators vary by locale ("1,234,567 K",
    "1.234.567 K", "1 234 567 Ko", "1'234'567 K"), so only the ASCII digits are kept.

    >>> parse_tasklist_csv_kib('"vmmemWSL","4242","Services","0","1.234.567 K"\\r\\n')
    1234567
    """
    total_kib: int | None = None
    for row in csv.reader(io.StringIO(text)):
        # image, PID, session name, session#, mem usage: a row is a process only if the PID is a number
        if len(row) < 5 or not row[1].strip().isdigit():
            continue
        digits = re.sub(r"[^0-9]", "", row[4])
        if not digits:
            raise ValueError(f"tasklist.exe memory field {row[4]!r} holds no number")
        total_kib = (total_kib or 0) + int(digits)
    return total_kib


def parse_powershell_bytes(text: str) -> int | None:
    """Output of POWERSHELL_SCRIPT (a number of bytes, or nothing when no process matched)."""
    value = text.strip()
    if not value:
        return None
    if not value.isdigit():
        raise ValueError(f"powershell.exe answered {value[:60]!r}, not a number of bytes")
    return int(value)


def wsl1_reason(kernel_release: str | None, proc_version: str | None = None) -> str | None:
    """Why we believe this is WSL 1 (Linux binaries on Windows, no Linux kernel, no VM), or None."""
    if kernel_release and WSL1_RELEASE.match(kernel_release.strip()):
        return f"kernel release {kernel_release.strip()} is WSL 1's (Windows answers Linux system calls)"
    if kernel_release is None and proc_version and re.search(r"-\d+-Microsoft \(Microsoft@Microsoft\.com\)",
                                                             proc_version):
        return "/proc/version names a WSL 1 release (Windows answers Linux system calls)"
    return None


def wsl_reason(kernel_release: str | None, env: Mapping[str, str] = os.environ) -> str | None:
    """Why we believe this is WSL 2, or None (WSL 1 sets WSL_DISTRO_NAME too: wsl1_reason tells them apart)."""
    if wsl1_reason(kernel_release):
        return None
    if kernel_release and WSL2_RELEASE.search(kernel_release):
        return f"kernel release {kernel_release} is WSL 2's"
    if env.get("WSL_DISTRO_NAME"):
        return f"WSL_DISTRO_NAME={env['WSL_DISTRO_NAME']} is set"
    return None


def windows_root(roots: sources.Roots) -> Path:
    """Where drive C: is mounted: /mnt/c, or <tree>/mnt/c for a captured tree."""
    return Path("/mnt/c") if roots.is_live else roots.proc.parent / "mnt" / "c"


def _on_path(name: str, env: Mapping[str, str]) -> str | None:
    path = env.get("PATH")
    return shutil.which(name, path=path) if path else None


def find_interop_command(env: Mapping[str, str] = os.environ, windows: Path = Path("/mnt/c")) -> Path | None:
    """tasklist.exe or powershell.exe, on PATH or by full path under `windows` (drive C:).

    tasklist.exe comes first: it answers in ~0.1 s, powershell.exe needs ~1 s to start.
    """
    for exe, rel in (("tasklist.exe", TASKLIST_REL), ("powershell.exe", POWERSHELL_REL)):
        found = _on_path(exe, env)
        if found:
            return Path(found)
        full = windows / rel
        if os.access(full, os.X_OK):
            return full
    return None


def interop_disabled_reason(roots: sources.Roots) -> str | None:
    """Why Windows executables cannot run from this WSL guest, or None when interop looks enabled."""
    binfmt = roots.proc / "sys/fs/binfmt_misc"
    if not (binfmt / "status").exists():
        return None  # binfmt_misc not mounted or not visible: we cannot tell, so we try
    entries = sorted(binfmt.glob("WSLInterop*"))
    if not entries:
        return "WSL interop is not registered (is [interop] enabled=false in /etc/wsl.conf?)"
    if not any((sources.read_optional(e) or "").startswith("enabled") for e in entries):
        return "WSL interop is disabled (binfmt_misc WSLInterop says disabled)"
    return None


class WslVmmemView(HostView):
    """The Windows VM process's working set (KiB), polled in a daemon thread.

    `latest()` and `read()` only look at what the thread last stored, so a slow or hung
    interop call never stalls the caller. `stop()` (or `close()`) ends the thread and kills
    a call in flight.
    """

    name = "wsl_vmmem"
    column = "host_vm_working_set_kib"

    def __init__(self, command: str | os.PathLike, interval_s: float = 1.0, timeout_s: float = 10.0,
                 max_age_s: float = 5.0, start: bool = True) -> None:
        self.command = Path(command)
        self.source = f"{self.command} (WSL interop)"
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.max_age_s = max_age_s
        self.last_error: str | None = None
        self._value_kib: int | None = None
        self._value_at: float | None = None
        self._image: str | None = None  # the vmmem image name that answered last
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._thread = threading.Thread(target=self._poll, name="reclaimlab-wsl-vmmem", daemon=True)
        if start:
            self._thread.start()

    @property
    def uses_powershell(self) -> bool:
        return self.command.name.lower().startswith("powershell")

    # One blocking query ------------------------------------------------------------------------
    def _run(self, args: list[str]) -> str:
        proc = subprocess.Popen([str(self.command), *args], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)  # its own group: stop() kills children too
        with self._lock:
            self._proc = proc
        if self._stop.is_set():
            _kill_group(proc)
        try:
            out, err = proc.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            raise InteropError(f"{self.command.name} did not answer within {self.timeout_s:g} s") from None
        finally:
            with self._lock:
                self._proc = None
        if proc.returncode != 0:
            first = (err or out).decode("utf-8", "replace").strip().splitlines()[:1]
            raise InteropError(f"{self.command.name} exited with {proc.returncode}"
                               + (f": {first[0][:120]}" if first else ""))
        return out.decode("utf-8", "replace")  # tasklist writes the OEM code page; digits are ASCII

    def query_once(self) -> int | None:
        """Ask Windows now (blocks 0.1-3 s): working set in KiB, None when no vmmem process runs."""
        try:
            if self.uses_powershell:
                value_bytes = parse_powershell_bytes(
                    self._run(["-NoProfile", "-NonInteractive", "-Command", POWERSHELL_SCRIPT]))
                return None if value_bytes is None else value_bytes // 1024
            images = [self._image] if self._image else list(VMMEM_IMAGES)
            for image in images:
                kib = parse_tasklist_csv_kib(self._run(["/FI", f"IMAGENAME eq {image}", "/FO", "CSV", "/NH"]))
                if kib is not None:
                    self._image = image
                    return kib
            self._image = None
            return None
        except (OSError, ValueError) as exc:
            raise InteropError(f"{self.command.name}: {exc}") from None

    # The polling thread and its readers ---------------------------------------------------------
    def _poll(self) -> None:
        while not self._stop.is_set():
            started_s = time.monotonic()
            try:
                kib, error = self.query_once(), None
                if kib is None:
                    error = f"no {' or '.join(VMMEM_IMAGES)} process answered (is the WSL VM's process visible?)"
            except InteropError as exc:
                kib, error = None, str(exc)
            with self._lock:
                if kib is not None:
                    self._value_kib, self._value_at = kib, time.monotonic()
                self.last_error = error
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started_s)))

    def latest(self) -> tuple[int | None, float]:
        """(last working set in KiB, its age in seconds); (None, inf) before the first answer."""
        with self._lock:
            if self._value_at is None:
                return None, math.inf
            return self._value_kib, time.monotonic() - self._value_at

    def read(self) -> int | None:
        value_kib, age_s = self.latest()
        return value_kib if age_s <= self.max_age_s else None  # stale is not shown as current

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            proc = self._proc
        if proc is not None:
            _kill_group(proc)
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    close = stop


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# --- (c) what this guest has --------------------------------------------------------------------

def find_host_views(roots: sources.Roots, env: Mapping[str, str] = os.environ,
                    kernel_release: str | None = None) -> tuple[list[HostViewSpec], list[str]]:
    """The host views this guest has, and one note per view it lacks saying why."""
    container = consent.container_reason(roots, env)
    if container:
        # A container shares the machine's kernel: reported_kib and vmmem count every tenant's memory,
        # so showing them would pass the machine's figures off as this user's.
        return [], [f"none: this runs in {container}; the machine's host views (reported_kib, WSL's vmmem) "
                    f"count everyone's memory on it, not this container's"]
    specs: list[HostViewSpec] = []
    notes: list[str] = []
    reported = roots.sys / REPORTED_KIB_FILE
    if reported.exists():
        specs.append(HostViewSpec(ReportedKib.name, ReportedKib.column, str(reported)))
    else:
        notes.append("reported_kib: this kernel does not expose page_reporting's reported_kib")
    wsl = wsl_reason(kernel_release, env)
    command = find_interop_command(env, windows_root(roots)) if wsl else None
    disabled = interop_disabled_reason(roots) if wsl else None
    if not wsl:
        notes.append("wsl_vmmem: not WSL 2, so no Windows vmmem process to ask")
    elif command is None:
        notes.append("wsl_vmmem: neither tasklist.exe nor powershell.exe found on PATH or under "
                     f"{windows_root(roots) / SYSTEM32}")
    elif disabled:
        notes.append(f"wsl_vmmem: {disabled}")
    else:
        specs.append(HostViewSpec(WslVmmemView.name, WslVmmemView.column, str(command)))
    return specs, notes


def open_view(spec: HostViewSpec, roots: sources.Roots, start: bool = True) -> HostView:
    """A ready HostView for a spec from the probe."""
    if spec.name == ReportedKib.name:
        return ReportedKib(roots)
    if spec.name == WslVmmemView.name:
        return WslVmmemView(spec.source, start=start)
    raise ValueError(f"unknown host view {spec.name!r}")


def available_host_views(where: object = None, env: Mapping[str, str] = os.environ,
                         start: bool = True) -> list[HostView]:
    """Open every host view this guest has. `where`: a guest.GuestInfo, Roots, or None (live/env).

    The caller owns the views: close() each when done (the WSL view runs a thread).
    """
    if where is None or isinstance(where, sources.Roots):
        roots = where or sources.Roots.from_env()
        specs, _ = find_host_views(roots, env, sources.kernel_release(roots))
    else:  # a GuestInfo (duck-typed: guest.py imports this module, not the other way round)
        roots = sources.Roots(Path(where.proc_root), Path(where.sys_root))
        specs = list(where.host_views)
    return [open_view(spec, roots, start) for spec in specs]
