"""Lab 04's "why vmmem stays big on a busy machine": three auto-reclaim runs beside a busy loop.

    runs = busy_machine.show(ctx)      # charts at equal time after the idle mark, the claims, the takeaway

The runs are the shipped recordings (newer dropCache, newer gradual, and the pressure variant, proposed
and not merged in WSL, all with the same busy loop and the CPU gate on), or the ones the lab's
`recordings` parameter names, e.g. {"auto-reclaim:busy=0.03:variant=pressure": "~/runs/p"}. They are
never run live from the lab: three watches take minutes; `reclaimlab record auto-reclaim --param busy=0.03
...` makes new ones.
"""
from __future__ import annotations

from typing import Any

from ..recording.recording import Recording

RUNS = (("dropCache", "newer"), ("gradual", "newer"), ("gradual", "pressure"))
BUSY_ONE_CPU_SHARE = 0.03   # the shipped runs' busy loop: 3 % of one CPU, an editor's language server


def load(ctx: Any = None, busy: float = BUSY_ONE_CPU_SHARE) -> dict[str, Recording]:
    """{label: Recording} of the three runs: replayed where `ctx.recordings` names one, else shipped."""
    from ..experiments import harness

    replay = getattr(ctx, "recordings", None) or {}
    defaults = harness.get("auto-reclaim").defaults
    runs = {}
    for policy, variant in RUNS:
        params = dict(policy=policy, variant=variant, busy=busy)
        folder = harness.replay_for("auto-reclaim", "local", {**defaults, **params}, replay)
        runs[f"{policy} · {variant}"] = harness.run("auto-reclaim", mode="recorded", recording=folder,
                                                    quiet=True, **params)
    return runs


def show(ctx: Any = None, busy: float = BUSY_ONE_CPU_SHARE) -> dict[str, Recording]:
    """Show the three runs side by side at equal time, their claims and the `.wslconfig` takeaway."""
    from IPython.display import display

    from ..present import charts, claims
    from ..present.findings import auto_reclaim_busy as f

    runs = load(ctx, busy)
    marks = {label: f.idle_mark_s(rec) for label, rec in runs.items()}
    window_s = f.common_watch_s(runs)
    for label, rec in runs.items():
        print(f"{label}: {rec.describe_source()}")
    display(charts.compare_from_mark(runs, "workload_cgroup_bytes", marks=marks, window_s=window_s,
                                     title="The experiment's own page cache, a busy loop beside it"))
    try:
        display(charts.compare_from_mark(runs, "host_reported_kib", marks=marks, window_s=window_s,
                                         since_mark=True, title="Reported to the host since the idle mark "
                                                                "(the whole guest: others' frees count too)"))
    except ValueError:   # no run has a host view (e.g. WSL, a container): the cache chart is all there is
        print("No host view in these runs: only the guest's side is shown.")
    busy_claims = [f.busy_run(rec, label) for label, rec in runs.items()]
    claims.show(busy_claims + [f.cache_at_equal_time(runs), f.wslconfig_takeaway(busy_claims)])
    return runs
