"""The kit's own guest: a small Linux VM under QEMU that the notebook is the host of.

    from reclaimlab.vm import run_vm_experiment
    rec = run_vm_experiment("calloc-reclaim", reporting=True)   # -> Recording

Modules: build (kernel + initramfs + disk from Debian packages, cached), agent.c (the guest
agent and its protocol), protocol (parsing its lines), machine (QEMU's life cycle), sampler
(guest + host view -> Recording), experiments (the step scripts), sizing, accel (KVM/TCG).
"""
from __future__ import annotations

from .errors import VmBootError, VmCommandError, VmError, VmSetupError
from .experiments import DEFAULTS as EXPERIMENT_DEFAULTS
from .experiments import run_vm_experiment

__all__ = ["availability", "hypervisor_status", "live_status", "run_vm_experiment", "EXPERIMENT_DEFAULTS", "VmError", "VmSetupError",
           "VmBootError", "VmCommandError"]


def availability() -> str | None:
    """Why the kit's VM cannot run here (one line with the install command), or None if it can.

    Checks that every build input is installed; it does not boot (that takes seconds).
    """
    from . import build, machine
    try:
        machine.find_qemu()
        build.find_inputs()
    except VmSetupError as exc:
        return str(exc)
    return None


def hypervisor_status() -> str:
    """One line for the doctor: which accelerator the VM would use here and why (no boot)."""
    from . import accel, build, machine
    forced = accel.forced()
    if forced:
        return f"{forced.hypervisor} ({forced.reason})"
    ok, why = accel.kvm_device()
    if not ok:
        return f"QEMU TCG (software emulation): {why}"
    try:
        qemu = machine.find_qemu()
    except VmSetupError as exc:
        return f"unknown: {exc}"
    known = accel.known_verdict(build.cache_root(), qemu)
    if known is None:
        return f"QEMU KVM to be tried at the first boot ({why}); TCG if the guest does not boot under it"
    return f"QEMU KVM ({known[1]})" if known[0] else f"QEMU TCG (software emulation): {known[1]}"


def live_status(roots=None):
    """The guest probe's verdict on the kit's VM here (pass it to `probe.guest.probe(vm_status=...)`):
    /dev/kvm can open yet fail to boot Linux (accel.py keeps that verdict), so ask the VM code, not the
    device. None for a captured tree (it is not this machine)."""
    from ..probe.guest import LiveSupport
    if roots is not None and not roots.is_live:
        return None
    try:
        missing = availability()
        return LiveSupport(False, missing) if missing else LiveSupport(True, hypervisor_status())
    except Exception as exc:  # noqa: BLE001 - the doctor must answer even if the VM code cannot
        return LiveSupport(False, f"the kit's VM code could not say ({exc})")
