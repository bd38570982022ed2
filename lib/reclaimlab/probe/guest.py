"""What this guest is and what it may do: the facts behind `reclaimlab doctor`.

`probe()` reads the proc and sys roots (live, or a captured tree) and the environment, and
returns a GuestInfo. Nothing here writes anything or needs root. Where a fact cannot be read
it is None or "unknown" and the reason goes into `problems`; only an unreadable or corrupt
/proc/meminfo is fatal (SourceError / ProcParseError), since without it nothing else means much.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple

from . import hostviews as host, consent, procfs, sources
from ..units import GIB, MIB, format_size
from .budget import SAFETY_FLOOR_BYTES, SAFETY_FRACTION, safe_budget_bytes  # noqa: F401 (re-exported)

SCHEMA_VERSION = 2  # 2: live_support's "live" is what auto mode does (consent included); verdict, labs, glossary

VERDICTS = ("live", "live_with_consent", "recorded")
REPORTED_KIB_MEANING = ("reported_kib: a running total since boot of the memory this guest has reported free to "
                        "its host (never goes down); not what the host holds now: watch how it grows")
GLOSSARY = {
    "verdict": "what mode='auto' does here: live (runs here), live_with_consent (runs here once you allow "
               "system-wide changes: allow_system_changes=True, --allow-system-changes or "
               "RECLAIMLAB_ALLOW_SYSTEM_CHANGES=1; until then its recording is shown), recorded (its recording is "
               "shown; reason says why)",
    "live": "true only where mode='auto' runs it live now (verdict 'live')",
    "reported_kib": REPORTED_KIB_MEANING,
}
MIN_LIVE_BUDGET_BYTES = 256 * MIB
MIN_SCRATCH_FREE_BYTES = 1 * GIB  # page-cache writes a file of up to ~1.5 GB, scaled to the budget

VIRTIO_ID_BALLOON = 5            # include/uapi/linux/virtio_ids.h
VIRTIO_BALLOON_F_REPORTING = 5   # include/uapi/linux/virtio_balloon.h: free page reporting
QEMU_BINARY = "qemu-system-x86_64"


class LiveSupport(NamedTuple):
    """Whether something can run live here, judged from this guest's facts (experiments.verdicts judges
    each experiment's declared needs; the probe itself names no experiment)."""
    live: bool   # True: it can run live here (consent aside: see needs_consent)
    reason: str  # why, or why not, in one line a learner can act on
    needs_consent: bool = False     # it turns system-wide knobs: live only once the user consents
    labs: tuple[str, ...] = ()      # the lab notebooks (labs/NAME.ipynb) that run it


def verdict(support: LiveSupport, consent_given: bool) -> str:
    """What auto mode does with it here: one of VERDICTS (the doctor's text and JSON agree)."""
    if not support.live:
        return "recorded"
    if support.needs_consent and not consent_given:
        return "live_with_consent"
    return "live"


def entry_verdict(entry: Any, consent_given: bool, needs_consent: bool = False) -> str:
    """The verdict of one entry of `to_dict()["live_support"]`: the one `verdict()`, whatever the schema.

    Schema 2 entries carry it; an older one ({live, reason, needs_consent}, where live meant "consent
    aside", or a (live, reason) pair, for which the caller says `needs_consent`) is judged here by
    `verdict()`, so every reader agrees with the doctor.
    """
    if isinstance(entry, Mapping):
        if "verdict" in entry:
            return str(entry["verdict"])
        live, reason = entry.get("live"), entry.get("reason", "")
        needs_consent = bool(entry.get("needs_consent", needs_consent))
    else:
        live, reason = entry[0], entry[1]
    return verdict(LiveSupport(bool(live), str(reason), needs_consent), consent_given)


@dataclass(frozen=True)
class MemoryInfo:
    mem_total_bytes: int
    mem_available_bytes: int | None    # None on kernels before 3.14 (no MemAvailable)
    mem_free_bytes: int
    cgroup_version: int | None         # 1, 2, or None where no memory cgroup is found
    cgroup_path: str | None
    cgroup_limit_bytes: int | None     # the tightest limit that applies; None = unlimited
    cgroup_usage_bytes: int | None
    memory_budget_bytes: int           # safe_budget_bytes() of the above
    # Free in the buddy allocator's lists (/proc/buddyinfo) plus the per-CPU lists (/proc/zoneinfo): what free
    # page reporting can walk. MemFree beyond it sits in neither (a kernel handing memory over late). None: unread.
    buddy_free_bytes: int | None = None
    # Of the buddy lists' free memory, what sits in blocks below page_reporting_order: reporting never hands it
    # over (a long-used guest holds much of its free memory so). None: buddyinfo or the order unread.
    buddy_below_order_bytes: int | None = None


