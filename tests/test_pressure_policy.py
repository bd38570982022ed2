"""The pressure variant (PROPOSED, NOT MERGED IN WSL: microsoft/WSL #40778-#40779) and the CPU gate's limits.

Each number is a constant of PR #40779's head 4e60f356b, src/linux/init/util.cpp (see
reclaimlab/wsl/pressure_policy.py), or of the released/newer sources (wsl/idle_gate.py).
Pure model: no I/O, no sleeping.
"""
from __future__ import annotations

import random

import pytest

from reclaimlab.units import GIB, MIB
from reclaimlab.wsl import idle_gate
from reclaimlab.wsl import pressure_policy as pp
from reclaimlab.wsl.autoreclaim_policy import Compact, Observation, Policy, Reclaim, simulate

TOTAL = 16 * GIB
BUSY, QUIET = 0.015, 0.001     # shares of all CPUs: 3 % of one CPU on a 2-CPU guest; an idle guest


def obs(now_s, *, busy=BUSY, psi=0.0, refaults=0, cache=4 * GIB, free=8 * GIB, total=TOTAL):
    return Observation(now_s=now_s, mem_total_bytes=total, mem_free_bytes=free, user_cpu_fraction=busy,
                       busy_cpu_fraction=busy, reclaimable_cache_bytes=cache, psi_some_avg10=psi,
                       refault_file_pages=refaults)


def started(policy, **kw):
    """A policy past its baseline poll (the first reading only sets the CPU and refault baselines)."""
    policy.decide(Observation(now_s=0, mem_total_bytes=kw.get("total", TOTAL), mem_free_bytes=8 * GIB,
                              refault_file_pages=kw.get("refaults", 0)))
    return policy


def reclaims(actions):
    return [a.bytes for a in actions if isinstance(a, Reclaim)]


# ------------------------------------------------------------------ labelled everywhere

def test_it_is_labelled_proposed_not_merged():
    p = Policy("gradual", "pressure")
    assert "proposed, not merged in WSL" in p.describe()
    assert "proposed, not merged in WSL" in pp.LABEL
    r = reclaims_actions = started(p).decide(obs(10))
    assert any("proposed, not merged in WSL" in a.reason for a in r if isinstance(a, Reclaim)), reclaims_actions
    assert "not merged" in idle_gate.gate_facts("pressure").source


def test_source_timing_and_thresholds():
    p = Policy("gradual", "pressure")
    assert p.poll_interval_s == 10
    q = p.pressure_params
    assert (q.reclaim_below_avg10, q.backoff_at_avg10, q.refault_backoff_pages) == (1.0, 5.0, 10_000)
    assert (q.floor_base_bytes, q.busy_step_bytes, q.hysteresis_bytes) == (128 * MIB, 256 * MIB, 128 * MIB)
    assert q.floor_max_bytes(16 * GIB) == 12 * GIB and q.floor_max_bytes(None) == 4 * GIB


# ------------------------------------------------------------------ acts where the idle gate would not

def test_acts_under_a_busy_cpu_the_first_poll_after_the_baseline():
    p = started(Policy("gradual", "pressure"))
    acts = p.decide(obs(10, busy=BUSY, psi=0.2))
    assert reclaims(acts) == [256 * MIB]                         # busy: one bounded step
    assert isinstance(acts[-1], Compact)                         # free (8 GiB) > the mark (0) + 256 MiB
    p.outcome(acts[-1], True)
    acts = p.decide(obs(20, busy=BUSY, psi=0.2))
    assert reclaims(acts) == [256 * MIB] and acts[-1].after_reclaim   # then: compact after each reclaim
    assert p.last_pressure.zone == "calm" and not p.last_pressure.interval_idle


def test_an_idle_interval_drains_the_whole_excess():
    p = started(Policy("gradual", "pressure"))
    assert reclaims(p.decide(obs(10, busy=QUIET, cache=4 * GIB))) == [4 * GIB - 128 * MIB]


