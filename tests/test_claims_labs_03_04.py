"""Labs 03 and 04 executed with papermill (recorded mode) carry their claims machine-readably, with
the verdicts the findings give on the shipped recordings: lab 04's four auto-reclaim runs and the
model's decisions, the order-5-against-9 section of lab 03."""
from __future__ import annotations

import pytest

from reclaimlab.present import claims
from reclaimlab.present.findings import auto_reclaim as ar
from reclaimlab.present.findings import auto_reclaim_busy as ab
from reclaimlab.present.findings import auto_reclaim_vm as av
from reclaimlab.present.findings import reporting_order as ro
from reclaimlab.recording import datasets


def _executed(executed_lab, stem):
    # the copy the labs check executed in this session (tests/conftest.py), not a run of its own
    return claims.by_key(claims.from_notebook(executed_lab(stem, "recorded")))


@pytest.mark.slow
def test_lab04_recorded_claims(executed_lab):
    found = _executed(executed_lab, "04")
    runs = {f"{p} · {v}": datasets.find("auto-reclaim", {"policy": p, "variant": v})
            for v in ("released", "newer") for p in ("gradual", "dropCache")}
    expected = {c.key: c.verdict for c in [ar.idle_rules(runs), *(ar.method(r, n) for n, r in runs.items()),
                                           *(ar.actions(r, n) for n, r in runs.items()),
                                           *ar.host_after_action(runs)]}
    assert {k: found[k]["verdict"] for k in expected} == expected
    assert found["auto_reclaim.actions.dropCache · newer"]["evidence"]["level"] == "3"
    assert found["auto_reclaim.actions.gradual · newer"]["verdict"] == "stepped_within_clamp"
    assert found["auto_reclaim.idle_rule"]["verdict"] == "gate_off"
    assert found["auto_reclaim.model_timing"]["verdict"] == "released_gradual_first"
    assert found["auto_reclaim.curves"]["verdict"] == ar.curves(runs["gradual · newer"], runs["dropCache · newer"]).verdict
    assert found["wslconfig.applied_as_written"]["evidence"]["applied"] == ["good", "utf-16 with a BOM"]
    model = {k: c for k, c in found.items() if k.startswith("auto_reclaim.model.")}
    assert len(model) == 6 and model["auto_reclaim.model.newer · disabled"]["verdict"] == "never"
    # the model's numbers come from claims now, not prose: 16 GiB / 32 = 512 MiB steps
    assert "512 MiB" in model["auto_reclaim.model.newer · gradual"]["sentence"]
    # why vmmem stays big on a busy machine: the three busy-loop runs, their verdicts as the findings give them
    busy = {f"{p} · {v}": datasets.find("auto-reclaim", {"policy": p, "variant": v, "busy": 0.03})
            for p, v in (("dropCache", "newer"), ("gradual", "newer"), ("gradual", "pressure"))}
    busy_claims = [ab.busy_run(r, n) for n, r in busy.items()]
    expected = {c.key: c.verdict for c in [*busy_claims, ab.cache_at_equal_time(busy), ab.wslconfig_takeaway(busy_claims)]}
    assert {k: found[k]["verdict"] for k in expected} == expected
    assert found["auto_reclaim.busy.gradual · pressure"]["verdict"] == "pressure_acted"
    # the policies as WSL runs them, in the kit's VM: the four shipped runs, and the takeaway from all runs
    vm = {f"{p} · {v}": datasets.find("auto-reclaim", {"policy": p, "variant": v}, guest_kind="kit-vm")
          for p, v in (("dropCache", "newer"), ("gradual", "newer"), ("dropCache", "released"), ("gradual", "released"))}
    vm_claims = [av.vm_run(r, n) for n, r in vm.items()]
    expected = {c.key: c.verdict for c in [*vm_claims, *(av.method(r, n) for n, r in vm.items()),
                                           av.host_at_equal_time(vm), av.wslconfig_takeaway(vm_claims, busy_claims)]}
    assert {k: found[k]["verdict"] for k in expected} == expected
    assert found["auto_reclaim.wslconfig_all"]["verdict"] == "idle_acts_busy_blocks"


@pytest.mark.slow
def test_lab03_order_section_claims(executed_lab):
    found = _executed(executed_lab, "03")
    # the one run that watched one fragmentation at order 9, then at order 5 written at runtime
    rec = datasets.find("compaction", {"page_reporting_order": 9, "then_order": 5}, guest_kind="kit-vm")
    expected = {c.key: c.verdict for c in [*ro.while_fragmented(rec), ro.after_compaction(rec),
                                           ro.after_release(rec), ro.compare(rec)]}
    assert set(expected) == {"reporting_order.while_fragmented.9", "reporting_order.while_fragmented.5",
                             "reporting_order.after_compaction.5", "reporting_order.after_release.5",
                             "reporting_order.compare"}
    assert {k: found[k]["verdict"] for k in expected} == expected
    assert found["reporting_order.compare"]["verdict"] == "lower_returns_more"
