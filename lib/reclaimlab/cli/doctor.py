"""`reclaimlab doctor`: what this machine is, and which labs can run live here.

Like `pyperf system show`: each check, its value, and what it means for the labs. `--json`
prints GuestInfo.to_dict() (stable keys, see guest.GuestInfo) for scripts.
"""
from __future__ import annotations

import json
import time

import click

from .errors import UserError

from ..probe import guest, hostviews as host, procfs, sources
from ..units import format_size

KEY_WIDTH = 24
VALUE_WIDTH = 26
PAGE_KIB = sources.page_bytes() // 1024  # this machine's base page; page_reporting_order counts in them


DoctorError = UserError  # kept for callers and tests that name it


def _size(n_bytes: int | None) -> str:
    return format_size(n_bytes, digits=1, largest="GiB", missing="-")


def _row(key: str, value: object, meaning: str = "") -> str:
    return f"  {key:<{KEY_WIDTH}} {str(value):<{VALUE_WIDTH}} {meaning}".rstrip()


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


KIND_MEANING = {
    "wsl2": "WSL 2: Windows' Hyper-V holds this VM's memory (vmmemWSL in Task Manager)",
    "wsl1": "WSL 1: not a VM. Windows runs these Linux programs itself (no guest kernel), so memory they free "
            "goes straight back to Windows: nothing to give back, nothing to measure live. Convert it to WSL 2 "
            "in Windows: wsl --set-version <distro> 2",
    "vm": "a virtual machine: its host can take back memory the guest frees",
    "container": "a container: a cgroup limit binds us; system-wide knobs stay off",
    "bare-metal": "no host to give memory back to: the labs show the guest side only",
}


def _guest_rows(info: guest.GuestInfo) -> list[str]:
    return [
        "Guest",
        _row("kind", info.kind, KIND_MEANING.get(info.kind, "")),
        _row("hypervisor", info.hypervisor or "none", "; ".join(info.hypervisor_evidence)),
        _row("kernel", info.kernel_release or "unknown"),
        _row("container", _yes(bool(info.container)), info.container or ""),
        _row("root", _yes(info.is_root), "knobs need root; reclaimlab never uses sudo"),
    ]


def _memory_rows(info: guest.GuestInfo) -> list[str]:
    m = info.memory
    if m.cgroup_version is None:
        cgroup = "none found"
    else:
        cgroup = f"v{m.cgroup_version}, " + (f"limit {_size(m.cgroup_limit_bytes)}" if m.cgroup_limit_bytes
                                              else "no limit")
    return [
        "Memory",
        _row("MemTotal", _size(m.mem_total_bytes), "in a container this is the host's, not ours"
             if info.container else ""),
        _row("MemAvailable", _size(m.mem_available_bytes), "what can be had without swapping (free's 'available')"),
        _row("memory cgroup", cgroup, m.cgroup_path or ""),
        _row("cgroup usage", _size(m.cgroup_usage_bytes), "charged to this process's cgroup"),
        _row("budget", _size(m.memory_budget_bytes),
             f"most one experiment allocates here ({guest.SAFETY_FRACTION:.0%} + "
             f"{guest.SAFETY_FLOOR_BYTES >> 20} MiB kept back)"),
    ]


def _reporting_rows(info: guest.GuestInfo) -> list[str]:
    if info.free_page_reporting is None:
        state = "unknown"
    else:
        state = "on" if info.free_page_reporting else "off"
    order = info.page_reporting_order
    order_text = "-" if order is None else f"{order} ({_size((PAGE_KIB << order) * 1024)} blocks)"
    return [
        "Giving memory back",
        _row("balloon", info.balloon_driver or "none"),
        _row("free page reporting", state, info.free_page_reporting_reason),
        _row("page_reporting_order", order_text,
             "only free blocks this large are reported (read at run time, not the command line)"
             if order is not None else ""),
    ]


def _host_view_value(spec: host.HostViewSpec, roots: sources.Roots) -> tuple[str, str]:
    """(value, note) from one read of the view; the WSL view asks Windows once (blocks <= 5 s)."""
    if spec.name == host.WslVmmemView.name:
        view = host.WslVmmemView(spec.source, timeout_s=5.0, start=False)
        started_s = time.monotonic()
        try:
            kib = view.query_once()
        except host.InteropError as exc:
            return "no answer", str(exc)
        took = f"{spec.source} answered in {time.monotonic() - started_s:.2f} s"
        return ("no vmmem process", took) if kib is None else (_size(kib * 1024), took)
    with host.open_view(spec, roots, start=False) as view:
        kib = view.read()
    note = f"{spec.column} <- {spec.source}"
    if spec.name == "reported_kib":
        note = f"{guest.REPORTED_KIB_MEANING} ({spec.source})"
    return ("unreadable" if kib is None else _size(kib * 1024)), note