@pytest.mark.parametrize("variant,mode", [("released", "dropCache"), ("released", "gradual"),
                                          ("newer", "dropCache"), ("newer", "gradual")])
def test_the_idle_gated_variants_never_act_under_the_same_load(variant, mode):
    v = idle_gate.busy_load_verdict(variant, mode, one_cpu_share=0.03, nprocs=2)
    assert not v.acts and v.first_action_s is None and "never acted in 60 min" in v.sentence()
    p = idle_gate.busy_load_verdict("pressure", "gradual", one_cpu_share=0.03, nprocs=2)
    assert p.acts and p.first_action_s == 10


def test_without_psi_it_falls_back_to_the_cpu_gate():
    p = started(Policy("gradual", "pressure"))
    assert reclaims(p.decide(obs(10, busy=BUSY, psi=None))) == []
    assert p.last_pressure.zone == "no psi: cpu busy"
    assert reclaims(p.decide(obs(20, busy=QUIET, psi=None))) == [4 * GIB - 128 * MIB]


# ------------------------------------------------------------------ backs off

def test_pressure_at_or_above_5_backs_off_and_raises_the_floor_to_the_cache():
    p = started(Policy("gradual", "pressure"))
    assert reclaims(p.decide(obs(10, psi=5.0, cache=3 * GIB))) == []
    assert p.last_pressure.zone == "backoff: pressure"
    assert p.floor_bytes == 3 * GIB + 128 * MIB                  # cache + hysteresis (> 2 x 128 MiB)


def test_the_dead_zone_holds_still():
    p = started(Policy("gradual", "pressure"))
    assert reclaims(p.decide(obs(10, psi=1.0))) == [] and reclaims(p.decide(obs(20, psi=4.99))) == []
    assert p.last_pressure.zone == "dead zone" and p.floor_bytes == 128 * MIB
    assert reclaims(p.decide(obs(30, psi=0.99))) == [256 * MIB]


def test_refaults_brake_at_10000_pages_per_poll():
    p = started(Policy("gradual", "pressure"))
    assert reclaims(p.decide(obs(10, refaults=9_999))) == [256 * MIB]
    p.note_refaults_after_reclaim(9_999)
    assert reclaims(p.decide(obs(20, refaults=19_999, cache=2 * GIB))) == []
    assert p.last_pressure.zone == "backoff: refaults" and p.last_pressure.refault_delta_pages == 10_000
    assert p.floor_bytes == 2 * GIB + 128 * MIB


def test_refaults_during_the_write_are_not_charged_to_the_next_poll():
    p = started(Policy("gradual", "pressure"))
    p.decide(obs(10, refaults=0))
    p.note_refaults_after_reclaim(50_000)                       # counter re-read after the write
    assert reclaims(p.decide(obs(20, refaults=50_100))) == [256 * MIB]


def test_a_refault_counter_that_goes_backwards_is_a_new_baseline_not_a_brake():
    p = started(Policy("gradual", "pressure"), refaults=900_000)
    assert reclaims(p.decide(obs(10, refaults=5))) == [256 * MIB]
    assert p.last_pressure.refault_delta_pages == 0


def test_compressed_time_brakes_at_the_same_refault_rate():
    p = started(Policy("gradual", "pressure", time_scale=0.1))
    assert reclaims(p.decide(obs(1, refaults=1_000))) == []     # 1000 pages per 1 s poll = 10000 per 10 s


# ------------------------------------------------------------------ the floor adapts

def test_floor_decays_64_mib_per_poll_after_six_calm_polls():
    p = started(Policy("gradual", "pressure"))
    p.decide(obs(10, psi=9.0, cache=1 * GIB))
    assert p.floor_bytes == 1 * GIB + 128 * MIB
    floors = []
    for i in range(2, 12):
        p.decide(obs(10 * i, psi=0.0, cache=1 * GIB))
        floors.append(p.floor_bytes)
    top = 1 * GIB + 128 * MIB
    assert floors[:5] == [top] * 5                               # polls 1-5 of the calm streak
    assert floors[5:] == [top - k * 64 * MIB for k in range(1, 6)]


