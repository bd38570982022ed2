"""The autoMemoryReclaim daemon: observe() on captured trees, the Daemon's thread on replayed shares,
knob_applier() on stubbed knobs. The Policy it runs is tested in test_autoreclaim_policy.py.
"""
from __future__ import annotations

import threading
import time

import pytest

from reclaimlab.probe.procfs import CpuTimes
from reclaimlab.units import GIB
from reclaimlab.wsl import autoreclaim_daemon as ad
from reclaimlab.wsl.autoreclaim_daemon import Daemon
from reclaimlab.wsl.autoreclaim_policy import Compact, DropCaches, Observation, Policy, Reclaim

BUSY, QUIET = 0.20, 0.001       # shares of all CPUs' time
STAT = "cpu  100 5 30 1000 20 1 2 3 7 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 1\n"


def obs(now_s, *, user=QUIET, probe=None):
    """16 GiB, 4 GiB used of which 2 GiB reclaimable cache."""
    return Observation(now_s=now_s, mem_total_bytes=16 * GIB, mem_free_bytes=12 * GIB, user_cpu_fraction=user,
                       busy_cpu_fraction=user, reclaimable_cache_bytes=2 * GIB, probe_user_cpu_fraction=probe)


def kinds(actions):
    return [type(a).__name__ for a in actions]


# ------------------------------------------------------------------ observe()

def write_tree(root, stat=STAT, meminfo=None):
    (root / "proc").mkdir(parents=True, exist_ok=True)
    (root / "sys").mkdir(exist_ok=True)
    (root / "proc" / "stat").write_text(stat)
    (root / "proc" / "meminfo").write_text(meminfo or (
        "MemTotal:       16384000 kB\nMemFree:         8192000 kB\nMemAvailable:   12000000 kB\n"
        "Cached:          3000000 kB\nActive(file):    1000000 kB\nInactive(file):  1500000 kB\n"
        "SReclaimable:     200000 kB\n"))


def test_observe_reads_a_captured_tree(tmp_path):
    from reclaimlab.probe.sources import Roots

    write_tree(tmp_path)
    roots = Roots(tmp_path / "proc", tmp_path / "sys")
    o, cpu = ad.observe(roots, None, now_s=5.0)
    assert o.user_cpu_fraction is None and cpu.user == 100
    assert o.mem_total_bytes == 16384000 * 1024 and o.used_bytes == (16384000 - 8192000) * 1024
    assert o.reclaimable_cache_bytes == (1000000 + 1500000 + 200000) * 1024
    assert o.cached_bytes == 3000000 * 1024
    o2, _ = ad.observe(roots, CpuTimes(90, 5, 30, 900, 20, 1, 2, 3), now_s=6.0)
    assert o2.user_cpu_fraction == pytest.approx(10 / 110)


def test_observe_names_a_missing_file(tmp_path):
    from reclaimlab.probe.sources import Roots, SourceError

    (tmp_path / "proc").mkdir()
    with pytest.raises(SourceError, match="stat"):
        ad.observe(Roots(tmp_path / "proc", tmp_path / "sys"), None)


# ------------------------------------------------------------------ the Daemon

def fake_observer(shares):
    """An observe_fn replaying CPU shares (then quiet) with 4 GiB used."""
    it = iter(shares)

    def observe_fn(cpu_prev, probe_s):
        share = next(it, QUIET)
        return obs(time.monotonic(), user=share, probe=0.0), CpuTimes(0, 0, 0, 0)
    return observe_fn


def test_daemon_applies_actions_in_order_and_stops_cleanly():
    p = Policy("dropCache", "newer", time_scale=0.001)      # 10 ms polls, 120 ms window
    applied, done = [], threading.Event()

    def apply(action):
        applied.append(action)
        if isinstance(action, Compact):
            done.set()
        return "ok"

    d = Daemon(p, apply, observe_fn=fake_observer([None, BUSY]), read_cpu=lambda: CpuTimes(0, 0, 0, 0))
    with d:
        assert done.wait(5), "the daemon never dropped caches"
    assert not d.running
    assert kinds(applied[:2]) == ["DropCaches", "Compact"]
    assert d.applied[0][2] == "ok" and d.errors == []
    assert any(t.entered_idle for t in d.ticks)


def test_daemon_keeps_going_after_an_apply_error():
    p = Policy("gradual", "newer", time_scale=0.001)
    seen = threading.Event()

    def apply(action):
        if isinstance(action, Reclaim):
            raise PermissionError("not root")
        seen.set()

    errors = []
    d = Daemon(p, apply, observe_fn=fake_observer([None]), read_cpu=lambda: CpuTimes(0, 0, 0, 0),
               on_error=errors.append)
    with d:
        assert seen.wait(5)
    assert errors and isinstance(errors[0].error, PermissionError) and isinstance(errors[0].action, Reclaim)