@dataclass(frozen=True)
class GuestInfo:
    """What this guest is and may do. `to_dict()` gives these stable JSON keys (schema 1):

    schema_version      1
    kind                "wsl2" | "wsl1" | "vm" | "container" | "bare-metal" (container wins over the others;
                        wsl1: no Linux kernel and no VM, so nothing runs live)
    kind_reason         the evidence for `kind`, one line
    hypervisor          "Hyper-V (WSL 2)", "Firecracker (KVM)", "KVM", "KVM/QEMU", "Xen", "VMware", ...,
                        "unknown" (a VM we cannot name), or null (no sign of a hypervisor)
    hypervisor_evidence list of strings: what the guess rests on
    container           why we believe this is a container (consent.container_reason), or null
    kernel_release      e.g. "6.18.44-fc-v669", or null
    is_root             bool
    virtio_balloon      bool: a virtio-balloon device is present
    balloon_driver      "virtio_balloon" | "hv_balloon" | null
    free_page_reporting true | false | null (cannot tell), with free_page_reporting_reason
    page_reporting_order  int from the module parameter (the command line may say otherwise), or null
    page_reporting_params {name: value} of /sys/module/page_reporting/parameters
    host_views          list of {name, column, source}; host_view_notes: why others are absent
    knobs               {drop_caches|compact_memory|compaction_proactiveness|memory.reclaim:
                         {writable, path, reason}} (consent.knob_access: root and file, not consent)
    cgroup_limit_writable  bool: cgroup v1 memory.limit_in_bytes writable (auto-reclaim's stand-in)
    shared_reason       why system-wide knobs stay off here (consent.shared_reason), or null
    consent_given       bool: RECLAIMLAB_ALLOW_SYSTEM_CHANGES=1 is set
    memory              {mem_total_bytes, mem_available_bytes, mem_free_bytes, cgroup_version,
                         cgroup_path, cgroup_limit_bytes, cgroup_usage_bytes, memory_budget_bytes,
                         buddy_free_bytes, buddy_below_order_bytes}
    scratch_dir, scratch_free_bytes   where page-cache writes its file, and the room there
    kvm_usable          bool: /dev/kvm can be opened read-write; qemu_path: qemu-system-x86_64 or null
    refusal             why nothing at all runs live here (WSL 1), or null
    uptime_s            seconds since the guest booted (/proc/uptime), or null
    kit_vm              {live, reason} the VM code's verdict on the kit's VM (probe's vm_status), or null
    live_support        {experiment: {verdict, live, reason, needs_consent, labs}}, judged by the `judge`
                        passed to probe() (experiments.verdicts: from each declaration's needs); verdict is
                        what mode='auto' does here ("live" | "live_with_consent" | "recorded", see VERDICTS);
                        live is verdict == "live"; labs names the lab notebooks that run it
    glossary            {term: meaning} for verdict, live and reported_kib (a running total since boot)
    proc_root, sys_root the roots probed
    problems            list of one-line notes on files that could not be read
    """

    kind: str
    kind_reason: str
    hypervisor: str | None
    hypervisor_evidence: tuple[str, ...]
    container: str | None
    kernel_release: str | None
    is_root: bool
    virtio_balloon: bool
    balloon_driver: str | None
    free_page_reporting: bool | None
    free_page_reporting_reason: str
    page_reporting_order: int | None
    page_reporting_params: dict[str, Any]
    host_views: tuple[host.HostViewSpec, ...]
    host_view_notes: tuple[str, ...]
    knobs: dict[str, consent.KnobAccess]
    cgroup_limit_writable: bool
    shared_reason: str | None
    consent_given: bool
    memory: MemoryInfo
    scratch_dir: str
    scratch_free_bytes: int | None
    kvm_usable: bool
    qemu_path: str | None
    proc_root: str
    sys_root: str
    problems: tuple[str, ...] = field(default=())
    kit_vm: LiveSupport | None = None
    refusal: str | None = None          # why nothing at all runs live on this guest (WSL 1), else None
    uptime_s: float | None = None       # /proc/uptime: a guest up for hours is no fresh boot
    live_support: dict[str, LiveSupport] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": self.kind,
            "kind_reason": self.kind_reason,
            "hypervisor": self.hypervisor,
            "hypervisor_evidence": list(self.hypervisor_evidence),
            "container": self.container,
            "kernel_release": self.kernel_release,
            "is_root": self.is_root,
            "virtio_balloon": self.virtio_balloon,
            "balloon_driver": self.balloon_driver,
            "free_page_reporting": self.free_page_reporting,
            "free_page_reporting_reason": self.free_page_reporting_reason,
            "page_reporting_order": self.page_reporting_order,
            "page_reporting_params": dict(self.page_reporting_params),
            "host_views": [v.to_dict() for v in self.host_views],
            "host_view_notes": list(self.host_view_notes),
            "knobs": {name: {"writable": k.writable, "path": str(k.path) if k.path else None, "reason": k.reason}
                      for name, k in self.knobs.items()},
            "cgroup_limit_writable": self.cgroup_limit_writable,
            "shared_reason": self.shared_reason,
            "consent_given": self.consent_given,
            "memory": dict(vars(self.memory)),
            "scratch_dir": self.scratch_dir,
            "scratch_free_bytes": self.scratch_free_bytes,
            "kvm_usable": self.kvm_usable,
            "qemu_path": self.qemu_path,
            "refusal": self.refusal,
            "uptime_s": self.uptime_s,
            "kit_vm": None if self.kit_vm is None else {"live": self.kit_vm.live, "reason": self.kit_vm.reason},
            "live_support": {name: {"verdict": verdict(s, self.consent_given),
                                    "live": verdict(s, self.consent_given) == "live", "reason": s.reason,
                                    "needs_consent": s.needs_consent, "labs": list(s.labs)}
                             for name, s in self.live_support.items()},
            "glossary": dict(GLOSSARY),
            "proc_root": self.proc_root,
            "sys_root": self.sys_root,
            "problems": list(self.problems),
        }


