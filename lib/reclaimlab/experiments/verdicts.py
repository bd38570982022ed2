"""What can run live on this guest: each experiment's declared needs (catalog) judged against the probe's facts.

    info = verdicts.probe(roots)                 # probe.guest.probe with judge=live_support
    verdicts.support(catalog.get("refault"), info)  # LiveSupport(live, reason, needs_consent, labs)

The probe reports what the machine has (memory budget, knobs, disk, QEMU); a declaration says which of
those its experiment needs (`needs`, `wants`); this module is the one place the two meet.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

from .. import catalog
from ..catalog.kit import KIT_VM, KIT_VM_LABS
from ..probe import guest
from ..probe.guest import GuestInfo, LiveSupport

HOST_VIEW_NOTE = "no host view here, so only the guest's side shows"


def _check(info: GuestInfo, need: str) -> tuple[bool, str]:
    """(has it?, what) for one need other than memory and qemu (catalog.NEEDS)."""
    if need in ("drop_caches", "compact_memory"):
        return guest.knob_check(info.knobs, need)
    if need == "reclaim":
        return guest.reclaim_check(info.knobs, info.cgroup_limit_writable)
    if need == "disk":
        return guest.disk_check(info.scratch_free_bytes)
    raise catalog.CatalogError(f"need {need!r} is not one of {', '.join(catalog.NEEDS)}")


def _judge(exp: catalog.Experiment, info: GuestInfo) -> LiveSupport:
    if info.refusal:
        return LiveSupport(False, info.refusal)
    if "qemu" in exp.needs:
        return guest.qemu_support(info.qemu_path, info.kvm_usable, info.kit_vm)
    checks = [_check(info, need) for need in exp.needs if need != "memory"]
    if exp.needs_consent:
        base = guest.knob_support(checks, info.shared_reason, info.consent_given)
    else:
        budget = guest.budget_support(info.memory) if "memory" in exp.needs else LiveSupport(True, "")
        missing = [what for ok, what in checks if not ok]
        if not budget.live or missing:
            base = LiveSupport(False, "; ".join(filter(None, [budget.reason if not budget.live else ""] + missing)))
        else:
            base = LiveSupport(True, "; ".join(filter(None, [budget.reason] + [what for _, what in checks]))
                               or "it needs nothing this guest lacks")
    if base.live and "host_view" in exp.wants and not info.host_views:
        base = LiveSupport(True, f"{base.reason}; {HOST_VIEW_NOTE}")
    return base


def support(exp: catalog.Experiment, info: GuestInfo) -> LiveSupport:
    """Whether `exp` can run live here (consent aside: see needs_consent), with its labs."""
    base = _judge(exp, info)
    return LiveSupport(base.live, base.reason, exp.needs_consent, exp.labs)


def kit_vm_support(info: GuestInfo) -> LiveSupport:
    """The kit's VM (a guest, not an experiment: lab 05 runs experiments in it, and labs 01-04 where guest="auto" or "vm" puts them there)."""
    base = LiveSupport(False, info.refusal) if info.refusal else \
        guest.qemu_support(info.qemu_path, info.kvm_usable, info.kit_vm)
    return LiveSupport(base.live, base.reason, False, KIT_VM_LABS)


def live_support(info: GuestInfo) -> dict[str, LiveSupport]:
    """{experiment: LiveSupport} for every declared experiment, then the kit's VM (as "vm")."""
    out = {name: support(exp, info) for name, exp in catalog.REGISTRY.items()}
    out[KIT_VM] = kit_vm_support(info)
    return out


def labs() -> dict[str, tuple[str, ...]]:
    """{experiment (and "vm"): the lab notebooks that run it}, from the declarations."""
    return {**{name: exp.labs for name, exp in catalog.REGISTRY.items()}, KIT_VM: KIT_VM_LABS}


def probe(roots: Any = None, env: Mapping[str, str] = os.environ, scratch_dir: Any = None,
          vm_status: Any = None) -> GuestInfo:
    """The guest probe (probe.guest.probe) with each declared experiment judged (`live_support`)."""
    return guest.probe(roots, env=env, scratch_dir=scratch_dir, vm_status=vm_status, judge=live_support)
