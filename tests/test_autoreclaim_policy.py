"""The autoMemoryReclaim engine, driven through synthetic timelines (no I/O, no sleeping).

Each expectation is a number from WSL's source (see reclaimlab/wsl/autoreclaim_policy.py's docstring).
The daemon that runs it against this guest is tested in test_autoreclaim_daemon.py.
"""
from __future__ import annotations

import pytest

from reclaimlab.units import GIB, MIB
from reclaimlab.wsl import autoreclaim_policy as ar
from reclaimlab.wsl.autoreclaim_policy import DropCaches, Observation, Policy, Reclaim

TOTAL = 16 * GIB
BUSY, QUIET = 0.20, 0.001       # shares of all CPUs' time


def obs(now_s, *, user=QUIET, busy=None, free=TOTAL - 4 * GIB, reclaimable=2 * GIB, probe=None, total=TOTAL):
    return Observation(now_s=now_s, mem_total_bytes=total, mem_free_bytes=free,
                       user_cpu_fraction=user, busy_cpu_fraction=user if busy is None else busy,
                       reclaimable_cache_bytes=reclaimable, probe_user_cpu_fraction=probe)


def run(policy, shares, **kw):
    """Feed one observation per poll (evenly spaced); return [(poll index from 1, actions)]."""
    out = []
    for i, share in enumerate(shares, 1):
        out.append((i, policy.decide(obs(i * policy.poll_interval_s, user=share, **kw))))
    return out


def kinds(actions):
    return [type(a).__name__ for a in actions]


def first_poll_with(timeline, cls):
    return next((i for i, acts in timeline if any(isinstance(a, cls) for a in acts)), None)


# ------------------------------------------------------------------ construction and timing

def test_bad_arguments_name_the_valid_values():
    with pytest.raises(ValueError, match="gradual"):
        Policy(mode="sometimes")
    with pytest.raises(ValueError, match="released"):
        Policy(variant="future")
    with pytest.raises(ValueError, match="positive"):
        Policy(time_scale=0)
    with pytest.raises(ValueError, match="1, 2 or 3"):
        Policy(drop_level=4)


def test_dropcache_spelling_of_wslconfig_is_accepted():
    assert Policy(mode="dropcache").mode == "dropCache"


@pytest.mark.parametrize("variant,mode,poll_s,window_s", [
    ("released", "dropCache", 30, 600),   # 10 minutes
    ("released", "gradual", 30, 180),     # 3 minutes
    ("newer", "dropCache", 10, 120),      # 2 minutes
    ("newer", "gradual", 10, 120),
])
def test_periods_match_wsl_and_scale(variant, mode, poll_s, window_s):
    p = Policy(mode, variant)
    assert (p.poll_interval_s, p.idle_window_s) == (poll_s, window_s)
    fast = Policy(mode, variant, time_scale=0.01)
    assert fast.poll_interval_s == pytest.approx(poll_s * 0.01)
    assert fast.idle_window_s == pytest.approx(window_s * 0.01)


def test_ten_minutes_become_six_seconds():
    assert Policy("dropCache", "released", time_scale=0.01).idle_window_s == pytest.approx(6.0)


def test_bad_observation_is_refused():
    with pytest.raises(ValueError, match="share of CPU"):
        Policy().decide(obs(0, user=1.5))
    with pytest.raises(ValueError, match="memory sizes"):
        Policy().decide(Observation(now_s=0, mem_total_bytes=0, mem_free_bytes=0))


# ------------------------------------------------------------------ released dropCache

def test_released_dropcache_drops_once_after_a_full_ten_minute_window():
    p = Policy("dropCache", "released", page_reporting_order=0)
    # poll 1 is only a baseline; polls 2..21 are 20 quiet 30 s intervals = 10 minutes
    tl = run(p, [BUSY] + [QUIET] * 40)
    assert first_poll_with(tl, DropCaches) == 21
    drops = [a for _, acts in tl for a in acts if isinstance(a, DropCaches)]
    assert drops == [DropCaches(1, reason=drops[0].reason)]      # once per idle period, level 1


def test_released_dropcache_rearms_after_a_busy_poll_and_waits_a_full_window_again():
    p = Policy("dropCache", "released", page_reporting_order=0)
    tl = run(p, [BUSY] + [QUIET] * 25 + [BUSY] + [QUIET] * 25)
    drops = [i for i, acts in tl if any(isinstance(a, DropCaches) for a in acts)]
    assert drops == [21, 27 + 20]