# --- reading the facts -----------------------------------------------------------------------

def _read_word(path: Path) -> str | None:
    text = sources.read_optional(path)
    return text.strip() if text and text.strip() else None


kernel_release = sources.kernel_release  # one reader of osrelease, named here for the probe's callers


def cpu_has_hypervisor_flag(roots: sources.Roots) -> bool:
    """x86 sets the `hypervisor` CPU flag when running under any hypervisor."""
    text = sources.read_optional(roots.proc / "cpuinfo") or ""
    for line in text.splitlines():
        if line.startswith("flags"):
            return "hypervisor" in line.partition(":")[2].split()
    return False


def virtio_devices(roots: sources.Roots) -> dict[str, tuple[int | None, str | None]]:
    """{virtioN: (device id, feature bits as '0101...')} from /sys/bus/virtio/devices."""
    base = roots.sys / "bus/virtio/devices"
    out: dict[str, tuple[int | None, str | None]] = {}
    if not base.is_dir():
        return out
    for dev in sorted(base.iterdir()):
        raw_id = _read_word(dev / "device")
        try:
            dev_id = int(raw_id, 16) if raw_id else None
        except ValueError:
            dev_id = None
        out[dev.name] = (dev_id, _read_word(dev / "features"))
    return out


# (substring of sys_vendor, substring of product_name or "", name, proves a VM on its own)
_DMI_VMS = (
    ("QEMU", "", "KVM/QEMU", True),
    ("", "KVM", "KVM/QEMU", True),
    ("Cloud Hypervisor", "", "Cloud Hypervisor (KVM)", True),
    ("Microsoft Corporation", "Virtual Machine", "Hyper-V", True),
    ("VMware", "", "VMware", True),
    ("innotek", "", "VirtualBox", True),
    ("Xen", "", "Xen", True),
    ("Parallels", "", "Parallels", True),
    ("Google", "Google Compute Engine", "Google Compute Engine (KVM)", True),
    ("Amazon EC2", "", "Amazon EC2 (Nitro)", False),  # EC2 bare-metal instances say Amazon EC2 too
)
_CLOCKSOURCES = (("kvm-clock", "KVM"), ("hyperv_clocksource", "Hyper-V"), ("xen", "Xen"))


