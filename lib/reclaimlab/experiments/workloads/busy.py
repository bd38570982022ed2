"""Busy workload: a process that keeps a few percent of one CPU busy, like an editor's language server.

    with BusyLoop(cpu_share=0.03, period_ms=50) as b:    # 3 % of one CPU: 1.5 ms of work every 50 ms
        ...                                              # the guest's CPU never looks idle to WSL's gate
        b.stats()                                        # wakes, late wakes, CPU seconds of work

Why: WSL's autoMemoryReclaim acts only when the whole guest's CPU stays at or under 0.5 % of all
CPUs (see wsl/autoreclaim_policy.py and docs/wsl-pressure.md). Users report (microsoft/WSL #10011,
#4166) that editor language servers keep the CPU from ever looking idle. This workload is that load,
made repeatable: it wakes every `period_ms`, spins `cpu_share` x `period_ms` of CPU time (its own
thread's CPU clock, so a preempted wake still does the same work), and sleeps until the next wake.
The spin is user-space arithmetic, so it counts for every gate: released counts user time only,
newer counts user + system (measured here, 3 % asked: 2.5 % user, 0.5 % system over 4 s).

`cpu_share` is a share of ONE CPU (as `top` shows it: 0.03 = 3 %); the gates compare a share of ALL
CPUs, so on n CPUs the guest sees cpu_share / n. `measure_cpu_share(pid, seconds)` reads what a
process really used (/proc/<pid>/stat), which is what the tests check.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ...probe.procfs import parse_pid_stat
from ._child import ChildProcess, Workload

MAX_CPU_SHARE = 0.9          # a language server, not a CPU burner: above this the sleep vanishes
MIN_PERIOD_MS, MAX_PERIOD_MS = 1.0, 10_000.0


def check_busy_params(cpu_share: float, period_ms: float) -> None:
    """Raise ValueError naming the problem and the fix for an impossible busy-loop setting."""
    if isinstance(cpu_share, bool) or not isinstance(cpu_share, (int, float)) or not (0 < cpu_share <= MAX_CPU_SHARE):
        raise ValueError(f"cpu_share {cpu_share!r} must be a share of one CPU above 0 and at most "
                         f"{MAX_CPU_SHARE} (0.03 = 3 %, like an idle editor's language server)")
    if isinstance(period_ms, bool) or not isinstance(period_ms, (int, float)) or not (MIN_PERIOD_MS <= period_ms <= MAX_PERIOD_MS):
        raise ValueError(f"period_ms {period_ms!r} must be between {MIN_PERIOD_MS:g} and {MAX_PERIOD_MS:g} "
                         "milliseconds (how often the loop wakes; 50 is a typical timer tick)")


def process_cpu_s(pid: int | str = "self") -> float:
    """utime + stime of a process in seconds, from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    st = parse_pid_stat(text, f"/proc/{pid}/stat")
    return (st.utime_ticks + st.stime_ticks) / os.sysconf("SC_CLK_TCK")


def measure_cpu_share(pid: int, seconds: float) -> float:
    """The share of one CPU that process `pid` used over the next `seconds` (it sleeps that long)."""
    c0, t0 = process_cpu_s(pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = process_cpu_s(pid), time.monotonic()
    return (c1 - c0) / (t1 - t0)


class BusyLoop(Workload):
    """A child process that wakes every `period_ms` and works `cpu_share` of one CPU, until closed."""

    def __init__(self, cpu_share: float = 0.03, period_ms: float = 50.0, python: str | None = None):
        check_busy_params(cpu_share, period_ms)
        self.cpu_share = float(cpu_share)
        self.period_ms = float(period_ms)
        self._python = python
        self._child: ChildProcess | None = None

    def start(self) -> "BusyLoop":
        if self._child is not None:
            return self
        self._child = ChildProcess("reclaimlab.experiments.workloads.busy_child", python=self._python,
                                   what="busy-loop")
        try:
            self._child.request("start", cpu_share=self.cpu_share, period_ms=self.period_ms, timeout_s=10)
        except BaseException:
            self.kill()
            raise
        return self

    @property
    def pid(self) -> int:
        if self._child is None:
            raise RuntimeError("the busy loop is not running; use `with BusyLoop(...) as b:`")
        return self._child.pid

    def stats(self) -> dict[str, Any]:
        """wakes, late_wakes (deadline missed: the machine was busier), work_cpu_s, process_cpu_s."""
        if self._child is None:
            raise RuntimeError("the busy loop is not running; use `with BusyLoop(...) as b:`")
        return self._child.request("stats", timeout_s=10)

    def describe(self) -> str:
        return (f"busy loop: {self.cpu_share:.1%} of one CPU ({self.cpu_share * self.period_ms:g} ms of work "
                f"every {self.period_ms:g} ms)")