def test_daemon_for_a_threadless_setting_does_nothing():
    d = Daemon(Policy("disabled", "newer", time_scale=0.001), apply=lambda a: None,
               observe_fn=fake_observer([]))
    d.start()
    time.sleep(0.05)
    d.stop()
    assert d.ticks == [] and d.applied == []


def test_daemon_cannot_start_twice():
    d = Daemon(Policy("disabled", "newer"), apply=lambda a: None, observe_fn=fake_observer([]))
    d.start()
    d.stop()
    with pytest.raises(RuntimeError, match="already started"):
        d.start()


def test_newer_eagain_counts_as_reclaimed_so_compaction_follows():
    """RequestReclaim: EAGAIN is success (util.cpp:3774); knobs returns a result with a note, no error."""
    p = Policy("gradual", "newer", time_scale=0.001)
    applied, done = [], threading.Event()

    def apply(action):
        applied.append(action)
        if len([a for a in applied if isinstance(a, Compact)]) >= 2:
            done.set()
        return "EAGAIN: reclaimed less than asked"     # knobs' EAGAIN outcome is a result, not an exception

    with Daemon(p, apply, observe_fn=fake_observer([None]), read_cpu=lambda: CpuTimes(0, 0, 0, 0)):
        assert done.wait(5)
    assert kinds(applied[:4]) == ["Reclaim", "Compact", "Reclaim", "Compact"]


def test_newer_a_failed_reclaim_skips_the_compaction_it_would_have_earned():
    p = Policy("gradual", "newer", time_scale=0.001)
    applied, done = [], threading.Event()

    def apply(action):
        applied.append(action)
        if isinstance(action, Reclaim):
            if sum(isinstance(a, Reclaim) for a in applied) >= 3:
                done.set()
            raise OSError(5, "Input/output error")
        return "ok"

    with Daemon(p, apply, observe_fn=fake_observer([None]), read_cpu=lambda: CpuTimes(0, 0, 0, 0)):
        assert done.wait(5)
    # the first idle poll compacts (once per period); after that a failed reclaim earns none
    assert kinds(applied[:4]) == ["Reclaim", "Compact", "Reclaim", "Reclaim"]


def test_observe_can_exclude_this_process(tmp_path):
    import os

    from reclaimlab.probe.sources import Roots

    write_tree(tmp_path)
    (tmp_path / "proc" / str(os.getpid())).mkdir()
    (tmp_path / "proc" / str(os.getpid()) / "stat").write_text(
        f"{os.getpid()} (py) S 1 2 3 4 5 6 7 8 9 10 40 2 0 0 20 0 8 0 100 0 0\n")
    roots = Roots(tmp_path / "proc", tmp_path / "sys")
    _, cpu = ad.observe(roots, None, exclude_self=True)
    assert (cpu.own_user, cpu.own_system) == (40, 2)
    _, cpu_plain = ad.observe(roots, None)
    assert (cpu_plain.own_user, cpu_plain.own_system) == (0, 0)


