"""A lab's run in the kit's VM: the lab context sends it there with the lab's steps; bad steps refused before a boot."""
from __future__ import annotations

import pytest

from reclaimlab.notebook import context, lab, plan
from reclaimlab.notebook.placement import Placement
from reclaimlab.vm import experiments as vm_experiments


def test_drop_levels_parse_and_refuse_naming_the_valid_ones():
    assert vm_experiments.drop_levels("1,2,3") == [1, 2, 3] and vm_experiments.drop_levels(3) == [3]
    for bad in ("4", "", "1,x", "0"):
        with pytest.raises(vm_experiments.VmExperimentError, match="drop_levels.*1, 2 or 3"):
            vm_experiments.drop_levels(bad)


def test_a_bad_drop_level_is_refused_before_the_vm_boots(monkeypatch):
    monkeypatch.setattr(vm_experiments, "plan", lambda *a: pytest.fail("sized (and would boot) a VM"))
    with pytest.raises(vm_experiments.VmExperimentError, match="drop_levels='9'"):
        vm_experiments.run_vm_experiment("page-cache", drop_levels="9")


def test_the_lab_context_runs_a_vm_placed_experiment_in_the_vm_with_the_labs_steps(monkeypatch):
    monkeypatch.setattr(context, "probe_guest", lambda: (None, "no probe in this test"))
    monkeypatch.setattr(plan, "place", lambda name, mode, allow, guest, info: Placement("live", "vm", "because"))
    calls = []

    class Rec:
        is_recorded, why_shown = False, "the kit's VM runs here"

    from reclaimlab.experiments import harness
    monkeypatch.setattr(harness, "run", lambda name, **kw: calls.append((name, kw)) or Rec())
    ctx = lab.setup(experiments=["page-cache"], size="1.5GB", show=False)
    rec = ctx.run("page-cache", size="1.5GB", show_banner=False)
    name, kw = calls[0]
    assert name == "page-cache" and kw["guest"] == "vm" and kw["drop_levels"] == "1,2,3" and kw["size"] == "1.5GB"
    assert rec.why_shown == "because"  # the banner gives the lab's reason for the place


def test_reclaimlab_labs_passes_guest_only_to_labs_that_take_it():
    from reclaimlab.cli.labs import takes_guest
    from reclaimlab.paths import labs_dir
    takes = {p.name[:2]: takes_guest(p) for p in labs_dir().glob("[0-9][0-9]_*.ipynb")}
    assert takes == {"00": False, "01": True, "02": True, "03": True, "04": True, "05": False}
