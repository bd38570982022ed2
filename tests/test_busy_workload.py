"""The busy workload (an editor's language server, made repeatable): it really uses the CPU share asked.

The CPU figures come from outside the child (psutil, and /proc/<pid>/stat via measure_cpu_share), over
a few seconds; tolerances are generous because five other jobs share this 2-CPU machine.
"""
from __future__ import annotations

import time

import psutil
import pytest

from reclaimlab.experiments.workloads import BusyLoop
from reclaimlab.experiments.workloads.busy import check_busy_params, measure_cpu_share


@pytest.mark.parametrize("share,period", [(0, 50), (-0.1, 50), (1.5, 50), ("3%", 50), (True, 50),
                                          (0.03, 0), (0.03, 20_000), (0.03, None)])
def test_bad_settings_are_refused_with_the_fix(share, period):
    with pytest.raises(ValueError, match="cpu_share|period_ms") as err:
        BusyLoop(share, period)
    assert "must be" in str(err.value)


def test_good_settings_pass():
    check_busy_params(0.03, 50)
    assert "3.0% of one CPU" in BusyLoop(0.03, 50).describe()


@pytest.mark.live
@pytest.mark.parametrize("share", [0.03, 0.10])
def test_busy_loop_keeps_the_cpu_share_asked(share):
    with BusyLoop(share, period_ms=50) as b:
        proc = psutil.Process(b.pid)
        time.sleep(0.3)                       # past the child's start-up (imports cost CPU)
        a, t0 = proc.cpu_times(), time.monotonic()
        time.sleep(3.0)
        c, t1 = proc.cpu_times(), time.monotonic()
        measured_psutil = (c.user + c.system - a.user - a.system) / (t1 - t0)
        user_s, system_s = c.user - a.user, c.system - a.system
        measured_proc = measure_cpu_share(b.pid, 2.0)
        stats = b.stats()
    for measured in (measured_psutil, measured_proc):
        # 10 ms jiffies over 2-3 s: +-0.005 of resolution, plus the interpreter's own wake-up cost
        assert 0.5 * share - 0.005 <= measured <= 1.6 * share + 0.01, (share, measured, stats)
    # the work is user-space arithmetic (what the released gate counts), not clock syscalls
    assert user_s >= system_s, (user_s, system_s)
    assert stats["wakes"] >= 60            # ~20 wakes a second: it sleeps between bursts, not one long spin
    assert stats["work_cpu_s"] > 0


@pytest.mark.live
def test_busy_loop_child_is_gone_after_the_block():
    with BusyLoop(0.02, 50) as b:
        pid = b.pid
        assert psutil.pid_exists(pid)
    time.sleep(0.2)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
