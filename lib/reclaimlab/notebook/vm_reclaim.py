"""Lab 04's "the policies as WSL runs them, in the kit's VM": four auto-reclaim runs with the CPU gate on.

    runs = vm_reclaim.show(ctx)     # charts at equal time after the idle mark, the claims, the takeaway

The runs are the shipped recordings made in the kit's VM (wsl/vm_autoreclaim.py: released and newer ×
gradual and dropCache, the root cgroup's real `memory.reclaim`, QEMU's resident memory as the host's view),
or the ones the lab's `recordings` parameter gives under a "vm:auto-reclaim" key, e.g.
{"vm:auto-reclaim:policy=gradual:variant=newer": "~/runs/g"}. A replayed recording must match its key's
whole selector (harness.replay) and takes the place of the run with its own policy and variant. They are
never run live from this section: each watch at WSL's own clock takes minutes (section 3's runs, where the
lab's `guest` puts them in the kit's VM, are time-compressed as the local ones are).
"""
from __future__ import annotations

from typing import Any

from ..recording.recording import Recording, RecordingError

RUNS = (("dropCache", "newer"), ("gradual", "newer"), ("dropCache", "released"), ("gradual", "released"))
KEY_PREFIX = "vm:auto-reclaim"


def _replayed(ctx: Any) -> dict[tuple[str, str], Recording]:
    """{(policy, variant): Recording} for every "vm:auto-reclaim" key of the lab's `recordings`."""
    from ..experiments import harness

    table = getattr(ctx, "recordings", None) or {}
    exp = harness.get("auto-reclaim")
    out: dict[tuple[str, str], tuple[int, Recording]] = {}
    for key, folder in table.items():
        if not (str(key) == KEY_PREFIX or str(key).startswith(KEY_PREFIX + ":")):
            continue
        rec = harness.replay(exp, folder, quiet=True, key=str(key))   # the whole selector must match
        p = rec.meta.get("parameters") or {}
        slot = (p.get("policy"), p.get("variant"))
        if slot not in RUNS:
            raise RecordingError(f"{folder}: is a run of {slot[0]} · {slot[1]}, which this section does not show; "
                                 f"give a run of one of: {', '.join(f'{a} · {b}' for a, b in RUNS)}")
        specificity = str(key).count(":")
        if slot not in out or specificity > out[slot][0]:
            out[slot] = (specificity, rec)
    return {slot: rec for slot, (_, rec) in out.items()}


def load(ctx: Any = None) -> dict[str, Recording]:
    """{label: Recording} of the four runs: replayed where the lab's `recordings` give one, else shipped."""
    from ..recording import datasets

    replayed = _replayed(ctx)
    runs = {}
    for policy, variant in RUNS:
        rec = replayed.get((policy, variant))
        if rec is None:
            rec = datasets.find("auto-reclaim", {"policy": policy, "variant": variant},
                                guest_kind=datasets.VM_GUEST_KIND,
                                why_shown="a recording made in the kit's VM (the lab never boots it for this)")
        runs[f"{policy} · {variant}"] = rec
    return runs


def show(ctx: Any = None, busy_runs: dict[str, Recording] | None = None) -> dict[str, Recording]:
    """Show the four VM runs side by side at equal time after the idle mark, their claims, and the `.wslconfig`
    takeaway from these and the busy-machine runs (`busy_runs`, else busy_machine.load(ctx))."""
    from IPython.display import display

    from ..present import charts, claims
    from ..present.findings import auto_reclaim_busy as busy_findings
    from ..present.findings import auto_reclaim_vm as f
    from . import busy_machine

    runs = load(ctx)
    marks = {label: f.idle_mark_s(rec) for label, rec in runs.items()}
    # every run to its end, all counted from their idle marks: the released runs (time-compressed) act later
    # than the shortest run ends; the equal-time claim reads them all at the shortest run's end
    window_s = max(f.watched_s(rec) for rec in runs.values())
    for label, rec in runs.items():
        print(f"{label}: {rec.describe_source()}")
    try:
        display(charts.compare_from_mark(runs, f.HOST_COLUMN, marks=marks, window_s=window_s,
                                         title="The host's view: QEMU's resident memory after the idle mark (dashed: each drop or reclaim)"))
    except ValueError:
        print("No host view in these runs: only the guest's side is shown.")
    display(charts.compare_from_mark(runs, "cached_kib", marks=marks, window_s=window_s,
                                     title="The guest's page cache (Cached) after the idle mark"))
    vm_claims = [f.vm_run(rec, label) for label, rec in runs.items()]
    claims.show(vm_claims + [f.host_at_equal_time(runs)],
                intro="**What each policy did in the kit's VM**, from its idle mark:")
    claims.show([f.method(rec, label) for label, rec in runs.items()], intro="**How each one reclaimed.**")
    busy_runs = busy_runs if busy_runs is not None else busy_machine.load(ctx)
    busy_claims = [busy_findings.busy_run(rec, label) for label, rec in busy_runs.items()]
    claims.show([f.wslconfig_takeaway(vm_claims, busy_claims)])
    return runs