def _dmi_guess(roots: sources.Roots) -> tuple[str | None, bool, str | None]:
    """(hypervisor name from DMI, whether DMI alone proves a VM, evidence line)."""
    vendor = _read_word(roots.sys / "class/dmi/id/sys_vendor") or ""
    product = _read_word(roots.sys / "class/dmi/id/product_name") or ""
    for want_vendor, want_product, name, proves in _DMI_VMS:
        if want_vendor in vendor and want_product in product and (want_vendor or want_product):
            return name, proves, f"DMI: {vendor} / {product}"
    return None, False, None


def _clocksource_guess(roots: sources.Roots) -> str | None:
    text = _read_word(roots.sys / "devices/system/clocksource/clocksource0/available_clocksource") or ""
    for marker, name in _CLOCKSOURCES:
        if any(cs.startswith(marker) for cs in text.split()):
            return name
    return None


def identify_hypervisor(roots: sources.Roots, wsl: str | None) -> tuple[str | None, tuple[str, ...]]:
    """(hypervisor name, evidence). None: no sign of any hypervisor; "unknown": a VM we cannot name."""
    evidence: list[str] = []
    if wsl:
        evidence.append(wsl)
    flag = cpu_has_hypervisor_flag(roots)
    if flag:
        evidence.append("CPU flag 'hypervisor'")
    xen_type = _read_word(roots.sys / "hypervisor/type")
    if xen_type:
        evidence.append(f"/sys/hypervisor/type: {xen_type}")
    dmi_name, dmi_proves, dmi_line = _dmi_guess(roots)
    if dmi_line:
        evidence.append(dmi_line)
    clock = _clocksource_guess(roots)
    if clock:
        evidence.append(f"paravirtual clocksource of {clock}")
    virtio = virtio_devices(roots)
    if virtio:
        evidence.append(f"{len(virtio)} virtio device(s)")
    no_dmi = not (roots.sys / "class/dmi/id").exists()
    if no_dmi and clock == "KVM" and virtio:
        evidence.append("no DMI/SMBIOS tables: Firecracker's signature (crosvm looks alike)")
    is_vm = bool(wsl or flag or xen_type or dmi_proves or clock or virtio)
    if not is_vm:
        return None, tuple(evidence)
    if wsl:
        return "Hyper-V (WSL 2)", tuple(evidence)
    if dmi_name:
        return dmi_name, tuple(evidence)
    if no_dmi and clock == "KVM" and virtio:
        return "Firecracker (KVM)", tuple(evidence)
    if clock or xen_type:
        return clock or xen_type.capitalize(), tuple(evidence)
    return "unknown", tuple(evidence)


def balloon_and_reporting(roots: sources.Roots, params: Mapping[str, Any]
                          ) -> tuple[str | None, bool | None, str]:
    """(balloon driver, free page reporting on?, why we say so)."""
    balloons = [feat for dev_id, feat in virtio_devices(roots).values() if dev_id == VIRTIO_ID_BALLOON]
    if balloons:
        features = balloons[0]
        if features is None or len(features) <= VIRTIO_BALLOON_F_REPORTING:
            return "virtio_balloon", None, "virtio-balloon present, but its feature bits are not readable"
        if features[VIRTIO_BALLOON_F_REPORTING] == "1":
            return "virtio_balloon", True, "virtio-balloon negotiated free page reporting (VIRTIO_BALLOON_F_REPORTING)"
        return "virtio_balloon", False, "virtio-balloon without free page reporting: the host did not offer it"
    if (roots.sys / "bus/vmbus/drivers/hv_balloon").exists():
        return "hv_balloon", None, ("hv_balloon present: it reports free pages where the Hyper-V host supports "
                                    "it, which the guest cannot see")
    if "page_reporting_order" in params:
        return None, False, "no balloon device: the kernel can report free pages but nothing receives them"
    return None, False, "no balloon device and no page_reporting in this kernel"


