"""Where a lab's experiment runs (notebook.placement.decide: facts -> place + reason) and the lab's `guest` parameter."""
from __future__ import annotations

import pytest

from reclaimlab.notebook import context, lab, plan
from reclaimlab.notebook.placement import Facts, decide

SHARED = "RECLAIMLAB_SHARED=1 marks this machine as shared"
NO_QEMU = "qemu-system-x86_64 is not installed; apt-get install qemu-system-x86"


def facts(**kw):
    base = dict(mode="auto", guest="auto", local_blocker=None, local_host_view=True, vm_blocker=None, has_vm=True)
    return Facts(**{**base, **kw})


def test_auto_runs_here_where_this_machine_may_and_sees_its_host():
    p = decide(facts())
    assert (p.how, p.place) == ("live", "local") and "this machine can run it" == p.why


def test_auto_runs_in_the_vm_where_this_machine_may_not():
    p = decide(facts(local_blocker=SHARED))
    assert (p.how, p.place) == ("live", "vm")
    assert SHARED in p.why and "kit's own VM" in p.why


def test_auto_prefers_the_vm_to_a_local_run_without_a_host_side():
    p = decide(facts(local_host_view=False))
    assert (p.how, p.place) == ("live", "vm") and "no host side" in p.why


def test_auto_runs_here_without_a_host_side_when_the_vm_cannot():
    p = decide(facts(local_host_view=False, vm_blocker=NO_QEMU))
    assert (p.how, p.place) == ("live", "local") and NO_QEMU in p.why and "without the host's side" in p.why


def test_auto_shows_the_recording_where_neither_place_can_and_names_both_reasons():
    p = decide(facts(local_blocker=SHARED, vm_blocker=NO_QEMU))
    assert (p.how, p.place) == ("recorded", "local") and SHARED in p.why and NO_QEMU in p.why


def test_an_experiment_without_a_vm_version_is_recorded_saying_so():
    p = decide(facts(local_blocker=SHARED, has_vm=False))
    assert p.how == "recorded" and "no version for the kit's VM" in p.why


@pytest.mark.parametrize("guest", ["auto", "local", "vm"])
def test_recorded_mode_is_recorded_wherever(guest):
    p = decide(facts(mode="recorded", guest=guest, local_blocker=SHARED, vm_blocker=NO_QEMU))
    assert p.how == "recorded" and p.why == "you chose mode='recorded'"
    assert p.place == ("vm" if guest == "vm" else "local")  # guest='vm' shows a run of the kit's VM


def test_local_never_uses_the_vm():
    assert decide(facts(guest="local", local_host_view=False)).place == "local"
    p = decide(facts(guest="local", local_blocker=SHARED))
    assert (p.how, p.place) == ("recorded", "local") and "guest='local'" in p.why and SHARED in p.why
    p = decide(facts(guest="local", mode="live", local_blocker=SHARED))
    assert p.how == "refused" and SHARED in p.why


def test_vm_forces_the_kits_vm_and_refuses_with_the_reason():
    assert decide(facts(guest="vm")) .place == "vm"
    assert (decide(facts(guest="vm")).how, decide(facts(guest="vm")).place) == ("live", "vm")
    p = decide(facts(guest="vm", vm_blocker=NO_QEMU))
    assert (p.how, p.place) == ("recorded", "vm") and NO_QEMU in p.why
    p = decide(facts(guest="vm", mode="live", vm_blocker=NO_QEMU))
    assert p.how == "refused" and NO_QEMU in p.why
    p = decide(facts(guest="vm", has_vm=False))
    assert (p.how, p.place) == ("recorded", "local") and "no version for the kit's VM" in p.why


def test_live_mode_with_auto_refuses_only_where_neither_place_can():
    assert decide(facts(mode="live", local_blocker=SHARED)).how == "live"
    p = decide(facts(mode="live", local_blocker=SHARED, vm_blocker=NO_QEMU))
    assert p.how == "refused" and SHARED in p.why and NO_QEMU in p.why


@pytest.fixture
def facts_here(monkeypatch):
    """setup() on made-up facts: no probe, a shared machine, the kit's VM ready or not."""
    monkeypatch.setattr(context, "probe_guest", lambda: (None, "no probe in this test"))
    monkeypatch.setattr(plan, "experiment_plan", lambda name, mode, allow, info=None: ("recorded", SHARED))
    state = {"vm": None}
    monkeypatch.setattr(plan, "vm_blocker", lambda: state["vm"])
    return state


@pytest.mark.parametrize("bad", ["VM", "kvm", None, 1, ""])
def test_setup_rejects_a_bad_guest_naming_it_and_the_choices(facts_here, bad):
    with pytest.raises(lab.LabParameterError) as err:
        lab.setup(guest=bad, show=False)
    assert f"guest={bad!r}" in str(err.value) and "'auto'" in str(err.value) and "'vm'" in str(err.value)


def test_setup_plans_each_experiment_in_the_vm_where_this_machine_is_shared(facts_here):
    ctx = lab.setup(experiments=["calloc-reclaim", "page-cache", "auto-reclaim"], show=False)
    assert ctx.guest_choice == "auto"
    assert {n: (p.how, p.place) for n, p in ctx.placements.items()} == {
        "calloc-reclaim": ("live", "vm"), "page-cache": ("live", "vm"), "auto-reclaim": ("live", "vm")}
    assert ctx.plan["page-cache"] == ("live", ctx.placements["page-cache"].why)
    html = lab.status_html(ctx)
    assert "LIVE in the kit&#x27;s VM" in html or "LIVE in the kit's VM" in html
    facts_here["vm"] = NO_QEMU
    ctx = lab.setup(experiments=["calloc-reclaim"], show=False)
    assert ctx.placements["calloc-reclaim"].how == "recorded" and NO_QEMU in ctx.plan["calloc-reclaim"][1]


def test_lab_rows_say_which_labs_run_in_the_vm(facts_here):
    ctx = lab.setup(show=False)
    rows = dict((name, how) for name, how, _ in lab.lab_rows(ctx))
    assert rows["02 · page cache"] == "page-cache: LIVE in the kit's VM; app-cache: RECORDED"  # the SQLite app has no VM version
    assert rows["04 · WSL autoMemoryReclaim"] == "auto-reclaim: LIVE in the kit's VM"  # wsl/vm_autoreclaim.py


def test_a_lab_live_in_the_vm_counts_as_live_in_lab_00():
    from reclaimlab.notebook import exercises
    rows = [("02 · page cache", "page-cache: LIVE in the kit's VM", "x"), ("04 · WSL", "auto-reclaim: RECORDED", "y")]
    assert exercises.live_labs(rows) == [2]
