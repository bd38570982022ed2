"""The guest report in a lab: what `reclaimlab doctor` finds on this machine, as HTML tables.

Which experiments run live comes from the probe's one verdict (`probe.guest.entry_verdict`), the
same the doctor prints; only the words differ (this table asks "live here?").
"""
from __future__ import annotations

import os
from typing import Any, Sequence

from ..present.findings._host_now import FRESH_BOOT_S, OUTSIDE_MIN_KIB
from ..probe import consent
from ..probe.guest import entry_verdict
from ..units import format_size
from . import context, output
from .output import box as _box, escape as _e
from .tables import table_html

# The probe's verdict -> the answer to "live here?" (the doctor says live / live, with consent / recorded).
LIVE_HERE = {"live": "yes", "live_with_consent": "yes, with consent", "recorded": "no"}


def _size(size_bytes: int | None) -> str:
    return format_size(size_bytes, missing="—")


def _yes(value: Any) -> str:
    return "yes" if value is True else "no" if value is False else "cannot tell"


def _generic(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return _yes(value) if value is not None else "—"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_generic(v)}" for k, v in value.items()) or "—"
    if isinstance(value, (list, tuple)):
        return ", ".join(_generic(v) for v in value) or "—"
    return str(value)


def guest_rows(info: Any) -> list[tuple[str, str]]:
    """(finding, value) rows from the guest probe (`GuestInfo` or its `to_dict()`), in plain words.

    Knows the probe's schema 1 keys; any other keys are listed as they are.
    """
    d = info.to_dict() if hasattr(info, "to_dict") else dict(info)
    rows: list[tuple[str, str]] = []
    known = set()

    def add(label: str, keys: Sequence[str], text: str) -> None:
        known.update(keys)
        rows.append((label, text))

    if "kind" in d:
        add("What this is", ["kind", "kind_reason"],
            f"{d['kind']}" + (f" ({d['kind_reason']})" if d.get("kind_reason") else ""))
    if "hypervisor" in d:
        add("Hypervisor", ["hypervisor", "hypervisor_evidence"], d["hypervisor"] or "none detected")
    if "kernel_release" in d:
        add("Kernel", ["kernel_release"], d["kernel_release"] or "?")
    if "container" in d:
        add("Container", ["container"], d["container"] or "no")
    if "is_root" in d:
        add("Running as root", ["is_root"], _yes(d["is_root"]))
    if "balloon_driver" in d or "virtio_balloon" in d:
        add("Balloon driver", ["balloon_driver", "virtio_balloon"], d.get("balloon_driver") or "none")
    if "free_page_reporting" in d:
        text = _yes(d["free_page_reporting"])
        if d.get("page_reporting_order") is not None:
            order = d["page_reporting_order"]
            text += f", order {order} (blocks of {_size(2 ** order * 4096)} and larger)"
        if d.get("free_page_reporting_reason"):
            text += f": {d['free_page_reporting_reason']}"
        add("Free page reporting", ["free_page_reporting", "free_page_reporting_reason", "page_reporting_order",
                                    "page_reporting_params"], text)
    if "host_views" in d:
        views = [v.get("name", "?") + (f" ({v['source']})" if v.get("source") else "")
                 + (" - a running total since boot of what this guest handed back" if v.get("name") == "reported_kib"
                    else "") for v in d["host_views"]]
        notes = list(d.get("host_view_notes") or [])
        add("The host's side, seen from here", ["host_views", "host_view_notes"],
            "; ".join(views + notes) if views or notes else "none")
    if "memory" in d and isinstance(d["memory"], dict):
        m = d["memory"]
        text = f"{_size(m.get('mem_total_bytes'))} in total, {_size(m.get('mem_available_bytes'))} available"
        if m.get("cgroup_limit_bytes"):
            text += f", cgroup limit {_size(m['cgroup_limit_bytes'])}"
        if m.get("memory_budget_bytes") is not None:
            text += f"; experiments may allocate up to {_size(m['memory_budget_bytes'])}"
        add("Memory", ["memory"], text + _outside_buddy(m, d.get("uptime_s")) +
            _below_order(m, d.get("page_reporting_order")))
    if "knobs" in d and isinstance(d["knobs"], dict):
        parts = [f"{name}: {'writable' if k.get('writable') else 'no'}"
                 + ("" if k.get("writable") else f" ({k.get('reason')})") for name, k in d["knobs"].items()]
        add("System-wide knobs", ["knobs", "cgroup_limit_writable"], "; ".join(parts) or "none")
    if "shared_reason" in d:
        add("Shared machine", ["shared_reason"], d["shared_reason"] or
            "not marked as shared (RECLAIMLAB_SHARED unset, not a container); other users' programs are not looked for")
    if "consent_given" in d:
        add("System-wide changes allowed by the environment", ["consent_given"],
            f"{_yes(d['consent_given'])} ({consent.ALLOW_ENV})")
    if d.get("problems"):
        add("Could not read", ["problems"], "; ".join(d["problems"]))
    skip = known | {"schema_version", "live_support", "uptime_s", "glossary", "problems", "proc_root", "sys_root", "scratch_dir", "scratch_free_bytes",
                    "kvm_usable", "qemu_path", "kit_vm", "refusal"}
    rows += [(k.replace("_", " "), _generic(v)) for k, v in d.items() if k not in skip]
    return rows


