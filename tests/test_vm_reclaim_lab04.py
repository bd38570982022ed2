"""Lab 04's section on the four auto-reclaim runs made in the kit's VM (notebook/vm_reclaim.py,
present/findings/auto_reclaim_vm.py): the claims on the shipped recordings and on documented edits of them,
the "vm:auto-reclaim" keys of the lab's `recordings` parameter, and what a replayed run must match."""
import copy
import shutil

import pytest

from reclaimlab.experiments import harness
from reclaimlab.notebook import busy_machine, params, vm_reclaim
from reclaimlab.present.findings import auto_reclaim_busy as ab
from reclaimlab.present.findings import auto_reclaim_vm as av
from reclaimlab.recording import datasets, recording


def _vm(policy, variant):
    try:
        return datasets.find("auto-reclaim", {"policy": policy, "variant": variant}, guest_kind="kit-vm")
    except recording.RecordingError as exc:
        pytest.skip(f"no shipped kit-VM auto-reclaim recording {policy} · {variant}: {exc}")


@pytest.mark.parametrize("policy,variant", vm_reclaim.RUNS)
def test_each_shipped_vm_run_acted_and_the_hosts_view_fell(policy, variant):
    rec = _vm(policy, variant)
    res = rec.meta["results"]
    c = av.vm_run(rec)
    assert c.verdict == "host_fell"
    # the claim's fall is the recording's: QEMU's RSS at the idle mark minus at the end (the results agree)
    assert c.value == pytest.approx(res["host_rss_idle_kib"] - res["host_rss_after_kib"], abs=64 * 1024)
    assert c.value >= av.HOST_FELL_KIB and c.evidence["fell"] in c.sentence
    assert c.evidence["idle_polls"] == res["gate_idle_polls"] >= 1
    wait = av.ar.first_action_s(rec) - av.idle_mark_s(rec)
    assert c.evidence["wait"] == pytest.approx(wait)
    assert c.evidence["wsl_wait"] == pytest.approx(wait / res["time_scale"])
    assert ("WSL's real clock" in c.sentence) == (res["time_scale"] == 1.0)


def test_method_claims_say_what_was_written():
    assert av.method(_vm("dropCache", "newer")).verdict == "drop"
    assert "`drop_caches=3`" in av.method(_vm("dropCache", "newer")).sentence
    assert "`drop_caches=1`" in av.method(_vm("dropCache", "released")).sentence
    g_new = _vm("gradual", "newer")
    c = av.method(g_new)
    assert g_new.meta["results"]["swappiness_refused"] is True and c.verdict == "swappiness_refused"
    assert "no swap" in c.sentence and g_new.meta["kernel_release"] in c.sentence
    assert av.method(_vm("gradual", "released")).verdict == "plain_as_wsl"


def test_method_with_swap_is_not_called_equivalent():
    rec = copy.deepcopy(_vm("gradual", "newer"))
    rec.meta["results"]["guest_swap_kib"] = 1024 * 1024
    c = av.method(rec)
    assert c.verdict == "swappiness_refused" and "NOT equivalent" in c.sentence
    rec.meta["results"]["method"] = "memory.limit_in_bytes squeeze (cgroup v1 stand-in)"
    assert av.method(rec).verdict == "stand_in"


def _host_kept(rec):
    """Edit: QEMU's resident memory held at its idle-mark value after the idle mark (the host got nothing)."""
    out = copy.deepcopy(rec)
    s, t0 = out.samples, av.idle_mark_s(out)
    held = float(s.loc[s["t_s"] <= t0, "host_vm_rss_kib"].dropna().iloc[-1])
    s.loc[s["t_s"] > t0, "host_vm_rss_kib"] = held
    return out


def test_a_run_whose_host_view_did_not_fall_is_not_said_to_have_given_back():
    c = av.vm_run(_host_kept(_vm("dropCache", "newer")))
    assert c.verdict == "host_kept" and c.value == 0 and "fell by less than" in c.sentence