def test_knob_applier_maps_actions_to_knobs_and_marks_events(monkeypatch):
    from reclaimlab.control import knobs

    calls, marks = [], []
    monkeypatch.setattr(knobs, "drop_caches", lambda level, allow=None, roots=None: calls.append(("drop", level)) or "d")
    monkeypatch.setattr(knobs, "compact_memory", lambda allow=None, roots=None: calls.append(("compact",)) or "c")
    monkeypatch.setattr(knobs, "cgroup_reclaim", lambda n, allow=None, cgroup=None, roots=None, swappiness=None: calls.append(
        ("reclaim", n, cgroup, swappiness)) or knobs.ReclaimResult(knobs.V1_SQUEEZE, n, n // 2, 0.01))
    apply = ad.knob_applier(allow=True, cgroup="cg", mark=lambda kind, detail: marks.append((kind, detail)))
    assert apply(DropCaches(1)) == "d" and apply(Compact("entering idle")) == "c"
    result = apply(Reclaim(1000))
    apply(Reclaim(2000, file_only=True))       # the newer variant's request carries swappiness=0
    assert calls == [("drop", 1), ("compact",), ("reclaim", 1000, "cg", None), ("reclaim", 2000, "cg", 0)]
    assert result.method == knobs.V1_SQUEEZE
    assert marks[:3] == [("drop_caches", "1"), ("compact_memory", "entering idle"),
                         ("reclaim", f"1000 bytes, 500 reclaimed, {knobs.V1_SQUEEZE}")]
    with pytest.raises(TypeError):
        apply("drop")


# ------------------------------------------------------------------ the pressure variant (proposed, not merged in WSL)

PSI_TEXT = ("some avg10=0.40 avg60=0.10 avg300=0.00 total=1234\n"
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")


def test_observe_reads_psi_and_refaults_for_the_pressure_variant(tmp_path):
    from reclaimlab.probe.sources import Roots

    write_tree(tmp_path)
    (tmp_path / "proc" / "pressure").mkdir()
    (tmp_path / "proc" / "pressure" / "memory").write_text(PSI_TEXT)
    (tmp_path / "proc" / "vmstat").write_text("nr_free_pages 5\nworkingset_refault_anon 0\n"
                                               "workingset_refault_file 136111\n")
    roots = Roots(tmp_path / "proc", tmp_path / "sys")
    o, _ = ad.observe(roots, None, pressure=True)
    assert (o.psi_some_avg10, o.refault_file_pages) == (0.40, 136111)
    plain, _ = ad.observe(roots, None)                  # the other variants do not read them
    assert (plain.psi_some_avg10, plain.refault_file_pages) == (None, None)


def test_observe_without_psi_or_vmstat_gives_none_not_an_error(tmp_path):
    from reclaimlab.probe.sources import Roots

    write_tree(tmp_path)
    o, _ = ad.observe(Roots(tmp_path / "proc", tmp_path / "sys"), None, pressure=True)
    assert (o.psi_some_avg10, o.refault_file_pages) == (None, None)


def test_observe_names_a_malformed_psi_file(tmp_path):
    from reclaimlab.probe.procfs import ProcParseError
    from reclaimlab.probe.sources import Roots

    write_tree(tmp_path)
    (tmp_path / "proc" / "pressure").mkdir()
    (tmp_path / "proc" / "pressure" / "memory").write_text("some avg10=lots\n")
    with pytest.raises(ProcParseError, match="pressure/memory"):
        ad.observe(Roots(tmp_path / "proc", tmp_path / "sys"), None, pressure=True)


def test_pressure_daemon_reclaims_while_busy_and_rebaselines_refaults_after_each_write():
    p = Policy("gradual", "pressure", time_scale=0.001)        # 10 ms polls
    counter = {"refaults": 0}
    applied, done = [], threading.Event()

    def observe_fn(cpu_prev, probe_s):
        o = Observation(now_s=time.monotonic(), mem_total_bytes=16 * GIB, mem_free_bytes=8 * GIB,
                        user_cpu_fraction=None if cpu_prev is None else BUSY,
                        busy_cpu_fraction=None if cpu_prev is None else BUSY,
                        reclaimable_cache_bytes=4 * GIB, psi_some_avg10=0.0,
                        refault_file_pages=counter["refaults"])
        return o, CpuTimes(0, 0, 0, 0)

    def apply(action):
        applied.append(action)
        if isinstance(action, Reclaim):
            counter["refaults"] += 50_000                   # the write itself faulted pages back in
            if sum(isinstance(a, Reclaim) for a in applied) >= 3:
                done.set()
        return "ok"

    with Daemon(p, apply, observe_fn=observe_fn, read_cpu=lambda: CpuTimes(0, 0, 0, 0),
                read_refaults_fn=lambda: counter["refaults"]):
        assert done.wait(5), "the pressure variant never reclaimed under a busy CPU"
    reclaimed = [a for a in applied if isinstance(a, Reclaim)]
    # 50000 refaults per write, but read right after it: never charged to the next poll, so no brake
    assert all(a.bytes == 256 * 1024 ** 2 and not a.file_only for a in reclaimed)
    assert "proposed, not merged in WSL" in reclaimed[0].reason


def test_pressure_daemon_backs_off_when_refaults_come_between_polls():
    p = Policy("gradual", "pressure", time_scale=0.001)
    counter = {"refaults": 0, "polls": 0}
    done = threading.Event()

    def observe_fn(cpu_prev, probe_s):
        counter["polls"] += 1
        counter["refaults"] += 2_000                       # 2000 per 10 ms poll = 200 per ms >> 1 per ms
        if counter["polls"] >= 6:
            done.set()
        o = Observation(now_s=time.monotonic(), mem_total_bytes=16 * GIB, mem_free_bytes=8 * GIB,
                        user_cpu_fraction=None if cpu_prev is None else BUSY,
                        busy_cpu_fraction=None if cpu_prev is None else BUSY,
                        reclaimable_cache_bytes=4 * GIB, psi_some_avg10=0.0,
                        refault_file_pages=counter["refaults"])
        return o, CpuTimes(0, 0, 0, 0)

    applied = []
    with Daemon(p, lambda a: applied.append(a), observe_fn=observe_fn, read_cpu=lambda: CpuTimes(0, 0, 0, 0)):
        assert done.wait(5)
    assert not any(isinstance(a, Reclaim) for a in applied)
    assert p.floor_bytes >= 4 * GIB                        # raised to protect the cache in use
