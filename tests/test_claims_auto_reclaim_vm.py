"""The shipped auto-reclaim recordings made in the kit's VM (wsl/vm_autoreclaim.py): they load, say how they
ran (the CPU gate ON at WSL's threshold, the real clock or a stated compression, the root cgroup's real
memory.reclaim), and lab 04's claims read them as what they are (the host view is QEMU's resident memory)."""
from __future__ import annotations

import pytest

from reclaimlab.present.findings import auto_reclaim as ar
from reclaimlab.probe.physmap import FrameClass
from reclaimlab.recording import datasets, recording
from reclaimlab.wsl.autoreclaim_policy import NEWER_STEP_MIN_BYTES

RUNS = [("gradual", "newer"), ("dropCache", "newer"), ("dropCache", "released"), ("gradual", "released")]


def _vm(policy, variant):
    try:
        return datasets.find("auto-reclaim", {"policy": policy, "variant": variant}, guest_kind="kit-vm")
    except recording.RecordingError as exc:
        pytest.skip(f"no shipped kit-VM auto-reclaim recording {policy} · {variant}: {exc}")


@pytest.mark.parametrize("policy,variant", RUNS)
def test_vm_runs_ran_with_the_gate_on_and_say_their_clock(policy, variant):
    rec = _vm(policy, variant)
    m, res = rec.meta, rec.meta["results"]
    assert m["guest_kind"] == "kit-vm" and m["complete"] and m["hypervisor"].startswith("QEMU")
    assert res["idle_share"] == 0.005 and ar.idle_rule(rec).verdict == "wsl"
    assert res["time_scale"] == m["parameters"]["time_scale"]
    assert ("time-compressed" in res["policy"]) == (res["time_scale"] != 1.0)
    # the gate's own figures: every poll the policy counted idle had a busy share within WSL's 0.5 %
    shares = [b for b in res["poll_busy_shares"] if b is not None]
    assert len(res["poll_busy_shares"]) == res["gate_polls"] and res["gate_idle_polls"] >= 1
    assert min(shares) <= 0.005 and res["errors"] == []
    assert {"host_vm_rss_kib", "cached_kib"} <= set(rec.samples.columns)


@pytest.mark.parametrize("policy,variant", RUNS)
def test_the_maps_show_the_cache_going_and_the_host_letting_go(policy, variant):
    """The guest's map (kpageflags) and the host's (QEMU's pagemap) at the idle mark and after the tail."""
    rec = _vm(policy, variant)
    res = rec.meta["results"]
    for key in ("guest_map_file_kib", "guest_map_reported_kib", "host_map_resident_kib"):
        assert set(res[key]) == {"idle", "after"}, key
    # the totals are folded from the whole maps the recording keeps (physmap.json), not a reading of their own
    for m in rec.physmaps:
        assert res["guest_map_file_kib"][m.label] == m.snapshot.kib(m.snapshot.pages(FrameClass.FILE))
        assert res["guest_map_reported_kib"][m.label] == m.snapshot.kib(m.snapshot.pages(FrameClass.FREE_REPORTED))
        assert res["host_map_resident_kib"][m.label] == m.host.resident_kib
    assert res["guest_map_file_kib"]["idle"] - res["guest_map_file_kib"]["after"] >= 128 * 1024
    assert res["guest_map_reported_kib"]["after"] > res["guest_map_reported_kib"]["idle"]
    assert res["host_map_resident_kib"]["after"] < res["host_map_resident_kib"]["idle"]


@pytest.mark.parametrize("policy,variant", RUNS)
def test_each_vm_run_acted_and_the_cache_and_qemu_fell(policy, variant):
    rec = _vm(policy, variant)
    res = rec.meta["results"]
    c = ar.actions(rec, f"{policy} · {variant}")
    assert c.verdict == ("dropped" if policy == "dropCache" else
                         "stepped_within_clamp" if variant == "newer" else "stepped")
    assert "charged to the experiment's cgroup" not in c.sentence      # the VM reclaims the whole guest
    fell_kib = res["cache_idle_kib"] - res["cache_after_kib"]
    assert fell_kib >= 128 * 1024
    assert res["host_rss_idle_kib"] - res["host_rss_after_kib"] >= 128 * 1024
    h = ar.host_after_action({"x": rec})[0]
    assert h.verdict not in ("not_measurable", "no_action") and h.value > 0   # QEMU RSS fell after the action
    # what the findings read across the actions is the cache's fall, not a slice of it (a VM drop takes > 1 s)
    freed_kib = ar.fall_across_actions(rec, ar.CACHE_COLUMNS, ar.action_times(rec))
    assert freed_kib >= 0.8 * fell_kib, (freed_kib, fell_kib)


def test_released_gradual_stops_at_wsls_memory_low():
    """Released gradual writes 3 % of used memory per idle poll and stops once used x 0.97 < 1 GiB (MemoryLow)."""
    from reclaimlab.wsl.autoreclaim_policy import RELEASED_MEMORY_LOW_BYTES
    rec = _vm("gradual", "released")
    s, reqs = rec.samples, [int(r.split()[0]) for r in rec.meta["results"]["reclaim_requests"]]
    t_last = rec.event_times("reclaim")[-1]
    used_kib = (s["mem_total_kib"] - s["mem_free_kib"])[s.t_s <= t_last].iloc[-1]
    assert len(reqs) >= 2 and all(b < 0.05 * s["mem_total_kib"].iloc[0] * 1024 for b in reqs)
    assert used_kib * 1024 * 0.97 < RELEASED_MEMORY_LOW_BYTES * 1.05       # it stopped near MemoryLow


def test_gradual_wrote_the_root_cgroups_memory_reclaim_and_says_how():
    rec = _vm("gradual", "newer")
    res = rec.meta["results"]
    assert res["method"].startswith("memory.reclaim (cgroup2 root") and res["cgroup_version"] == 2
    c = ar.method(rec)
    assert c.verdict == "memory_reclaim" and "root cgroup's, in the kit's VM" in c.sentence
    # WSL's newer step on this VM: RAM/32 is under 256 MiB, so every request but the last is 256 MiB
    reqs = [int(r.split()[0]) for r in res["reclaim_requests"]]
    assert reqs and all(r == NEWER_STEP_MIN_BYTES for r in reqs[:-1]) and reqs[-1] <= NEWER_STEP_MIN_BYTES
    if res["swappiness_refused"]:
        assert "plain amount" in res["method"] and "swappiness=0" in c.sentence and res["guest_swap_kib"] == 0


def test_dropcache_vm_run_is_not_a_reclaim():
    rec = _vm("dropCache", "newer")
    assert ar.method(rec).verdict == "no_request" and rec.meta["results"]["method"] is None


def test_newer_acted_after_its_two_minute_window_at_wsls_clock():
    rec = _vm("dropCache", "newer")
    if rec.meta["results"]["time_scale"] != 1.0:
        pytest.skip("this recording is time-compressed")
    wait = ar.first_action_s(rec) - rec.event_times("idle")[0]
    assert 120 <= wait <= 120 + 3 * 10 + 5      # 12 intervals of 10 s after the baseline poll, plus jitter