def test_no_action_and_no_host_view():
    rec = copy.deepcopy(_vm("gradual", "newer"))
    rec.events = rec.events[~rec.events["kind"].isin(["reclaim", "drop_caches"])].reset_index(drop=True)
    assert av.vm_run(rec).verdict == "no_action"
    rec.samples = rec.samples.drop(columns=["host_vm_rss_kib"])
    c = av.vm_run(rec)
    assert c.verdict == "no_host_view" and c.value is None


def test_equal_time_and_the_takeaway_from_all_runs():
    runs = vm_reclaim.load()
    eq = av.host_at_equal_time(runs)
    assert eq.value == pytest.approx(min(av.watched_s(r) for r in runs.values()))
    assert eq.verdict in ("all_fell", "some_fell")
    vm_claims = [av.vm_run(r, label) for label, r in runs.items()]
    busy = [ab.busy_run(r, label) for label, r in busy_machine.load().items()]
    t = av.wslconfig_takeaway(vm_claims, busy)
    assert t.verdict == "idle_acts_busy_blocks"
    best = max(vm_claims, key=lambda c: c.value)
    assert f"`autoMemoryReclaim={best.evidence['label'].split(' · ')[0]}`" in t.sentence
    # a busy run whose gate opened: no advice about busy machines
    opened = [copy.copy(c) for c in busy]
    opened[0] = ab.claim(opened[0].key, "gate_open_no_action", {"gate_open_no_action": "x"}, label="x")
    assert av.wslconfig_takeaway(vm_claims, opened).verdict == "idle_acts"
    # no VM run whose host view fell: no advice at all
    kept = [av.vm_run(_host_kept(r), label) for label, r in runs.items()]
    assert av.wslconfig_takeaway(kept, busy).verdict == "idle_did_not_return"


# ------------------------------------------------------------------ the lab's `recordings` keys


def test_vm_auto_reclaim_keys_parse_and_unknown_selectors_are_refused():
    assert harness.parse_replay_key("vm:auto-reclaim:policy=gradual:variant=newer") == \
        ("vm", "auto-reclaim", {"policy": "gradual", "variant": "newer"})
    with pytest.raises(harness.ExperimentError, match="busy=0.03"):
        harness.parse_replay_key("vm:auto-reclaim:busy=0.03")     # a local parameter, not the VM run's


class _Ctx:
    def __init__(self, recordings):
        self.recordings = recordings


def test_a_replayed_vm_run_takes_its_own_slot(tmp_path):
    src = _vm("gradual", "newer")
    folder = tmp_path / "g"
    shutil.copytree(src.path, folder)
    table = params.check_recordings({"vm:auto-reclaim:policy=gradual": str(folder)})
    runs = vm_reclaim.load(_Ctx(table))
    assert runs["gradual · newer"].path == folder
    assert runs["gradual · newer"].why_shown.startswith("replaying a recording you chose")
    assert runs["dropCache · newer"].path != folder


def test_a_replayed_vm_run_must_match_the_whole_selector(tmp_path):
    src = _vm("gradual", "newer")
    folder = tmp_path / "g"
    shutil.copytree(src.path, folder)
    with pytest.raises(params.LabParameterError, match="policy=dropCache"):
        params.check_recordings({"vm:auto-reclaim:policy=dropCache": str(folder)})
    with pytest.raises(params.LabParameterError, match="time_scale"):
        params.check_recordings({"vm:auto-reclaim:policy=gradual:time_scale=0.25": str(folder)})
    # the same check when the table reaches the section without the lab's parameter check
    with pytest.raises(recording.RecordingError, match="policy=dropCache"):
        vm_reclaim.load(_Ctx({"vm:auto-reclaim:policy=dropCache": str(folder)}))


def test_a_local_run_is_refused_under_a_vm_key(tmp_path):
    local = datasets.find("auto-reclaim", {"policy": "gradual", "variant": "newer", "busy": 0.03})
    folder = tmp_path / "local"
    shutil.copytree(local.path, folder)
    with pytest.raises(params.LabParameterError, match="not in the kit's VM"):
        params.check_recordings({"vm:auto-reclaim": str(folder)})
