"""What each experiment will do on this machine in a lab's mode: LIVE, RECORDED, REPLAYED or REFUSED, and why."""
from __future__ import annotations

from typing import Any, Mapping

from .params import experiment_of
from .placement import Facts, Placement, decide

# How a lab is named in the plan's table (others: "NN · the rest of its file name").
LAB_TITLES = {"04_wsl_autoreclaim": "04 · WSL autoMemoryReclaim", "05_be_the_host": "05 · be the host"}


def lab_title(stem: str) -> str:
    return LAB_TITLES.get(stem) or f"{stem[:2]} · {stem[3:].replace('_', ' ')}"


class _LabExperiments(Mapping):
    """{lab title: the experiments it runs, and "vm" where it runs them in the kit's VM}, from each
    experiment's declared `labs` (catalog), read at each access."""

    def _table(self) -> dict[str, tuple[str, ...]]:
        from .. import catalog
        from ..catalog.kit import KIT_VM, KIT_VM_LABS
        stems = sorted({stem for exp in catalog.REGISTRY.values() for stem in exp.labs} | set(KIT_VM_LABS))
        return {lab_title(stem): tuple(name for name, exp in catalog.REGISTRY.items() if stem in exp.labs)
                + ((KIT_VM,) if stem in KIT_VM_LABS else ()) for stem in stems}

    def __getitem__(self, title: str) -> tuple[str, ...]:
        return self._table()[title]

    def __iter__(self):
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


LAB_EXPERIMENTS: Mapping[str, tuple[str, ...]] = _LabExperiments()

LABELS = {"live": "LIVE", "recorded": "RECORDED", "refused": "REFUSED", "replayed": "REPLAYED"}


def replay_plan(name: str, recordings: dict[str, str]) -> tuple[str, str] | None:
    """("replayed", why) where the lab's `recordings` parameter names a recording of `name`, else None."""
    replayed = [f"{k} → {v}" for k, v in recordings.items() if experiment_of(k) == name]
    return ("replayed", "you chose a recording to replay: " + "; ".join(replayed)) if replayed else None


def experiment_plan(name: str, mode: str, allow: bool | None, guest_info: Any = None) -> tuple[str, str]:
    """(live | recorded | refused, why) for experiment `name` here, as the harness will decide it.

    guest_info: the probe's GuestInfo the lab's setup() made (None: the harness probes)."""
    if mode == "recorded":
        return "recorded", "you chose mode='recorded'"
    try:
        from ..experiments import harness as experiments
        blocker = experiments.live_blocker(experiments.get(name), "local", allow, guest_info=guest_info)
    except Exception as exc:
        blocker = f"this guest could not be checked ({type(exc).__name__}: {exc})"
    if blocker is None:
        return "live", "this guest can run it" + (" (you chose mode='live')" if mode == "live" else "")
    if mode == "live":
        return "refused", f"mode='live' but {blocker}"
    return "recorded", blocker


def vm_blocker() -> str | None:
    """Why the kit's VM cannot run here (None: it can): the doctor's verdict, `vm.live_status`."""
    try:
        from ..vm import live_status
        status = live_status()
    except Exception as exc:
        return f"the kit's VM could not be checked ({type(exc).__name__}: {exc})"
    return None if status is None or status.live else status.reason


def has_vm_version(name: str) -> bool:
    try:
        from ..vm.experiments import DEFAULTS
    except Exception:
        return False
    return name in DEFAULTS or name == "auto-reclaim"   # auto-reclaim: wsl/vm_autoreclaim.py


def place(name: str, mode: str, allow: bool | None, guest: str = "auto", info: Any = None) -> Placement:
    """Where experiment `name` runs in this lab (placement.decide on this machine's facts).
    `info`: the probe's GuestInfo where setup has it (its host views), else None (assumed to have one)."""
    if mode == "recorded":
        return decide(Facts(mode=mode, guest=guest, local_blocker=None, local_host_view=True, vm_blocker=None,
                            has_vm=has_vm_version(name)))
    local = None if guest == "vm" else experiment_plan(name, "auto", allow, info)
    local_blocker = None if local is None or local[0] == "live" else local[1]
    host_view = True if info is None else bool(getattr(info, "host_views", True))
    vm = vm_blocker() if guest == "vm" or (guest == "auto" and (local_blocker or not host_view)) else None
    return decide(Facts(mode=mode, guest=guest, local_blocker=local_blocker, local_host_view=host_view,
                        vm_blocker=vm, has_vm=has_vm_version(name)))


def vm_plan(mode: str) -> tuple[str, str]:
    """(live | recorded, why) for the kit's VM (lab 05)."""
    if mode == "recorded":
        return "recorded", "you chose mode='recorded'"
    try:
        from ..vm import availability
        blocker = availability()
    except Exception as exc:
        blocker = f"the kit's VM could not be checked ({type(exc).__name__}: {exc})"
    return ("live", "the kit's VM can boot here") if blocker is None else ("recorded", blocker)


def lab_rows(ctx: Any) -> list[tuple[str, str, str]]:
    """(lab, LIVE / RECORDED / REPLAYED per experiment, why) on this machine, from the probe (a LabContext's plan)."""
    rows = []
    for name, exps in LAB_EXPERIMENTS.items():
        parts, whys = [], []
        for exp in exps:
            placed = None
            if exp == "vm":
                how, why = vm_plan(ctx.mode)
                exp = "the kit's VM"
            else:
                placed = getattr(ctx, "placements", {}).get(exp)
                if placed is None and exp not in ctx.plan and not replay_plan(exp, ctx.recordings):
                    placed = place(exp, ctx.mode, ctx.allow_arg, getattr(ctx, "guest_choice", "auto"), ctx.guest)
                how, why = ((placed.how, placed.why) if placed else
                            ctx.plan.get(exp) or replay_plan(exp, ctx.recordings) or ("recorded", "?"))
            label = LABELS.get(how, how) + (" in the kit's VM" if placed and placed.how == "live"
                                            and placed.place == "vm" else "")
            parts.append(f"{exp}: {label}")
            whys.append((exp, why))
        distinct = list(dict.fromkeys(why for _, why in whys))
        # one reason for all: said once; else each names its experiment (two bare reasons read as one lab's)
        rows.append((name, "; ".join(parts), distinct[0] if len(distinct) == 1 else
                     "; ".join(f"{exp}: {why}" for exp, why in whys)))
    return rows
