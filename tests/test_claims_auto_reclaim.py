"""Claims of lab 04 (auto-reclaim) and of the order-5-against-9 comparison, on shipped recordings
and on documented edits of them; THRESHOLDS edges."""
import copy

import pytest

from reclaimlab.recording import datasets
from reclaimlab.present.claims import THRESHOLDS
from reclaimlab.present.findings import auto_reclaim as ar
from reclaimlab.present.findings import reporting_order as ro


def _auto(policy, variant):
    try:
        return datasets.find("auto-reclaim", {"policy": policy, "variant": variant})
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"no shipped auto-reclaim recording {policy} · {variant}: {exc}")


def test_dropcache_run_is_not_labelled_a_squeeze():
    rec = _auto("dropCache", "released")
    c = ar.method(rec)
    assert c.verdict == "no_request" and "squeeze" not in c.sentence


def test_gradual_on_cgroup_v1_names_the_stand_in():
    rec = _auto("gradual", "released")
    c = ar.method(rec)
    if rec.meta["results"].get("cgroup_version") == 1:
        assert c.verdict == "v1_squeeze" and "stand-in" in c.sentence and "own cgroup" in c.sentence


def test_lab04_states_what_the_v1_stand_in_cannot_reach_once():
    """Teaching review: lab 04 said four times that the cgroup-v1 stand-in reaches only the experiment's own
    cgroup; the section that introduces it says so once, and the per-run claims only name it."""
    import json
    from reclaimlab.paths import labs_dir
    nb = json.loads((labs_dir() / "04_wsl_autoreclaim.ipynb").read_text())
    text = "\n".join("".join(c["source"]) for c in nb["cells"])
    assert text.count("cannot reach") == 1 and "labelled stand-in" not in text
    rec = _auto("gradual", "released")
    assert "ROOT" not in ar.method(rec).sentence


def test_runs_are_compared_at_equal_time_after_their_action():
    g, d = _auto("gradual", "released"), _auto("dropCache", "released")
    claims = ar.host_after_action({"gradual": g, "dropCache": d})
    dts = {c.evidence["dt"] for c in claims if c.verdict != "no_action"}
    assert len(dts) == 1 and dts.pop() <= THRESHOLDS["auto_reclaim_compare_s"]
    for c in claims:
        if c.value is not None and c.evidence["freed_kib"] >= THRESHOLDS["auto_reclaim_min_freed_kib"]:
            want = ("more_than_freed" if c.evidence["share"] >= THRESHOLDS["auto_reclaim_more_than_freed_share"]
                    else __import__("reclaimlab.present.claims", fromlist=["x"]).share_verdict(c.evidence["share"]))
            assert c.verdict == want


def test_a_run_cut_short_shortens_the_common_window():
    d = _auto("dropCache", "released")
    cut = copy.deepcopy(d)
    t = ar.first_action_s(cut)
    cut.samples = cut.samples[cut.samples["t_s"] <= t + 1.0]
    assert ar.common_window_s({"a": d, "b": cut}) <= 1.0 + 0.2


def test_no_action_and_no_host_view():
    d = _auto("dropCache", "released")
    none = copy.deepcopy(d)
    none.events = none.events[~none.events.kind.isin(["drop_caches", "reclaim"])]
    assert ar.host_after_action({"x": none}, window_s=5)[0].verdict == "no_action"
    blind = copy.deepcopy(d)
    blind.samples = blind.samples.drop(columns=["host_reported_kib"], errors="ignore")
    assert ar.host_after_action({"x": blind}, window_s=5)[0].verdict == "not_measurable"


def test_idle_rule_says_the_gate_was_off():
    d = _auto("dropCache", "released")
    rec = copy.deepcopy(d)
    rec.meta["results"] = {**rec.meta.get("results", {}), "idle_share": 1.0, "guest_busy_share_baseline": 0.99,
                           "time_scale": 0.05}
    c = ar.idle_rule(rec)
    assert c.verdict == "gate_off" and "99%" in c.sentence and "×0.05" in c.sentence
    rec.meta["results"]["idle_share"] = 0.005
    assert ar.idle_rule(rec).verdict == "wsl"


def _order_recs():
    out = {}
    for e in datasets.read_index(datasets.recordings_dir()):
        if e["experiment"] == "compaction" and e["parameters"].get("page_reporting_order") in (5, 9) \
                and e["parameters"].get("then_order") is None:   # the runs with one order each
            out[e["parameters"]["page_reporting_order"]] = datasets.recording.load(
                datasets.recordings_dir() / e["path"])
    if set(out) != {5, 9}:
        pytest.skip("no shipped order-5 and order-9 VM compaction recordings")
    return out