def _reporting_order(params: Mapping[str, Any]) -> int | None:
    # free_page_reporting says whether anything reports at all
    return procfs.reporting_order(params.get("page_reporting_order"))


def _memory(roots: sources.Roots, problems: list[str]) -> tuple[MemoryInfo, sources.MemoryCgroup | None]:
    meminfo = sources.meminfo(roots)  # fatal where missing or corrupt: see the module docstring
    available_kib = meminfo.get("MemAvailable")
    free_kib = meminfo.get("MemFree", 0)
    if available_kib is None:
        problems.append("/proc/meminfo has no MemAvailable (kernels before 3.14 and WSL 1 lack it): "
                        "the budget counts MemFree only")
    cgroup = sources.memory_cgroup(roots)
    limit = usage = None
    if cgroup is not None:
        try:
            limit, usage = cgroup.limit_bytes(), cgroup.usage_bytes()
        except (sources.SourceError, procfs.ProcParseError) as exc:
            problems.append(f"memory cgroup: {exc}")
    budget = safe_budget_bytes((available_kib if available_kib is not None else free_kib) * 1024, limit, usage)
    info = MemoryInfo(
        mem_total_bytes=meminfo.get("MemTotal", 0) * 1024,
        mem_available_bytes=None if available_kib is None else available_kib * 1024,
        mem_free_bytes=free_kib * 1024,
        cgroup_version=cgroup.version if cgroup else None,
        cgroup_path=str(cgroup.path) if cgroup else None,
        cgroup_limit_bytes=limit, cgroup_usage_bytes=usage, memory_budget_bytes=budget,
        buddy_free_bytes=_buddy_free_bytes(roots), buddy_below_order_bytes=_buddy_below_order_bytes(roots))
    return info, cgroup


def _buddy_below_order_bytes(roots: sources.Roots) -> int | None:
    """Bytes free in buddy blocks below page_reporting_order, or None where buddyinfo or the order is unread."""
    order = sources.page_reporting_order(roots)
    try:
        zones = sources.buddyinfo(roots)
    except (OSError, sources.SourceError, procfs.ProcParseError):
        return None
    if order is None:
        return None
    page_kib = sources.page_bytes() // 1024
    return sum(procfs.free_kib_at_least(z.free_blocks, 0, page_kib) - procfs.free_kib_at_least(z.free_blocks, order,
                                                                                                page_kib)
               for z in zones) * 1024


def _buddy_free_bytes(roots: sources.Roots) -> int | None:
    """Bytes free in the buddy lists and the per-CPU lists, or None where either cannot be read."""
    try:
        zones = sources.buddyinfo(roots)
    except (OSError, sources.SourceError, procfs.ProcParseError):
        return None
    per_cpu_kib = sources.per_cpu_free_kib(roots)
    if per_cpu_kib is None:
        return None
    page_kib = sources.page_bytes() // 1024
    return (sum(procfs.free_kib_at_least(z.free_blocks, 0, page_kib) for z in zones) + per_cpu_kib) * 1024


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _cgroup_limit_writable(roots: sources.Roots, cgroup: sources.MemoryCgroup | None) -> bool:
    # Mirrors consent.knob_access: on live roots only root may write; a captured tree is any user's.
    if cgroup is None or cgroup.version != 1 or not cgroup.limit_file.exists():
        return False
    return os.access(cgroup.limit_file, os.W_OK) and (_is_root() or not roots.is_live)


def _scratch_free_bytes(scratch_dir: str) -> int | None:
    try:
        return shutil.disk_usage(scratch_dir).free
    except OSError:
        return None


def _qemu_and_kvm(roots: sources.Roots, env: Mapping[str, str]) -> tuple[str | None, bool]:
    path = env.get("PATH")
    qemu = shutil.which(QEMU_BINARY, path=path) if path else None
    kvm = Path("/dev/kvm") if roots.is_live else roots.proc.parent / "dev" / "kvm"
    return qemu, kvm.exists() and os.access(kvm, os.R_OK | os.W_OK)


# --- what this guest has, phrased as the checks a live run makes (experiments.verdicts picks them) ----

def _fmt_bytes(n: int | None) -> str:
    return format_size(n, digits={"GiB": 1, "MiB": 0}, smallest="MiB", largest="GiB")