def test_released_one_busy_poll_in_the_window_blocks_idle():
    p = Policy("dropCache", "released", page_reporting_order=0)
    # a burst at poll 15 is inside every window until poll 35
    tl = run(p, [BUSY] + [QUIET] * 13 + [BUSY] + [QUIET] * 25)
    assert first_poll_with(tl, DropCaches) == 15 + 20


def test_released_window_sums_cpu_so_a_short_burst_need_not_block_idle():
    """Window test: user CPU summed over L polls < (L+1) x the per-poll 0.5 % threshold.

    One poll at 10 thresholds (5 % user) early in the window still lets the window pass (10 < 21);
    one at 25 thresholds does not. The last poll alone must be under one threshold.
    """
    p = Policy("dropCache", "released", page_reporting_order=0)
    assert first_poll_with(run(p, [BUSY, QUIET, 0.05] + [0.0] * 18), DropCaches) == 21
    p2 = Policy("dropCache", "released", page_reporting_order=0)
    assert first_poll_with(run(p2, [BUSY, QUIET, 0.125] + [0.0] * 25), DropCaches) == 23
    p3 = Policy("dropCache", "released", page_reporting_order=0)
    assert first_poll_with(run(p3, [BUSY] + [0.0051] * 30), DropCaches) is None   # each poll over 0.5 %


def test_released_uses_user_cpu_only():
    p = Policy("dropCache", "released", page_reporting_order=0)
    # busy (system/iowait-heavy) but no user CPU: the released thread calls that idle
    tl = [(i, p.decide(obs(i * 30.0, user=0.0, busy=0.5))) for i in range(1, 22)]
    assert first_poll_with(tl, DropCaches) == 21


def test_released_drop_level_is_a_parameter():
    p = Policy("dropCache", "released", drop_level=3, page_reporting_order=0)
    assert first_poll_with(run(p, [BUSY] + [QUIET] * 20), DropCaches) == 21
    assert p.last_tick.actions[0].level == 3


# ------------------------------------------------------------------ released gradual

def test_released_gradual_reclaims_three_percent_of_used_each_idle_poll_after_three_minutes():
    p = Policy("gradual", "released", page_reporting_order=0)
    used = 4 * GIB
    tl = run(p, [BUSY] + [QUIET] * 9, free=TOTAL - used)
    assert first_poll_with(tl, Reclaim) == 7                      # 6 quiet polls = 3 minutes
    reclaims = [a for _, acts in tl for a in acts if isinstance(a, Reclaim)]
    assert len(reclaims) == 4                                    # polls 7..10, every idle poll
    assert reclaims[0].bytes == ar.released_gradual_bytes(used) == int(used - used * 0.97)
    assert reclaims[0].file_only is False                        # no swappiness=0 in the released code


def test_released_gradual_used_is_total_minus_free_including_cache():
    o = obs(0, free=TOTAL - 3 * GIB)
    assert o.used_bytes == 3 * GIB


def test_released_gradual_stops_under_one_gib_until_used_exceeds_1_1_gib():
    p = Policy("gradual", "released", page_reporting_order=0)
    for i in range(1, 7):
        p.decide(obs(i * 30.0, user=BUSY if i == 1 else QUIET, free=TOTAL - 2 * GIB))
    # used 1.02 GiB: 0.97 x used < 1 GiB, so this is the last write ...
    a = p.decide(obs(7 * 30.0, free=TOTAL - int(1.02 * GIB)))
    assert kinds(a) == ["Reclaim"]
    # ... at 1.05 GiB (between Low and High) nothing more
    assert p.decide(obs(8 * 30.0, free=TOTAL - int(1.05 * GIB))) == []
    # over 1.1 GiB it starts again
    assert kinds(p.decide(obs(9 * 30.0, free=TOTAL - int(1.2 * GIB)))) == ["Reclaim"]


def test_released_gradual_does_nothing_at_or_under_one_gib():
    p = Policy("gradual", "released", page_reporting_order=0)
    tl = run(p, [BUSY] + [QUIET] * 10, free=TOTAL - GIB)
    assert first_poll_with(tl, Reclaim) is None


def test_released_gradual_falls_back_to_dropcache_without_memory_reclaim():
    p = Policy("gradual", "released", memory_reclaim_available=False, page_reporting_order=0)
    assert p.effective_mode == "dropCache" and p.idle_window_s == 600
    tl = run(p, [BUSY] + [QUIET] * 20)
    assert first_poll_with(tl, DropCaches) == 21 and first_poll_with(tl, Reclaim) is None
    assert "fell back" in p.describe()


