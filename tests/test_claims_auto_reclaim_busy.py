"""Lab 04's busy-machine claims (findings/auto_reclaim_busy.py) on the shipped busy-loop recordings and on
documented edits of them; the recorded-mode choice between runs with and without the busy loop."""
import copy

import pytest

from reclaimlab.experiments import harness
from reclaimlab.present.findings import auto_reclaim_busy as ab
from reclaimlab.recording import datasets
from reclaimlab.wsl import pressure_policy as pp

BUSY = 0.03


def _busy(policy, variant):
    try:
        return datasets.find("auto-reclaim", {"policy": policy, "variant": variant, "busy": BUSY})
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"no shipped busy auto-reclaim recording {policy} · {variant}: {exc}")


def _runs():
    return {f"{p} · {v}": _busy(p, v) for p, v in (("dropCache", "newer"), ("gradual", "newer"),
                                                   ("gradual", "pressure"))}


@pytest.mark.parametrize("policy", ["dropCache", "gradual"])
def test_shipped_newer_runs_never_acted_because_every_poll_was_over_the_gate(policy):
    rec = _busy(policy, "newer")
    res = rec.meta["results"]
    c = ab.busy_run(rec)
    # the recording itself: the gate on at WSL's 0.5 %, a busy loop beside the cache, no drop or reclaim
    assert rec.meta["parameters"]["idle_share"] == 0.005 and res["gate_limit_share"] == 0.005
    assert rec.meta["parameters"]["busy"] == BUSY and 0.01 < res["busy_loop_cpu_share"] < 0.1
    assert not rec.event_times("drop_caches") and not rec.event_times("reclaim")
    busy = [p["busy_share"] for p in res["polls"] if p["busy_share"] is not None]
    assert len(busy) >= 12 and min(busy) > 0.005
    assert c.verdict == "gate_shut"
    assert c.evidence["busy_min"] == min(busy) and c.evidence["polls"] == len(busy)
    assert f"{min(busy):.1%}" in c.sentence and "0.5%" in c.sentence and "1.0% of one CPU" in c.sentence


def test_shipped_pressure_run_acted_with_calm_psi_and_few_refaults():
    rec = _busy("gradual", "pressure")
    c = ab.busy_run(rec)
    assert c.verdict == "pressure_acted"
    assert c.evidence["psi_max"] < pp.PRESSURE_RECLAIM_BELOW_AVG10
    assert c.evidence["n_reclaim"] >= 1 and ab.first_action_s(rec) is not None
    assert "proposed, not merged in WSL" in c.sentence and c.evidence["psi_text"] in c.sentence
    # the same busy CPU as the others: the pressure variant acted without a CPU-idle poll
    assert c.evidence["idle_polls"] == 0
    reqs = [p["reclaim_bytes"] for p in rec.meta["results"]["polls"] if p.get("reclaim_bytes")]
    assert reqs and max(reqs) <= pp.PRESSURE_BUSY_STEP_BYTES


def test_shipped_takeaway_and_equal_time_cache():
    runs = _runs()
    cs = [ab.busy_run(r, label) for label, r in runs.items()]
    t = ab.wslconfig_takeaway(cs)
    assert t.verdict == "gate_blocks" and "memory=" in t.sentence
    cache = ab.cache_at_equal_time(runs)
    assert cache.verdict == "pressure_only"
    assert cache.evidence["gave_back_share"]["gradual · pressure"] >= 0.5
    assert cache.evidence["gave_back_share"]["dropCache · newer"] < 0.5
    assert cache.value == pytest.approx(min(ab.watched_s(r) for r in runs.values()))


def _edited(rec, **poll_values):
    out = copy.deepcopy(rec)
    for p in out.meta["results"]["polls"]:
        p.update(poll_values)
    return out


def test_an_open_gate_without_action_is_not_called_shut():
    """Edit: every poll under the limit (busy 0.1 %), still no action: the window was never reached."""
    rec = _edited(_busy("dropCache", "newer"), busy_share=0.001)
    c = ab.busy_run(rec)
    assert c.verdict == "gate_open_no_action"
    g = ab.busy_run(_busy("gradual", "newer"))
    assert ab.wslconfig_takeaway([c, g]).verdict == "window_not_reached"


def test_a_shipped_run_that_acted_changes_the_takeaway():
    """Edit: a drop_caches event after the idle mark in the dropCache run."""
    import pandas as pd
    rec = copy.deepcopy(_busy("dropCache", "newer"))
    t = ab.idle_mark_s(rec) + 5.0
    rec.events = pd.concat([rec.events, pd.DataFrame({"t_s": [t], "kind": ["drop_caches"], "detail": ["3"]})],
                           ignore_index=True).sort_values("t_s", ignore_index=True)
    c = ab.busy_run(rec)
    assert c.verdict == "acted_gate" and c.evidence["wait"] == pytest.approx(5.0)
    assert ab.wslconfig_takeaway([c, ab.busy_run(_busy("gradual", "newer"))]).verdict == "shipped_acted"


def test_pressure_run_without_its_reclaims_is_held_and_names_its_zones():
    """Edit: PSI 6.0 at every poll (the back-off band) and the reclaim events removed."""
    rec = _edited(_busy("gradual", "pressure"), psi_some_avg10=6.0, zone="backoff: pressure", reclaim_bytes=0)
    rec.events = rec.events[~rec.events["kind"].isin(["reclaim", "compact_memory"])].reset_index(drop=True)
    c = ab.busy_run(rec)
    assert c.verdict == "pressure_held" and "6.00" in c.sentence and "backoff: pressure" in c.sentence


def test_old_recordings_without_polls_say_not_recorded():
    rec = datasets.find("auto-reclaim", {"policy": "dropCache", "variant": "newer"},
                        defaults=harness.get("auto-reclaim").defaults)
    assert "polls" not in rec.meta["results"]
    c = ab.busy_run(rec)
    assert c.verdict == "not_recorded"
    assert ab.wslconfig_takeaway([c]).verdict == "not_measured"


def test_recorded_mode_picks_the_run_with_or_without_the_busy_loop():
    _busy("gradual", "pressure")
    plain = harness.run("auto-reclaim", mode="recorded", quiet=True, policy="dropCache", variant="newer")
    assert plain.meta["parameters"].get("busy", 0.0) == 0.0
    busy = harness.run("auto-reclaim", mode="recorded", quiet=True, policy="dropCache", variant="newer", busy=BUSY)
    assert busy.meta["parameters"]["busy"] == BUSY
    pressure = harness.run("auto-reclaim", mode="recorded", quiet=True, policy="gradual", variant="pressure",
                           busy=BUSY)
    assert pressure.meta["parameters"]["variant"] == "pressure"


def test_equal_time_chart_counts_each_run_from_its_own_idle_mark():
    from reclaimlab.present import charts
    runs = _runs()
    window = ab.common_watch_s(runs)
    spec = charts.compare_from_mark(runs, "workload_cgroup_bytes", "t", marks={k: ab.idle_mark_s(r) for k, r in runs.items()},
                                    window_s=window).to_dict()
    rows = [row for data in spec["datasets"].values() for row in data if "GiB" in row]
    assert {row["run"] for row in rows} == set(runs)
    assert min(row["t_s"] for row in rows) >= 0 and max(row["t_s"] for row in rows) <= window + 1e-9
    pressure_end = [row["GiB"] for row in rows if row["run"] == "gradual · pressure"][-1]
    assert pressure_end < 0.1