# Upstream MemFree outside the buddy and per-CPU lists is about 0; the findings' threshold says when it is worth saying.
OUTSIDE_MIN_BYTES = OUTSIDE_MIN_KIB * 1024


def _outside_buddy(m: dict, uptime_s: float | None = None) -> str:
    """Where much of MemFree is in neither the buddy nor the per-CPU lists: how much, from this probe's reads."""
    free, buddy = m.get("mem_free_bytes"), m.get("buddy_free_bytes")
    if free is None or buddy is None or free - buddy < OUTSIDE_MIN_BYTES:
        return ""
    if uptime_s is not None and uptime_s >= FRESH_BOOT_S:
        why = f"up {uptime_s / 3600:.1f} h (/proc/uptime), so not a fresh boot's late hand-over"
    else:
        why = "a kernel that hands memory to the buddy allocator late leaves it so after boot"
    return (f". Of MemFree's {_size(free)}, the buddy allocator's free lists and the per-CPU lists held {_size(buddy)} "
            f"(/proc/buddyinfo, /proc/zoneinfo): the other **{_size(free - buddy)}** sat in neither (why is not measured "
            f"here; {why}). Free page reporting walks only those lists")


# Free memory below the reporting order worth a sentence, and the share of the buddy lists' free memory that
# calls a guest long-used (here: 5 % freshly aged-out, 20-28 % after long use or ci/age-guest, 2026-12-07).
BELOW_ORDER_MIN_BYTES = 512 * 2**20
LONG_USED_SHARE = 0.15


def _below_order(m: dict, order: int | None) -> str:
    """How much of the buddy lists' free memory sat in blocks below the reporting order, from this probe's read."""
    below, buddy = m.get("buddy_below_order_bytes"), m.get("buddy_free_bytes")
    if below is None or not buddy or order is None or below < BELOW_ORDER_MIN_BYTES:
        return ""
    share = below / buddy
    tail = ": as on a guest in use a long time, memory freed now may land there" if share >= LONG_USED_SHARE else ""
    return (f". **{_size(below)}** of the free lists' memory ({share:.0%}) sat in blocks below order {order} "
            f"(/proc/buddyinfo), which free page reporting never hands over{tail}")


def _needs_consent(name: str) -> bool:
    """From the experiment's declaration (an old probe's (live, reason) pair does not say)."""
    from .. import catalog
    return name in catalog.REGISTRY and catalog.get(name).needs_consent


def live_rows(info: Any) -> list[tuple[str, str, str]]:
    """(experiment, live here?, why) rows from the probe's live_support."""
    d = info.to_dict() if hasattr(info, "to_dict") else dict(info)
    consent_given = bool(d.get("consent_given"))
    return [(name, LIVE_HERE.get(entry_verdict(entry, consent_given, _needs_consent(name)), "no"),
             entry.get("reason", "") if isinstance(entry, dict) else entry[1])
            for name, entry in (d.get("live_support") or {}).items()]


def show_guest(ctx: Any = None) -> None:
    """Display what `reclaimlab doctor` finds here (a LabContext's probe, or a new one): the findings, then
    which experiments can run live."""
    info, note = (ctx.guest, ctx.guest_note) if ctx is not None else context.probe_guest()
    if info is None:
        output.display_html(_box("notice", f"No guest findings to show: {_e(note)}"))
        return
    text = table_html(guest_rows(info), header=("finding", "on this machine"),
                      caption="What reclaimlab found out about this machine")
    live = live_rows(info)
    if live:
        text += "<br>" + table_html(live, header=("experiment", "live here?", "why"),
                                    caption="Which experiments can run live here")
    output.display_html(text)


def env_summary() -> dict[str, str]:
    """The environment variables the kit reads, and their values here (unset: '—')."""
    return {name: os.environ.get(name, "—") for name in (consent.ALLOW_ENV, consent.SHARED_ENV,
                                                         "RECLAIMLAB_DATA", "RECLAIMLAB_PROC_ROOT")}