def test_order_recordings_ran_at_their_order_and_order5_returns_more():
    recs = _order_recs()
    for order, rec in recs.items():
        assert ro.order_of(rec) == order            # the guest's sysfs value, not just the command line
    c = ro.compare({"5": recs[5], "9": recs[9]})
    assert c.verdict in ("lower_returns_more", "about_the_same")
    assert (c.verdict == "lower_returns_more") == (c.value >= THRESHOLDS["order_returned_min_kib"])


def test_order_threshold_edge():
    recs = _order_recs()
    least = THRESHOLDS["order_returned_min_kib"]
    for order, above, below in ((5, "returned", "not_yet"), (9, "returned_elsewhere", "nothing")):
        rec = copy.deepcopy(recs[order])
        rec.meta["results"]["fragmented_returned_kib"] = least
        assert ro.returned_while_fragmented(rec).verdict == above
        rec.meta["results"]["fragmented_returned_kib"] = least - 1
        assert ro.returned_while_fragmented(rec).verdict == below


def test_holes_of_63_pages_hold_an_order5_block_but_no_order6_one():
    assert ro.holes_hold_a_block(64, 5) and not ro.holes_hold_a_block(64, 6) and not ro.holes_hold_a_block(64, 9)
    assert ro.holes_hold_a_block(3, 0) and not ro.holes_hold_a_block(3, 1)


def test_what_the_shipped_order_runs_show():
    recs = _order_recs()
    c5, c9 = ro.returned_while_fragmented(recs[5]), ro.returned_while_fragmented(recs[9])
    assert c5.verdict == "returned" and c9.verdict == "nothing", (c5.sentence, c9.sentence)
    assert "252 KiB" in c5.sentence and "-0" not in c9.sentence


def test_after_compaction_credits_compaction_only_with_new_blocks():
    recs = _order_recs()
    for order, rec in recs.items():
        c = ro.after_compaction(rec)
        gained = c.evidence["gained_kib"]
        least = THRESHOLDS["order_returned_min_kib"]
        assert (c.verdict == "formed") == (gained >= least)
        if c.verdict != "formed":
            assert (c.verdict == "still_reporting") == (c.value >= least)
    # no snapshots: not measurable
    bare = copy.deepcopy(recs[9])
    bare.buddyinfo = bare.buddyinfo[bare.buddyinfo["label"] == "before"]
    assert ro.after_compaction(bare).verdict == "not_measurable"


def test_different_fragmentation_is_not_compared():
    recs = _order_recs()
    other = copy.deepcopy(recs[9])
    other.meta["parameters"]["keep_every"] = 3
    assert ro.compare({"5": recs[5], "9": other}).verdict == "not_comparable"


def _model(mode, variant):
    from reclaimlab.units import GIB
    from reclaimlab.wsl import autoreclaim_policy as a
    policy = a.Policy(mode, variant)
    rows = a.simulate(policy, duration_s=30 * 60, busy_until_s=5 * 60, mem_total_bytes=16 * GIB,
                      anon_bytes=GIB, cache_bytes=3 * GIB)
    return ar.model_setting(f"{variant} · {mode}", rows, busy_until_s=5 * 60, poll_s=policy.poll_interval_s,
                            runs_thread=policy.runs_thread)


def test_model_claims_follow_the_engine():
    # released: gradual after 6 polls of 30 s (3 min), dropCache after 20 (10 min); newer: 12 polls of 10 s (2 min)
    g, d = _model("gradual", "released"), _model("dropCache", "released")
    assert g.verdict == "steps" and g.evidence["wait_min"] == pytest.approx(3.0)
    assert d.verdict == "one_drop" and d.evidence["wait_min"] == pytest.approx(10.0)
    ng, nd = _model("gradual", "newer"), _model("dropCache", "newer")
    assert nd.verdict == "one_drop" and nd.evidence["wait_min"] == pytest.approx(2.0)
    # 16 GiB / 32 = 512 MiB steps down to the 128 MiB floor: 3 GiB takes six requests, the last one smaller
    assert ng.verdict == "steps" and ng.evidence["n"] == 6 and max(ng.evidence["steps_kib"]) == 512 * 1024
    assert "512 MiB" in ng.sentence and "0.12 GiB" in ng.sentence
    off = _model("disabled", "newer")
    assert off.verdict == "never" and "no thread ran" in off.sentence
    assert "compacted" in _model("disabled", "released").sentence