def budget_support(memory: MemoryInfo) -> LiveSupport:
    """Memory: at least MIN_LIVE_BUDGET_BYTES may be allocated safely here."""
    budget = memory.memory_budget_bytes
    if budget < MIN_LIVE_BUDGET_BYTES:
        return LiveSupport(False, f"only {_fmt_bytes(budget)} can be allocated safely here; needs "
                                  f"{_fmt_bytes(MIN_LIVE_BUDGET_BYTES)}")
    return LiveSupport(True, f"up to {_fmt_bytes(budget)} can be allocated safely")


def knob_support(needed: list[tuple[bool, str]], shared: str | None, consent_given: bool) -> LiveSupport:
    """A run that turns system-wide knobs: every needed (ok, what) holds and the machine is not shared."""
    if shared:
        # Said first: on a shared machine no permission would change the answer ("needs root" would mislead).
        return LiveSupport(False, f"{shared}: system-wide knobs stay off")
    missing = [what for ok, what in needed if not ok]
    if missing:
        return LiveSupport(False, "; ".join(missing))
    have = "; ".join(what for _, what in needed)
    if consent_given:
        return LiveSupport(True, f"{have}; consent given ({consent.ALLOW_ENV}=1)")
    return LiveSupport(True, f"{have}; runs only with consent: allow_system_changes=True or {consent.ALLOW_ENV}=1")


def knob_check(knobs: Mapping[str, consent.KnobAccess], name: str) -> tuple[bool, str]:
    """(writable?, what) for the knob `name` (drop_caches, compact_memory, ...)."""
    k = knobs.get(name)
    return bool(k and k.writable), f"{name} {k.reason if k else 'unknown here'}"


def reclaim_check(knobs: Mapping[str, consent.KnobAccess], cgroup_limit_writable: bool) -> tuple[bool, str]:
    """(a way to reclaim a cgroup's memory?, which): v2 memory.reclaim, else v1's limit as a stand-in."""
    reclaim = knobs.get("memory.reclaim")
    if reclaim is not None and reclaim.writable:
        return True, "cgroup v2 memory.reclaim writable"
    if cgroup_limit_writable:
        return True, "cgroup v1 memory.limit_in_bytes writable (the labelled stand-in for memory.reclaim)"
    return False, "neither cgroup v2 memory.reclaim nor a writable cgroup v1 memory.limit_in_bytes"


def disk_check(scratch_free_bytes: int | None) -> tuple[bool, str]:
    """(room for a scratch file?, what): at least MIN_SCRATCH_FREE_BYTES free where it goes."""
    ok = scratch_free_bytes is not None and scratch_free_bytes >= MIN_SCRATCH_FREE_BYTES
    return ok, (f"{_fmt_bytes(scratch_free_bytes)} free for the file (at least "
                f"{_fmt_bytes(MIN_SCRATCH_FREE_BYTES)}; a run checks room for its own file's size)")


def qemu_support(qemu_path: str | None, kvm_usable: bool, kit_vm: LiveSupport | None) -> LiveSupport:
    """Whether the kit's VM can boot here: QEMU on PATH and, where known, the VM code's own verdict."""
    qemu_note = "KVM acceleration (/dev/kvm usable)" if kvm_usable else "TCG emulation, slow (no usable /dev/kvm)"
    if qemu_path and kit_vm:
        return LiveSupport(kit_vm.live, f"{qemu_path}: {kit_vm.reason}")
    if qemu_path:
        return LiveSupport(True, f"{qemu_path}: {qemu_note}")
    return LiveSupport(False, f"{QEMU_BINARY} not on PATH (Debian: apt-get install qemu-system-x86); "
                              f"would use {qemu_note}")


# --- the probe -----------------------------------------------------------------------------------

def wsl1_refusal(env: Mapping[str, str] = os.environ) -> str:
    """Why nothing runs live on WSL 1, and how to convert the distro (named where WSL says it)."""
    distro = env.get("WSL_DISTRO_NAME") or "<distro>"
    return (f"WSL 1 has no Linux kernel and no VM (Windows answers Linux system calls itself): memory a program "
            f"frees goes straight back to Windows, so there is no guest to give it back and nothing to measure; "
            f"convert it to WSL 2 in Windows with `wsl --set-version {distro} 2` (`wsl -l -v` lists the distros)")