# ------------------------------------------------------------------ released compaction

def test_released_compacts_after_activity_when_the_probe_is_quiet_even_when_disabled():
    p = Policy("disabled", "released")                  # page_reporting_order 9: the thread runs
    assert p.runs_thread
    assert kinds(p.decide(obs(30, user=BUSY, probe=0.001))) == ["Compact"]    # Stop = 0: first poll probes
    assert p.decide(obs(60, user=BUSY, probe=0.5)) == []                     # activity, but the probe is busy
    assert kinds(p.decide(obs(90, user=BUSY, probe=0.0))) == ["Compact"]
    # no user CPU since the last probe (under nprocs jiffies): no probe, no compaction
    assert p.decide(obs(120, user=0.0, probe=0.0)) == []


def test_released_compaction_is_off_with_page_reporting_order_zero():
    p = Policy("disabled", "released", page_reporting_order=0)
    assert not p.runs_thread and p.compact_probe_s == 0
    assert run(p, [BUSY, QUIET, BUSY]) == [(1, []), (2, []), (3, [])]


def test_released_compaction_probe_is_a_measurement_not_compressed_below_what_proc_stat_resolves():
    assert Policy(time_scale=1.0).compact_probe_s == pytest.approx(1.0)
    assert Policy(time_scale=0.05).compact_probe_s == pytest.approx(1.0)   # poll 1.5 s: the 1 s probe fits
    assert Policy(time_scale=0.01).compact_probe_s == pytest.approx(0.2)   # poll 0.3 s: two thirds of it


def test_released_compaction_comes_after_the_drop_in_the_same_poll():
    p = Policy("dropCache", "released")
    tl = run(p, [BUSY] + [QUIET] * 20, probe=0.0)
    assert kinds(tl[20][1]) == ["DropCaches", "Compact"]


# ------------------------------------------------------------------ newer

def test_newer_dropcache_after_two_minutes_then_compacts_once():
    p = Policy("dropCache", "newer")
    shares = [None, BUSY] + [QUIET] * 20
    tl = [(i, p.decide(obs(i * 10.0, user=s))) for i, s in enumerate(shares, 1)]
    # poll 1 is the baseline, poll 2 busy, polls 3..14 are 12 quiet 10 s intervals = 2 minutes
    assert first_poll_with(tl, DropCaches) == 14
    assert kinds(tl[13][1]) == ["DropCaches", "Compact"]
    assert all(acts == [] for _, acts in tl[14:])                # once per idle period
    assert p.idle and tl[13][0] == 14


def test_newer_uses_busy_cpu_not_user_cpu():
    p = Policy("dropCache", "newer")
    tl = [(i, p.decide(obs(i * 10.0, user=0.0, busy=0.3))) for i in range(1, 30)]
    assert first_poll_with(tl, DropCaches) is None


def test_newer_threshold_is_inclusive_half_a_percent():
    p = Policy("dropCache", "newer")
    tl = run(p, [0.005] * 14)          # run() gives a measured interval from poll 1 on
    assert first_poll_with(tl, DropCaches) == 12
    p2 = Policy("dropCache", "newer")
    assert first_poll_with(run(p2, [0.0051] * 30), DropCaches) is None


def test_newer_busy_interval_resets_the_streak_and_rearms():
    p = Policy("dropCache", "newer")
    tl = run(p, [QUIET] * 13 + [BUSY] + [QUIET] * 12)
    assert [i for i, acts in tl if any(isinstance(a, DropCaches) for a in acts)] == [12, 26]


@pytest.mark.parametrize("total,step", [
    (2 * GIB, 256 * MIB),          # 64 MiB -> clamped up
    (16 * GIB, 512 * MIB),         # RAM/32
    (64 * GIB, GIB),               # 2 GiB -> clamped down
])
def test_newer_step_is_ram_over_32_clamped(total, step):
    assert ar.newer_step_bytes(total) == step


def test_newer_gradual_steps_toward_the_128_mib_floor_and_compacts_after_each():
    p = Policy("gradual", "newer")
    cache = 1200 * MIB
    seen = []
    for i in range(1, 20):
        acts = p.decide(obs(i * 10.0, reclaimable=cache, total=16 * GIB))
        rec = [a for a in acts if isinstance(a, Reclaim)]
        if rec:
            assert kinds(acts) == ["Reclaim", "Compact"] and rec[0].file_only
            seen.append(rec[0].bytes)
            cache -= rec[0].bytes            # pretend the kernel freed exactly what was asked
    assert seen == [512 * MIB, 512 * MIB, 1200 * MIB - 1024 * MIB - 128 * MIB]
    assert cache == 128 * MIB