def test_newer_dropcache_writes_3_then_compacts():
    rec = _auto("dropCache", "newer")
    ev = rec.events
    drops = ev[ev["kind"] == "drop_caches"]
    assert len(drops) >= 1 and str(drops["detail"].iloc[0]).strip() == "3"   # util.cpp since #41171
    t = float(drops["t_s"].iloc[0])
    assert (ev[(ev["kind"] == "compact_memory") & (ev["t_s"] >= t)]).shape[0] >= 1
    c = ar.actions(rec)
    assert c.verdict == "dropped" and "`drop_caches=3`" in c.sentence and c.evidence["compact_after_s"] is not None


def test_newer_gradual_steps_stay_within_the_clamp():
    from reclaimlab.wsl.autoreclaim_policy import NEWER_STEP_MAX_BYTES, NEWER_STEP_MIN_BYTES
    rec = _auto("gradual", "newer")
    c = ar.actions(rec)
    assert c.verdict == "stepped_within_clamp", c.sentence
    step = c.evidence["step_bytes"]
    assert NEWER_STEP_MIN_BYTES <= step <= NEWER_STEP_MAX_BYTES
    assert all(0 < b <= step for b in c.evidence["requests_bytes"])
    # an edited request above the step is caught
    bad = copy.deepcopy(rec)
    i = bad.events.index[bad.events["kind"] == "reclaim"][0]
    bad.events.loc[i, "detail"] = f"{step + 4096} bytes swappiness=0"
    assert ar.actions(bad).verdict == "stepped_outside_clamp"


@pytest.mark.parametrize("policy", ["gradual", "dropCache"])
@pytest.mark.parametrize("variant", ["released", "newer"])
def test_every_run_watches_reporting_finish_after_its_last_action(policy, variant):
    rec = _auto(policy, variant)
    acts = [t for k in ("drop_caches", "reclaim", "compact_memory") for t in rec.event_times(k)]
    tail = float(rec.meta["parameters"]["tail_s"])
    assert float(rec.samples["t_s"].iloc[-1]) - max(acts) >= tail - 0.5
    assert rec.meta["parameters"]["idle_share"] == 1.0          # the CPU gate off on this shared guest
    assert ar.idle_rule(rec).verdict == "gate_off"


def test_more_reaching_the_host_than_was_freed_is_not_called_nearly_all():
    d = _auto("dropCache", "newer")
    t = ar.first_action_s(d)
    edge = THRESHOLDS["auto_reclaim_more_than_freed_share"]
    for share, verdict in ((edge + 0.001, "more_than_freed"), (edge - 0.01, "nearly_all")):
        rec = copy.deepcopy(d)
        freed = ar.fall_across_actions(rec, ar.CACHE_COLUMNS, ar.action_times(rec, t, t + 8))
        s = rec.samples
        # the host's view rises by exactly share x freed within the window, and stays flat outside it
        base = float(s.loc[s["t_s"] <= t - 0.5, "host_reported_kib"].iloc[-1])
        s["host_reported_kib"] = base + (s["t_s"] > t - 0.5) * share * freed
        c = ar.host_after_action({"x": rec}, window_s=8)[0]
        assert c.verdict == verdict and c.evidence["share"] == pytest.approx(share), c.sentence


def test_idle_rules_name_each_variants_compression_and_the_busy_range():
    runs = {f"{p} · {v}": _auto(p, v) for v in ("released", "newer") for p in ("gradual", "dropCache")}
    c = ar.idle_rules(runs)
    busy = [r.meta["results"]["guest_busy_share_baseline"] for r in runs.values()]
    assert c.verdict == "gate_off" and "×0.05 (released)" in c.sentence and "×0.1 (newer)" in c.sentence
    assert f"{min(busy):.0%}" in c.sentence and f"{max(busy):.0%}" in c.sentence
    mixed = dict(runs)
    other = copy.deepcopy(runs["gradual · newer"])
    other.meta["results"]["idle_share"] = 0.005
    mixed["gradual · newer"] = other
    assert ar.idle_rules(mixed).verdict == "mixed"