def _kind(container: str | None, wsl: str | None, hypervisor: str | None,
          evidence: tuple[str, ...], wsl1: str | None = None) -> tuple[str, str]:
    if container:
        return "container", f"{container}; the memory limit is the cgroup's, the host's /proc/meminfo is not ours"
    if wsl1:
        return "wsl1", f"{wsl1}: no guest kernel, no VM, nothing to give back"
    if wsl:
        return "wsl2", wsl
    if hypervisor:
        return "vm", "; ".join(evidence)
    return "bare-metal", "no hypervisor CPU flag, DMI entry, paravirtual clock or virtio device"


def probe(roots: sources.Roots | None = None, env: Mapping[str, str] = os.environ,
          scratch_dir: str | os.PathLike | None = None,
          vm_status: Callable[[sources.Roots], LiveSupport | None] | None = None,
          judge: Callable[[GuestInfo], dict[str, LiveSupport]] | None = None) -> GuestInfo:
    """Probe the guest at `roots` (default: Roots.from_env(), the live machine).

    `vm_status(roots)` says whether the kit's VM can run here and on what: /dev/kvm can open yet
    fail to boot Linux, so only the VM code knows (callers above the probe pass
    `reclaimlab.vm.live_status`; the probe itself never imports the VM).
    `judge(info)` gives `live_support`, what can run live here (callers above the probe pass
    `experiments.verdicts.live_support`, which judges each experiment's declared needs; without it,
    live_support is empty: the probe reports what the machine has, never what an experiment needs).

    Raises sources.SourceError / procfs.ProcParseError only when /proc/meminfo is missing or corrupt.
    """
    roots = roots or sources.Roots.from_env()
    problems: list[str] = []
    memory, cgroup = _memory(roots, problems)
    release = kernel_release(roots)
    if release is None:
        problems.append(f"{roots.proc / 'sys/kernel/osrelease'}: not readable; kernel release unknown")
    wsl = host.wsl_reason(release, env)
    wsl1 = host.wsl1_reason(release, sources.read_optional(roots.proc / "version"))
    hypervisor, evidence = identify_hypervisor(roots, wsl)
    if wsl1:  # the CPU's hypervisor flag is Windows' own (Hyper-V under Windows), not a VM around this Linux
        hypervisor = None
        evidence = (wsl1,) + tuple(f"{e} (Windows' own, not a VM around this Linux)" for e in evidence)
    container = consent.container_reason(roots, env)
    params = sources.page_reporting_params(roots)
    balloon, reporting, reporting_reason = balloon_and_reporting(roots, params)
    views, view_notes = host.find_host_views(roots, env, release)
    knobs = consent.knob_access(roots, cgroup)
    limit_writable = _cgroup_limit_writable(roots, cgroup)
    shared = consent.shared_reason(roots, env)
    consent_given = consent.changes_allowed(None, env)
    scratch = str(scratch_dir or tempfile.gettempdir())
    scratch_free = _scratch_free_bytes(scratch)
    qemu, kvm = _qemu_and_kvm(roots, env)
    kind, kind_reason = _kind(container, wsl, hypervisor, evidence, wsl1)
    info = GuestInfo(
        kind=kind, kind_reason=kind_reason, hypervisor=hypervisor, hypervisor_evidence=evidence,
        container=container, kernel_release=release, is_root=_is_root(),
        virtio_balloon=balloon == "virtio_balloon", balloon_driver=balloon,
        free_page_reporting=reporting, free_page_reporting_reason=reporting_reason,
        page_reporting_order=_reporting_order(params), page_reporting_params=params,
        host_views=tuple(views), host_view_notes=tuple(view_notes), knobs=knobs,
        cgroup_limit_writable=limit_writable, shared_reason=shared, consent_given=consent_given,
        memory=memory, scratch_dir=scratch, scratch_free_bytes=scratch_free, kvm_usable=kvm, qemu_path=qemu,
        kit_vm=vm_status(roots) if qemu and vm_status else None,
        refusal=wsl1_refusal(env) if kind == "wsl1" else None, uptime_s=sources.uptime_s(roots),
        proc_root=str(roots.proc), sys_root=str(roots.sys), problems=tuple(problems))
    return replace(info, live_support=judge(info)) if judge else info