def test_newer_gradual_at_the_floor_compacts_once_on_entering_idle():
    p = Policy("gradual", "newer")
    tl = run(p, [QUIET] * 20, reclaimable=100 * MIB)
    compacts = [i for i, acts in tl if acts]
    assert compacts == [12] and kinds(tl[11][1]) == ["Compact"]


def test_newer_disabled_runs_no_thread():
    p = Policy("disabled", "newer")
    assert not p.runs_thread
    assert all(acts == [] for _, acts in run(p, [QUIET] * 30))


def test_newer_gradual_falls_back_to_dropcache():
    p = Policy("gradual", "newer", memory_reclaim_available=False)
    tl = run(p, [QUIET] * 14)
    assert first_poll_with(tl, DropCaches) == 12 and first_poll_with(tl, Reclaim) is None


def test_time_scale_changes_wall_time_not_poll_counts():
    slow, fast = Policy("dropCache", "released", page_reporting_order=0), Policy(
        "dropCache", "released", time_scale=0.01, page_reporting_order=0)
    assert first_poll_with(run(slow, [BUSY] + [QUIET] * 22), DropCaches) == first_poll_with(
        run(fast, [BUSY] + [QUIET] * 22), DropCaches) == 21


def test_uneven_polls_count_real_cpu_time():
    """A late poll carries more CPU time: the released test sums share x seconds, as jiffies do."""
    p = Policy("dropCache", "released", page_reporting_order=0)
    p.decide(obs(30, user=BUSY))
    for i in range(2, 21):
        p.decide(obs(i * 30.0, user=0.003))
    # 0.003 over a 90 s gap is 0.27 CPU-s, over the 0.15 CPU-s per-poll threshold: not idle
    assert p.decide(obs(20 * 30.0 + 90, user=0.003)) == []


def test_describe_quotes_the_numbers():
    text = Policy("gradual", "newer", time_scale=0.1).describe()
    assert "1 s" in text and "128 MiB" in text and "12 polls" in text
    assert "3 %" in Policy("gradual", "released").describe()


# ------------------------------------------------------------------ the paper model

def test_simulate_shows_each_policy_at_wsls_real_timing():
    kw = dict(duration_s=1800, busy_until_s=300, mem_total_bytes=16 * GIB, anon_bytes=GIB, cache_bytes=3 * GIB)
    drop = ar.simulate(Policy("dropCache", "released", page_reporting_order=0), **kw)
    first = next(r for r in drop if "drop_caches" in r["actions"])
    assert 300 + 600 <= first["t_s"] <= 300 + 600 + 60          # 10 idle minutes (+ the poll grid)
    assert drop[-1]["cache_bytes"] == 64 * MIB
    newer = ar.simulate(Policy("gradual", "newer"), **kw)
    reclaims = [r for r in newer if "reclaim" in r["actions"]]
    assert 300 + 120 <= reclaims[0]["t_s"] <= 300 + 140           # 2 idle minutes
    assert newer[-1]["cache_bytes"] == 128 * MIB                  # the floor (pinned cache is below it)
    gradual = ar.simulate(Policy("gradual", "released", page_reporting_order=0), **kw)
    steps = [r for r in gradual if "reclaim" in r["actions"]]
    assert 300 + 180 <= steps[0]["t_s"] <= 300 + 210               # 3 idle minutes
    assert gradual[-1]["used_bytes"] < 4 * GIB - 2 * GIB          # 3 % of used per 30 s adds up


def test_simulate_refuses_an_impossible_guest():
    with pytest.raises(ValueError, match="exceed"):
        ar.simulate(Policy(), duration_s=10, busy_until_s=0, mem_total_bytes=GIB, anon_bytes=GIB, cache_bytes=GIB)


# ------------------------------------------------------------------ newer: the merged code's own cases
# microsoft/WSL src/linux/init/util.cpp at 3e27a6a: CpuIdleTracker (3536-3592), StartMemoryReductionThread (3783-).

def test_newer_defaults_follow_the_merged_code():
    p = Policy("dropCache", "newer")
    assert p.poll_interval_s == 10 and p.window_polls == 12 and p.idle_share == 0.005
    assert p.drop_level == 3                      # "3\n" since #41171 (88f76dd)
    assert Policy("dropCache", "released").drop_level == 1


