"""KVM or TCG: whether /dev/kvm can really run the kit's guest here, and why not.

Opening /dev/kvm is not enough. On this project's machines the device opens, creates VMs and
even runs real-mode code (a 9-byte BIOS printing to the serial port works), yet a Linux guest
never prints a line: QEMU -accel kvm spins a core for as long as it is let. So the only honest
test is the real one: machine.py boots the guest under KVM with a short deadline once, and
the verdict is kept here, per boot of the host and per QEMU binary.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

KVM_DEVICE = Path("/dev/kvm")
KVM_TRIAL_TIMEOUT_S = 5.0  # a KVM guest says hello in well under 1 s; TCG takes ~3 s


@dataclass(frozen=True)
class Accel:
    name: str    # "kvm" or "tcg" (QEMU's -accel)
    reason: str  # why: one line for the doctor and the recording's meta

    @property
    def hypervisor(self) -> str:
        return f"QEMU {self.name.upper()}"


def kvm_device(device: Path = KVM_DEVICE) -> tuple[bool, str]:
    """(openable, why) for the KVM device."""
    if not device.exists():
        return False, f"{device} does not exist (no hardware virtualisation offered to this machine)"
    try:
        os.close(os.open(device, os.O_RDWR | os.O_CLOEXEC))
    except OSError as exc:
        return False, f"{device} cannot be opened ({exc.strerror}; add the user to group kvm)"
    return True, f"{device} opens"


def _verdict_file(cache_dir: Path, qemu: Path) -> Path:
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot_id = "unknown-boot"
    try:
        stamp = int(qemu.stat().st_mtime)
    except OSError:
        stamp = 0
    return cache_dir / f"kvm-verdict-{boot_id}-{stamp}"


def known_verdict(cache_dir: Path, qemu: Path) -> tuple[bool, str] | None:
    """The stored result of an earlier KVM trial boot on this host boot, if any."""
    try:
        ok, _, why = _verdict_file(cache_dir, qemu).read_text().partition("\n")
    except OSError:
        return None
    return ok == "yes", why.strip()


def store_verdict(cache_dir: Path, qemu: Path, ok: bool, why: str) -> None:
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        _verdict_file(cache_dir, qemu).write_text(f"{'yes' if ok else 'no'}\n{why}\n")
    except OSError:
        pass  # a verdict we cannot keep only costs one more trial boot next time


def forced() -> Accel | None:
    """$RECLAIMLAB_VM_ACCEL=kvm|tcg skips the trial."""
    value = os.environ.get("RECLAIMLAB_VM_ACCEL", "").strip().lower()
    if not value:
        return None
    if value not in ("kvm", "tcg"):
        raise ValueError(f"RECLAIMLAB_VM_ACCEL={value!r}: use 'kvm' or 'tcg'")
    return Accel(value, "chosen by RECLAIMLAB_VM_ACCEL")