def test_floor_is_capped_at_three_quarters_of_ram_and_doubles_at_least():
    p = started(Policy("gradual", "pressure"), total=4 * GIB)
    p.decide(obs(10, psi=50.0, cache=3 * GIB + 512 * MIB, total=4 * GIB, free=256 * MIB))
    assert p.floor_bytes == 3 * GIB                              # min(3/4 x 4 GiB, cache + 128 MiB)
    q = Policy("gradual", "pressure")
    started(q).decide(obs(10, psi=6.0, cache=0))
    assert q.floor_bytes == 256 * MIB                            # max(2 x 128 MiB, 0 + 128 MiB)


def test_on_a_model_guest_the_floor_learns_the_working_set():
    ws = 3 * GIB
    rows = simulate(Policy("gradual", "pressure"), duration_s=1800, busy_until_s=2000, mem_total_bytes=TOTAL,
                    anon_bytes=2 * GIB, cache_bytes=6 * GIB, busy_share=BUSY, working_set_bytes=ws)
    braked = [r for r in rows if r["zone"].startswith("backoff")]
    assert braked, "reclaim below the working set must cause refaults and a brake"
    first = braked[0]
    assert first["floor_bytes"] == ws + 128 * MIB
    assert min(r["cache_bytes"] for r in rows) >= ws - 256 * MIB   # never more than one busy step below it
    # the cold 3 GiB went in 256 MiB steps (12 polls), then the floor holds: re-probes are rare
    assert rows[13]["cache_bytes"] <= ws
    reclaim_polls = sum("reclaim" in r["actions"] for r in rows[14:])
    assert reclaim_polls <= len(rows[14:]) // 5


# ------------------------------------------------------------------ never absurd

def test_requests_are_never_negative_or_more_than_the_cache_above_the_floor():
    rng = random.Random(26)
    p = started(Policy("gradual", "pressure"))
    refaults = 0
    for i in range(1, 3000):
        refaults += rng.choice([0, 0, 0, 500, 20_000])
        cache = rng.randrange(0, 12 * GIB)
        busy = rng.choice([0.0, 0.004, 0.005, 0.3, 1.0])
        psi = rng.choice([None, 0.0, 0.5, 2.0, 7.0, 100.0])
        floor_before = p.floor_bytes
        acts = p.decide(obs(10 * i, busy=busy, psi=psi, refaults=refaults, cache=cache))
        for b in reclaims(acts):
            assert 128 * MIB < b <= cache - p.floor_bytes
            assert b <= 256 * MIB or busy <= 0.005
        assert 128 * MIB <= p.floor_bytes <= 12 * GIB
        if reclaims(acts):
            assert p.floor_bytes <= floor_before


# ------------------------------------------------------------------ compaction

def test_compacts_when_free_memory_grew_by_256_mib_without_reclaim():
    p = started(Policy("gradual", "pressure"))
    acts = p.decide(obs(10, psi=3.0, free=1 * GIB))               # dead zone: no reclaim
    assert [type(a) for a in acts] == [Compact] and not acts[0].after_reclaim
    p.outcome(acts[0], True)
    assert p.decide(obs(20, psi=3.0, free=1 * GIB + 100 * MIB)) == []
    assert p.decide(obs(30, psi=3.0, free=1 * GIB + 300 * MIB))  # 300 MiB above the mark
    q = started(Policy("gradual", "pressure"))
    a = q.decide(obs(10, psi=3.0, free=1 * GIB))
    q.outcome(a[0], False)                                        # failed: the mark stays, retried
    assert q.decide(obs(20, psi=3.0, free=1 * GIB))