def test_newer_dropcache_writes_3_once_per_idle_period_then_compacts():
    p = Policy("dropCache", "newer")
    tl = run(p, [QUIET] * 30)
    drops = [(i, a) for i, acts in tl for a in acts if isinstance(a, DropCaches)]
    assert [i for i, _ in drops] == [12] and drops[0][1].level == 3
    assert kinds(tl[11][1]) == ["DropCaches", "Compact"]


def test_newer_a_burst_in_an_idle_window_blocks_one_tick_and_keeps_the_history():
    """"A short burst blocks this tick but does not discard the preceding idle history"."""
    p = Policy("gradual", "newer")
    # 12 quiet intervals -> idle at poll 12; poll 13 is a 2 % burst: the 12-interval sum stays
    # at (11 x 0.1 % + 2 %) / 12 = 0.26 % <= 0.5 %, so the window is idle but this interval is not.
    tl = run(p, [QUIET] * 12 + [0.02] + [QUIET] * 3)
    assert kinds(tl[11][1]) == ["Reclaim", "Compact"]
    assert tl[12][1] == [] and p.last_tick is not None
    # poll 14: idle again at once (no new 2 minutes), and the once-per-period compaction is not re-armed:
    # it compacts only because it reclaimed.
    assert kinds(tl[13][1]) == ["Reclaim", "Compact"] and tl[13][1][1].after_reclaim


def test_newer_a_busy_window_rearms_and_needs_the_window_to_clear():
    p = Policy("dropCache", "newer")
    # 20 % in one interval lifts the 12-interval sum over 0.5 % for the next 11 polls too.
    tl = run(p, [QUIET] * 12 + [BUSY] + [QUIET] * 13)
    assert [i for i, acts in tl if any(isinstance(a, DropCaches) for a in acts)] == [12, 25]
    assert not any(acts for i, acts in tl if 13 <= i <= 24)


def test_newer_window_is_a_sum_not_every_poll():
    """The window test sums busy and total over 12 intervals: one 1 % interval among quiet ones passes."""
    p = Policy("dropCache", "newer")
    tl = run(p, [0.01] + [0.0] * 11 + [0.0])
    assert first_poll_with(tl, DropCaches) == 12   # (1 % + 0) / 12 <= 0.5 %, and poll 12 itself is quiet


def test_newer_counter_reset_discards_the_window():
    p = Policy("dropCache", "newer")
    run(p, [QUIET] * 11)
    assert p.decide(obs(115.0, user=None)) == []      # counters went backwards: resample
    tl = [(i, p.decide(obs(115.0 + 10 * i, user=QUIET))) for i in range(1, 13)]
    assert first_poll_with(tl, DropCaches) == 12


@pytest.mark.parametrize("ram_gib,step_mib", [(2, 256), (8, 256), (32, 1024), (64, 1024)])
def test_newer_step_clamp_at_2_8_32_64_gib(ram_gib, step_mib):
    """totalram / 32 (util.cpp:3849) clamped to 256 MiB..1 GiB (3843-3844)."""
    assert ar.newer_step_bytes(ram_gib * GIB) == step_mib * MIB
    p = Policy("gradual", "newer")
    tl = run(p, [QUIET] * 12, reclaimable=10 * GIB, total=ram_gib * GIB, free=GIB)
    assert tl[11][1][0] == Reclaim(step_mib * MIB, file_only=True, reason="cache above the 128 MiB floor")
    assert tl[11][1][0].detail().endswith("swappiness=0")


def test_newer_a_failed_drop_is_tried_again_next_poll():
    p = Policy("dropCache", "newer")
    run(p, [QUIET] * 12)
    p.outcome(DropCaches(3), ok=False)
    acts = p.decide(obs(130.0))
    assert kinds(acts) == ["DropCaches", "Compact"] and acts[1].after_reclaim


def test_newer_gradual_falls_back_to_dropcache_3_without_memory_reclaim():
    """access(RECLAIM_PATH, W_OK) < 0 -> drop_caches (util.cpp:3831)."""
    p = Policy("gradual", "newer", memory_reclaim_available=False)
    tl = run(p, [QUIET] * 20)
    drops = [a for _, acts in tl for a in acts if isinstance(a, DropCaches)]
    assert len(drops) == 1 and drops[0].level == 3 and first_poll_with(tl, Reclaim) is None
    assert "fell back" in p.describe()
