"""Where a lab's experiment runs: live on this machine, live in the kit's VM, or from its recording (pure).

    decide(Facts(mode="auto", guest="auto", local_blocker="...shared machine...", vm_blocker=None, has_vm=True))
    -> Placement(how="live", place="vm", why="...")

The facts are gathered elsewhere (`plan.experiment_plan`: the harness's `live_blocker`, the doctor's
`vm.live_status`); this module only decides, so every rule is a test.
"""
from __future__ import annotations

from dataclasses import dataclass

GUEST_CHOICES = ("auto", "local", "vm")   # a lab's `guest` parameter


@dataclass(frozen=True)
class Facts:
    mode: str                   # the lab's mode: auto | live | recorded
    guest: str                  # the lab's guest: auto | local | vm
    local_blocker: str | None   # why it cannot run live on this machine (None: it can)
    local_host_view: bool       # whether a live run here sees the host's side (not in a container)
    vm_blocker: str | None      # why the kit's VM cannot run here (None: it can)
    has_vm: bool                # whether the experiment has a version for the kit's VM


@dataclass(frozen=True)
class Placement:
    how: str     # live | recorded | refused
    place: str   # local | vm: where it runs live, or whose recording is shown (a run of the kit's VM for "vm")
    why: str     # one sentence, true for this run


def decide(f: Facts) -> Placement:
    """The one rule for every lab (see the module docstring)."""
    if f.mode == "recorded":
        return Placement("recorded", "vm" if f.guest == "vm" else "local", "you chose mode='recorded'")
    vm_missing = f.vm_blocker if f.has_vm else "it has no version for the kit's VM"
    if f.guest == "local":
        if f.local_blocker is None:
            return Placement("live", "local", "this machine can run it (you chose guest='local')")
        if f.mode == "live":
            return Placement("refused", "local", f"mode='live' and guest='local' but {f.local_blocker}")
        return Placement("recorded", "local", f"guest='local' but {f.local_blocker}")
    if f.guest == "vm":
        if vm_missing is None:
            return Placement("live", "vm", "the kit's VM can run here (guest='vm')")
        if f.mode == "live":
            return Placement("refused", "vm", f"mode='live' and guest='vm' but {vm_missing}")
        return Placement("recorded", "vm" if f.has_vm else "local", f"guest='vm' but {vm_missing}")
    # guest="auto": this machine (with its host's side), else the kit's VM, else here without the host's
    # side, else the recording
    if f.local_blocker is None and f.local_host_view:
        return Placement("live", "local", "this machine can run it")
    if vm_missing is None:
        why = (f"this machine cannot run it live ({f.local_blocker})" if f.local_blocker is not None else
               "a live run on this machine would show no host side (it is a container or a guest that cannot see "
               "its host)")
        return Placement("live", "vm", f"{why}, so it runs in the kit's own VM, where the notebook is the host")
    if f.local_blocker is None:
        return Placement("live", "local", f"this machine can run it, without the host's side (the kit's VM "
                                          f"cannot run here: {vm_missing})")
    if f.mode == "live":
        return Placement("refused", "local", f"mode='live' but neither place can run it: this machine "
                                             f"({f.local_blocker}) nor the kit's VM ({vm_missing})")
    return Placement("recorded", "local", f"this machine cannot run it live ({f.local_blocker}) and "
                                          f"neither can the kit's VM ({vm_missing})")