# ------------------------------------------------------------------ bad parameters

@pytest.mark.parametrize("kw,match", [
    ({"reclaim_below_avg10": 6.0}, "dead zone"),
    ({"backoff_at_avg10": 0}, "percentage"),
    ({"backoff_at_avg10": 150}, "percentage"),
    ({"refault_backoff_pages": 0}, "whole number"),
    ({"floor_base_bytes": -1}, "positive number of bytes"),
    ({"busy_step_bytes": 1.5}, "positive number of bytes"),
    ({"floor_max_ram_share": 1.5}, "share of RAM"),
    ({"floor_max_fallback_bytes": MIB}, "at least floor_base_bytes"),
])
def test_bad_pressure_parameters_are_clear_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        pp.PressureParams(**kw)


def test_bad_policy_settings_and_observations_are_clear_errors():
    with pytest.raises(ValueError, match="gradual mode only"):
        Policy("dropCache", "pressure")
    with pytest.raises(ValueError, match="needs memory.reclaim"):
        Policy("gradual", "pressure", memory_reclaim_available=False)
    with pytest.raises(ValueError, match="variant 'pressure' only"):
        Policy("gradual", "newer", pressure=pp.PressureParams())
    with pytest.raises(ValueError, match="PressureParams"):
        Policy("gradual", "pressure", pressure={"backoff_at_avg10": 5})
    p = started(Policy("gradual", "pressure"))
    with pytest.raises(ValueError, match="percentage between 0 and 100"):
        p.decide(obs(10, psi=101.0))
    with pytest.raises(ValueError, match="workingset_refault_file"):
        p.decide(obs(10, refaults=-1))
    assert Policy("disabled", "pressure").runs_thread is False
    assert "disabled" in Policy("disabled", "pressure").describe()


# ------------------------------------------------------------------ how busy is too busy (the gates)

@pytest.mark.parametrize("variant,mode", [("released", "dropCache"), ("released", "gradual"),
                                          ("newer", "dropCache"), ("newer", "gradual")])
def test_the_gate_limit_is_half_a_percent_of_all_cpus(variant, mode):
    inclusive = idle_gate.gate_facts(variant).inclusive
    at = idle_gate.busy_load_verdict(variant, mode, one_cpu_share=0.005 * 4, nprocs=4)
    below = idle_gate.busy_load_verdict(variant, mode, one_cpu_share=0.0049 * 4, nprocs=4)
    above = idle_gate.busy_load_verdict(variant, mode, one_cpu_share=0.0051 * 4, nprocs=4)
    assert below.acts and not above.acts
    assert at.acts is inclusive                                   # newer: <= ; released: strict <
    assert idle_gate.limit_one_cpu_share(variant, 12) == pytest.approx(0.06)


def test_the_same_load_is_quiet_on_many_cpus_and_too_busy_on_few():
    assert idle_gate.busy_load_verdict("newer", "dropCache", 0.03, nprocs=12).acts      # 0.25 % of 12 CPUs
    assert not idle_gate.busy_load_verdict("newer", "dropCache", 0.03, nprocs=2).acts   # 1.5 % of 2 CPUs
    v = idle_gate.busy_load_verdict("newer", "dropCache", 0.03, nprocs=12)
    assert v.first_action_s == 120                                # the 2-minute window, then the drop
    r = idle_gate.busy_load_verdict("released", "dropCache", 0.03, nprocs=12)
    assert r.first_action_s == 600                                # the 10-minute window: 20 polls of 30 s


def test_gate_helpers_refuse_nonsense():
    with pytest.raises(ValueError, match="nprocs"):
        idle_gate.limit_one_cpu_share("newer", 0)
    with pytest.raises(ValueError, match="variant"):
        idle_gate.gate_facts("future")
    with pytest.raises(ValueError, match="one_cpu_share"):
        idle_gate.busy_load_verdict("newer", "gradual", -0.1, nprocs=2)
