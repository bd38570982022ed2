"""The metadata every Recording carries: what ran, where, when, with which tool.

Enough to judge a recording made elsewhere (kernel, guest kind, hypervisor, page
reporting order, cgroup limit, rate, versions, UTC date) and nothing personal: no
user name, host name, home folder or distro name goes in.
"""
from __future__ import annotations

import datetime as _dt
import platform
from typing import Any, Mapping

from .. import __version__
from ..probe import sources
from .recording import SCHEMA_VERSION

UNKNOWN = "unknown"


def utc_now_iso() -> str:
    """Now in ISO 8601 UTC to the second, e.g. 2025-11-25T18:47:03Z."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def kernel_release(roots: sources.Roots) -> str:
    """sources.kernel_release, else this machine's (live) or UNKNOWN (a captured tree without the file)."""
    return sources.kernel_release(roots) or (platform.release() if roots.is_live else UNKNOWN)


def _guest_fields(guest_info: Any, roots: sources.Roots) -> dict[str, Any]:
    """guest_kind, hypervisor, page_reporting_order and all page_reporting parameters, from the guest probe
    where it answers."""
    info: Mapping[str, Any] = {}
    if guest_info is None:
        from ..probe.guest import probe
        try:
            guest_info = probe(roots)
        except (OSError, ValueError):  # a captured tree the probe cannot read
            guest_info = None
    if guest_info is not None:
        info = guest_info.to_dict() if hasattr(guest_info, "to_dict") else dict(guest_info)
    order = info.get("page_reporting_order")
    # Read it ourselves when the probe did not: the module parameter, not the kernel command line
    # (the two can differ: seen on the kit's dev guest, 2026-11).
    if order is None:
        order = sources.page_reporting_order(roots)
    # Every parameter, not only the order: a patched kernel's own (free_bitmap_enable, max_waiting_mib,
    # min_free_ms on this project's machines) change how reporting behaves, and a reader must see them.
    params = info.get("page_reporting_params")
    if not isinstance(params, Mapping):
        params = sources.page_reporting_params(roots)
    return {
        "guest_kind": info.get("kind") or UNKNOWN,
        "hypervisor": info.get("hypervisor") or None,
        "page_reporting_order": order,
        "page_reporting_params": dict(params),
    }


def _cgroup_fields(roots: sources.Roots) -> dict[str, Any]:
    cgroup = sources.memory_cgroup(roots)
    if cgroup is None:
        return {"cgroup_version": None, "cgroup_limit_bytes": None}
    try:
        limit = cgroup.limit_bytes()
    except (sources.SourceError, ValueError):
        limit = None
    return {"cgroup_version": cgroup.version, "cgroup_limit_bytes": limit}


def local_guest_facts(roots: sources.Roots | None = None, guest_info: Any = None) -> dict[str, Any]:
    """What this guest is, for a local run's meta: kernel, guest kind, hypervisor, reporting order, cgroup.

    guest_info: a guest.GuestInfo (or its to_dict()) when the caller has one; else the
    probe is asked, and where it cannot answer the guest kind is "unknown".
    """
    roots = roots or sources.Roots.from_env()
    # uptime: a guest up for hours is not freshly booted (findings/_host_now tells the two apart by it)
    return {"kernel_release": kernel_release(roots), "page_size_bytes": sources.page_bytes(),
            "uptime_s": sources.uptime_s(roots), **_guest_fields(guest_info, roots), **_cgroup_fields(roots)}


def page_bytes(meta: Mapping[str, Any]) -> int:
    """The base page of the guest a recording was made on: its meta's page_size_bytes (or the kit's VM's
    older page_size_kib); a recording that states neither was made with 4096-byte pages."""
    stated = meta.get("page_size_bytes")
    if stated is None and meta.get("page_size_kib") is not None:
        stated = meta["page_size_kib"] * 1024
    return int(stated) if stated else sources.DEFAULT_PAGE_BYTES


def page_kib(meta: Mapping[str, Any]) -> int:
    """page_bytes(meta) in KiB (buddy blocks and page counts are multiplied by it)."""
    return page_bytes(meta) // 1024


def build_meta(experiment: str, parameters: Mapping[str, Any] | None, mode: str, sample_hz: float,
               guest_info: Any = None, roots: sources.Roots | None = None, *,
               guest_facts: Mapping[str, Any] | None = None, run_facts: Mapping[str, Any] | None = None,
               date_utc: str | None = None) -> dict[str, Any]:
    """The meta dict of a Recording: the one place it is built (recorder.Recorder calls it once).

    guest_facts: what the guest is (kernel_release, guest_kind, hypervisor, ...), from the
    producer that knows it (the kit's VM says it itself); None: this guest's, from
    local_guest_facts(roots, guest_info). run_facts: what the run found (complete,
    interrupted, results, notices, sampler_cost, ...). date_utc: the run's start (default now).
    """
    if guest_facts is None:
        guest_facts = local_guest_facts(roots, guest_info)
    meta: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "experiment": experiment,
        "parameters": dict(parameters or {}),
        "mode": mode,
        "complete": True,
    }
    meta.update(guest_facts)
    meta.update({
        "sample_hz": float(sample_hz),
        "tool_version": __version__,
        "python_version": platform.python_version(),
        "machine": platform.machine() or UNKNOWN,
        "date_utc": date_utc or utc_now_iso(),
    })
    meta.update(run_facts or {})
    return meta