def _host_rows(info: guest.GuestInfo, roots: sources.Roots) -> list[str]:
    rows = ["Host views (never invented: absent where the host says nothing)"]
    for spec in info.host_views:
        rows.append(_row(spec.name, *_host_view_value(spec, roots)))
    for note in info.host_view_notes:
        name, _, why = note.partition(": ")
        rows.append(_row(name, "absent", why))
    return rows


def _knob_rows(info: guest.GuestInfo) -> list[str]:
    rows = ["Knobs (system-wide: root, not shared, and consent)"]
    for name, knob in info.knobs.items():
        rows.append(_row(name, "writable" if knob.writable else "no", knob.reason))
    if info.memory.cgroup_version == 1:
        rows.append(_row("memory.limit_in_bytes", "writable" if info.cgroup_limit_writable else "no",
                         "cgroup v1 stand-in for memory.reclaim"))
    rows.append(_row("shared machine", _yes(bool(info.shared_reason)), info.shared_reason or ""))
    rows.append(_row("consent", "given" if info.consent_given else "not given",
                     "" if info.consent_given else "allow_system_changes=True or RECLAIMLAB_ALLOW_SYSTEM_CHANGES=1"))
    return rows


VERDICT_TEXT = {"live": "live", "live_with_consent": "live, with consent", "recorded": "recorded"}


def _experiment_rows(info: guest.GuestInfo) -> list[str]:
    rows = ["Experiments: what each lab does in mode='auto' (live here, or its recording)"]
    for name, support in info.live_support.items():
        labs = ", ".join(lab[:2] for lab in support.labs)
        label = f"{name} (lab {labs})" if labs else name
        reason = support.reason
        if info.kind == "wsl1":
            reason = "WSL 1 has no guest kernel: see 'kind' above"
        rows.append(_row(label, VERDICT_TEXT[guest.verdict(support, info.consent_given)], reason))
    return rows


def render(info: guest.GuestInfo, roots: sources.Roots) -> str:
    """The human table, one section per concern."""
    where = "" if roots.is_live else f" (tree: {roots.proc}, {roots.sys})"
    sections = [["reclaimlab doctor: what this machine is, and which labs can run live here" + where],
                _guest_rows(info), _memory_rows(info), _reporting_rows(info), _host_rows(info, roots),
                _knob_rows(info), _experiment_rows(info)]
    if info.problems:
        sections.append(["Problems"] + [f"  {p}" for p in info.problems])
    return "\n\n".join("\n".join(s) for s in sections)


def _roots(proc_root: str | None, sys_root: str | None) -> sources.Roots:
    roots = sources.Roots.from_env(proc_root, sys_root)
    for option, path in (("--proc-root", roots.proc), ("--sys-root", roots.sys)):
        if not path.is_dir():
            raise DoctorError(f"{option} {path}: not a directory; point it at a /proc or /sys tree")
    return roots


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the probe as JSON (stable keys) instead of a table.")
@click.option("--proc-root", type=str, default=None, metavar="DIR",
              help="Read /proc from DIR (a captured tree); default /proc or $RECLAIMLAB_PROC_ROOT.")
@click.option("--sys-root", type=str, default=None, metavar="DIR",
              help="Read /sys from DIR (a captured tree); default /sys or $RECLAIMLAB_SYS_ROOT.")
def doctor(as_json: bool, proc_root: str | None, sys_root: str | None) -> None:
    """Show what this guest is, what it may do, and which labs can run live here."""
    roots = _roots(proc_root, sys_root)
    try:
        from ..vm import live_status  # here, not at the top: `reclaimlab --help` stays quick
        from ..experiments.verdicts import probe
        info = probe(roots, vm_status=live_status)
    except (sources.SourceError, procfs.ProcParseError) as exc:
        raise DoctorError(str(exc)) from None
    if as_json:
        click.echo(json.dumps(info.to_dict(), indent=2))
    else:
        click.echo(render(info, roots))