def test_after_release_judges_the_merge_then_the_host():
    recs = _order_recs()
    rec = copy.deepcopy(recs[9])
    c = ro.after_release(rec)
    least = THRESHOLDS["order_returned_min_kib"]
    # the shipped order-9 run: the release joined no 2 MiB block (buddyinfo), and the host got nothing
    assert c.verdict == "not_merged" and c.evidence["formed_kib"] < least and c.value < least
    # the same run, watched longer: the host's view falling with no block formed and nothing falling before
    s = rec.samples
    t = rec.event_times("unfragment")[0]
    last = s.iloc[[-1]].copy()
    last["t_s"] = max(float(s["t_s"].iloc[-1]), t + THRESHOLDS["order_release_watch_s"]) + 1.0
    rec.samples = __import__("pandas").concat([s, last], ignore_index=True)
    assert ro.after_release(rec).verdict == "not_merged"
    rec.samples.loc[rec.samples.index[-1], "host_vm_rss_kib"] -= 2 * least
    assert ro.after_release(rec).verdict == "returned_elsewhere"
    rec.samples.loc[rec.samples.index[-1], "reportable_free_kib"] += 2 * least   # and the holes merged
    assert ro.after_release(rec).verdict == "returned"
    bare = copy.deepcopy(recs[9])
    bare.events = bare.events[bare.events["kind"] != "unfragment"]
    assert ro.after_release(bare).verdict == "not_measurable"


def test_a_release_watched_for_only_4_s_says_the_watch_was_too_short():
    rec = copy.deepcopy(_order_recs()[9])
    t = rec.event_times("unfragment")[0]
    s = rec.samples[rec.samples["t_s"] <= t + 4.0].copy()
    s.loc[s["t_s"] >= t, "reportable_free_kib"] += 64 * 1024   # the holes merged; nothing reported yet
    rec.samples = s
    c = ro.after_release(rec)
    assert c.verdict == "watch_too_short" and "tail_s" in c.sentence and "-0" not in c.sentence


def test_model_timing_and_curves_judge_lab04s_predictions():
    model = {f"{v} · {m}": _model(m, v) for v in ("released", "newer") for m in ("disabled", "dropCache", "gradual")}
    c = ar.model_timing(model)
    assert c.verdict == "released_gradual_first" and c.evidence["rg"] < c.evidence["rd"]
    swapped = dict(model)
    swapped["released · gradual"], swapped["released · dropCache"] = model["released · dropCache"], model["released · gradual"]
    assert ar.model_timing(swapped).verdict in ("dropcache_first", "other")
    g, d = _auto("gradual", "newer"), _auto("dropCache", "newer")
    shape = ar.curves(g, d)
    assert shape.verdict == ("cliff_and_staircase" if len(g.event_times("reclaim")) >= 2 else "two_cliffs")
    none = copy.deepcopy(d)
    none.events = none.events[none.events["kind"] != "drop_caches"]
    assert ar.curves(g, none).verdict == "not_shown"


def test_which_wslconfig_files_are_applied_as_written():
    from reclaimlab.present.findings import wslconfig_files
    from reclaimlab.wsl import wslconfig
    found = {"good": wslconfig.check("[wsl2]\nmemory=8GB\n"),
             "bom": wslconfig.check(b"\xff\xfe" + "[wsl2]\r\nmemory=8GB\r\n".encode("utf-16-le")),
             "dup": wslconfig.check("[wsl2]\nswap=4GB\nswap=0\n"),
             "bad": wslconfig.check("[wsl2]\nmemory=8gb\n")}
    c = wslconfig_files.applied_as_written(found)
    assert c.verdict == "some" and c.evidence["applied"] == ["good", "bom"] and c.value == 2
    assert wslconfig_files.applied_as_written({"bad": found["bad"]}).verdict == "none"


def test_runs_compared_over_too_short_a_window_are_cut_short():
    d = _auto("dropCache", "newer")
    edge = THRESHOLDS["auto_reclaim_min_window_s"]
    assert ar.host_after_action({"x": d}, window_s=edge - 0.1)[0].verdict == "cut_short"
    assert ar.host_after_action({"x": d}, window_s=edge)[0].verdict != "cut_short"
    cut = copy.deepcopy(d)     # the old released dropCache recording ended 2.3 s after its drop
    t = ar.first_action_s(cut)
    cut.samples = cut.samples[cut.samples["t_s"] <= t + 2.3]
    claims = ar.host_after_action({"full": _auto("gradual", "newer"), "cut": cut})
    assert {c.verdict for c in claims} == {"cut_short"} and "not a final figure" in claims[1].sentence
