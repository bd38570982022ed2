"""One result schema for every Recording, local or in the kit's VM: the names, with their units.

    problem = schema.problem(meta, samples.columns)   # None, or a sentence naming the bad key
    meta = schema.upgrade(meta)                        # old result names -> today's (aliases)
    problem = schema.meta_problem(meta)                # None, or a sentence naming a value of the wrong type

Declared here, in one place:
- META: the keys of meta.json (what each holds);
- SAMPLE_COLUMNS: every column of samples.csv, with its unit;
- RESULTS, ALIASES, EVENTS, COLUMNS: per experiment, read from its declaration in `reclaimlab.catalog`
  (its results with units, the names older recordings used, the steps every complete recording of it
  marks, its own sample columns); a recording of an experiment nobody declared is refused.

`recording.save()` refuses a recording that does not fit (RecordingError naming the key, so a new
result is declared here before it is written), and `recording.load()` upgrades old names first.
A result the VM and a local run both measure has one name, e.g. the duration of the level-3 drop
is `drop_caches_3_s` in both (the VM wrote `drop_caches_s` until 2026-11-26).
"""
from __future__ import annotations

import math
import numbers
from datetime import datetime
from typing import Any, Iterable, Mapping

from .. import catalog

# Units: KiB, bytes, s, pages, count (events since boot), ratio, share (0..1), GB/s, Hz, text, list, bool,
# order (a buddy order), blocks (blocks of 2**order pages), any (a free-form object).
UNIT_SUFFIXES = ("_kib", "_bytes", "_s", "_pages", "_count", "_share", "_ratio")
NUMERIC_UNITS = {"KiB", "bytes", "s", "pages", "count", "ratio", "share", "GB/s", "Hz", "order", "MiB", "blocks",
                 "percent"}

META: dict[str, str] = {
    "schema_version": "int: the layout version of the folder (recording.SCHEMA_VERSION)",
    "experiment": "text: the experiment's name (or 'watch', or 'dashboard' for the live view's window)",
    "parameters": "object: the parameters of the run",
    "mode": "text: live or recorded",
    "mode_reason": "text: why the run was live (why a recording is shown is Recording.why_shown, not meta)",
    "complete": "bool: False where the run was interrupted",
    "interrupted": "text: why the run stopped early",
    "kernel_release": "text: uname -r of the guest",
    "uptime_s": "s: the guest's /proc/uptime at the run's start, or null (recordings before 2026-12-07)",
    "guest_kind": "text: what the probe found (vm, wsl2, container, bare-metal, kit-vm, unknown)",
    "hypervisor": "text: the hypervisor the probe found, or null",
    "page_reporting_order": "order: the guest's free page reporting order, or null",
    "page_reporting_params": ("object: /sys/module/page_reporting/parameters at the run's start, upstream's "
                              "and a patched kernel's own (counters such as reported_kib as they stood then), or {}"),
    "cgroup_version": "int: 1 or 2, or null",
    "cgroup_limit_bytes": "bytes: the memory cgroup's limit, or null",
    "sample_hz": "Hz: samples per second",
    "tool_version": "text: reclaimlab's version",
    "python_version": "text",
    "machine": "text: the CPU architecture (platform.machine())",
    "date_utc": "text: ISO 8601 start of the run, UTC",
    "duration_s": "s",
    "results": "object: the experiment's results (RESULTS)",
    "notices": "list: sentences a banner shows (a size scaled down, a missing view)",
    "sampler_cost": "object: what sampling cost this process",
    "cgroup_stat_every_n_samples": "int",
    "sources_skipped": "list: optional sources that could not be read, and why",
    "source_errors": "object: errors of extra sources",
    "stopped_by": "text: what ended a `reclaimlab watch` recording",
    "window_s": "s: the live dashboard's window (its Recording holds only the last window_s)",
    "page_size_bytes": ("bytes: the guest's base page (4096 on x86-64); a recording without it (or "
                        "page_size_kib) was made with 4096 (provenance.page_bytes reads it)"),
    "workload_cgroup": "object: the experiment's own memory cgroup (version, path)",
    "physmap_unavailable": ("text: why the recording holds no maps of physical memory (physmap.json), e.g. "
                            "/proc/kpageflags needs root"),
    # the kit's VM
    "accel_reason": "text", "free_page_reporting": "text: on or off",
    "page_size_kib": "KiB",  # the kit's VM's base page, in its recordings made before page_size_bytes
    "guest_thp": "text", "guest_disk": "bool", "guest_mem_mib": "MiB", "guest_cpus": "int",
    "boot_s": "s", "host_view": "text: what the host-side columns measure",
    "hostmap_unavailable": ("text: why the maps hold the guest's side only (no host map of QEMU's RAM), e.g. "
                            "a guest above 3 GiB"),
    "host_kernel_release": "text", "guest_notes": "list",
    "host_load": ("object: how busy the host was: cpus, and /proc/loadavg's 1-minute figure at the start and the "
                  "end (loadavg_1min_start, loadavg_1min_end; QEMU under TCG adds about 1)"),
    "guest_kernel_source": "text: where the guest's kernel came from (this machine's /boot, or a packaged one)",
}

SAMPLE_COLUMNS: dict[str, str] = {
    "t_s": "s",
    "guest_t_s": "s",
    # /proc/meminfo
    "mem_total_kib": "KiB", "mem_free_kib": "KiB", "mem_available_kib": "KiB", "buffers_kib": "KiB",
    "cached_kib": "KiB", "anon_kib": "KiB", "shmem_kib": "KiB", "slab_reclaimable_kib": "KiB",
    "slab_unreclaimable_kib": "KiB", "anon_huge_kib": "KiB", "dirty_kib": "KiB", "writeback_kib": "KiB",
    "mapped_kib": "KiB",
    # /proc/vmstat
    "compact_stall_count": "count", "compact_success_count": "count", "compact_fail_count": "count",
    "compact_migrate_scanned_pages": "pages", "compact_free_scanned_pages": "pages", "compact_isolated_pages": "pages",
    "compact_daemon_wake_count": "count",
    # this process's memory cgroup
    "cgroup_usage_bytes": "bytes", "cgroup_file_bytes": "bytes", "cgroup_anon_bytes": "bytes",
    # the host's side
    "host_reported_kib": "KiB", "host_vm_working_set_kib": "KiB",
    "host_vm_rss_kib": "KiB", "host_vm_rss_anon_kib": "KiB", "reportable_free_kib": "KiB",
    # the experiment's own workload
    "workload_rss_anon_kib": "KiB",        # the workload child's RssAnon
    "workload_rss_kib": "KiB",             # the workload child's VmRSS (app-cache: the SQLite app)
    "workload_cgroup_bytes": "bytes",      # the experiment's own memory cgroup's usage
    "workload_file_resident_kib": "KiB",   # the page-cache file's pages resident in memory (mincore)
}

COMMON_RESULTS: dict[str, str] = {
    "requested_bytes": "bytes", "size_bytes": "bytes", "notices": "list",
    # free pages on the per-CPU lists (/proc/zoneinfo) at each buddyinfo snapshot, by its label
    "per_cpu_free_kib": "KiB by label",
    # a run in a reused kit's VM: what its clean start did (vm/session.py fresh); None on the boot's first run
    "clean_start": "object",
}

# Recordings that are no experiment's: `reclaimlab watch` and the live dashboard's window (no results).
OTHER_RECORDINGS = {"watch": "reclaimlab watch", "dashboard": "the live dashboard's window",
                    "sampler": "a Sampler run with no experiment named (its default)"}


class _Declared(Mapping):
    """{experiment: its declared field} read from the catalog at each access, so a declaration made
    after import (a test's own experiment) is in the schema at once; `others` for the non-experiments."""

    def __init__(self, field: str, others: Any):
        self._field, self._others = field, others

    def _table(self) -> dict[str, Any]:
        table = {name: getattr(exp, self._field) for name, exp in catalog.REGISTRY.items()}
        if self._others is not None:
            table.update({name: self._others for name in OTHER_RECORDINGS})
        return table

    def __getitem__(self, key: str) -> Any:
        return self._table()[key]

    def __iter__(self):
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


# Per experiment, from its declaration (catalog): every key of meta["results"] with its unit
# (COMMON_RESULTS apply to all); the names older recordings used and the name each one is now (where a
# recording holds both, today's wins); the events every complete recording of it holds, local and in the
# kit's VM alike (each lab times its story from them; later steps and `end` may be missing from a recording
# cut short, which the labs say; these first steps may not); its own sample columns with their units.
RESULTS: Mapping[str, dict[str, str]] = _Declared("results", {})
ALIASES: Mapping[str, dict[str, str]] = _Declared("aliases", None)
EVENTS: Mapping[str, tuple[str, ...]] = _Declared("events", None)
COLUMNS: Mapping[str, dict[str, str]] = _Declared("columns", {})

# Meta keys that must hold a value (never null) wherever they appear: load() relies on them.
META_NOT_NULL = ("schema_version", "experiment", "parameters", "mode", "complete", "kernel_release",
                 "guest_kind", "sample_hz", "tool_version", "date_utc", "results")


def unit_of_result(experiment: str, key: str) -> str | None:
    return {**COMMON_RESULTS, **RESULTS.get(experiment, {})}.get(key)


def upgrade(meta: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `meta` whose results use today's names (old names read through ALIASES)."""
    out = dict(meta)
    results = out.get("results")
    aliases = ALIASES.get(str(out.get("experiment")), {})
    if isinstance(results, Mapping) and aliases:
        renamed = {}
        for key, value in results.items():
            new = aliases.get(key)
            if new is None:
                renamed[key] = value
            elif new not in results:
                renamed[new] = value
        out["results"] = renamed
    return out


# A number in a recording's meta or results: what a run can measure fits 64 bits; beyond that it was forged,
# and arithmetic on it would overflow a float (10**400) or exhaust memory (2 ** 10**30 for an order).
NUMBER_BOUND = 2 ** 64
MIN_SAMPLE_HZ = 1 / 3600  # sampling.sampler.MIN_HZ: one sample an hour (load() sizes the events' slack by it)
MAX_BUDDY_ORDER = 31  # Linux keeps orders 0 to MAX_PAGE_ORDER (10 on x86, at most 15 on today's kernels)


def _number(value: Any) -> bool:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    if isinstance(value, numbers.Integral):
        return -NUMBER_BOUND < value < NUMBER_BOUND
    return math.isfinite(value) and abs(value) < NUMBER_BOUND


def _fits(unit: str, value: Any) -> bool:
    if value is None:
        return True  # "not measured" is allowed for every result
    if unit == "order":
        return _number(value) and float(value).is_integer() and 0 <= value <= MAX_BUDDY_ORDER
    if unit in NUMERIC_UNITS or unit == "int":
        return _number(value)
    if unit == "KiB by label":
        return isinstance(value, Mapping) and all(isinstance(k, str) and _number(v) for k, v in value.items())
    if unit == "list":
        return isinstance(value, (list, tuple))
    if unit == "text":
        return isinstance(value, str)
    if unit == "bool":
        return isinstance(value, bool)
    if unit == "object":
        return isinstance(value, Mapping)
    return True


def _shown(unit: str, value: Any) -> str:
    """`value` as a message shows it (cut short), with the bound it broke where it is a number out of range."""
    text = repr(value)
    text = text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if unit == "order":
            return f"{text} (a buddy order is a whole number from 0 to {MAX_BUDDY_ORDER})"
        if unit in NUMERIC_UNITS or unit == "int":
            return f"{text} (a measured amount is finite and below 2**64)"
    return text


def _utc_timestamp(text: str) -> bool:
    """True for an ISO 8601 date and time such as 2026-11-26T02:55:33Z (Python 3.10 does not read 'Z')."""
    try:
        datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        return False
    return "T" in text


def meta_problem(meta: Mapping[str, Any]) -> str | None:
    """None when every declared meta key holds a value of its declared type, else one sentence naming it.

    The type is the first word of its META entry (bool, object, text, list, int or a numeric unit);
    null means "not known" except for META_NOT_NULL.
    """
    for key, what in META.items():
        if key not in meta:
            continue
        value, unit = meta[key], what.split(":")[0].strip()
        if value is None:
            if key in META_NOT_NULL:
                return f"meta key {key!r} is null; it must be {what}"
            continue
        if not _fits(unit, value):
            return f"meta key {key!r} must be {what}, found {_shown(unit, value)}"
    if "date_utc" in meta and not _utc_timestamp(meta["date_utc"]):
        return f"meta key 'date_utc' must be an ISO 8601 date and time (e.g. 2026-11-26T02:55:33Z), found {meta['date_utc']!r}"
    hz = meta.get("sample_hz")
    if hz is not None and not (math.isfinite(hz) and hz >= MIN_SAMPLE_HZ):
        return (f"meta key 'sample_hz' must be a number of samples per second of at least one an hour "
                f"({MIN_SAMPLE_HZ:.6g}), as the sampler takes, found {hz!r}")
    return None


def problem(meta: Mapping[str, Any], columns: Iterable[str]) -> str | None:
    """None when meta and the sample columns fit the schema, else one sentence naming the key and the fix."""
    experiment = meta.get("experiment")
    if experiment not in RESULTS:
        return (f"experiment {experiment!r} is not declared (known: {', '.join(RESULTS)}); declare it with "
                f"reclaimlab.catalog.declare(Experiment(...)) before saving or loading its recordings")
    unknown_meta = sorted(k for k in meta if k not in META)
    if unknown_meta:
        return (f"meta key(s) {', '.join(unknown_meta)} are not declared in reclaimlab.recording.schema.META; "
                f"declare them there (with what they hold) before writing them")
    own = COLUMNS.get(str(experiment), {})
    unknown_cols = [c for c in columns if c not in SAMPLE_COLUMNS and c not in own]
    if unknown_cols:
        return (f"sample column(s) {', '.join(unknown_cols)} are not declared in reclaimlab.recording.schema.SAMPLE_COLUMNS "
                f"nor in {experiment}'s declaration (columns=); declare each with its unit there")
    results = meta.get("results")
    if results is None:
        return None
    if not isinstance(results, Mapping):
        return f"results must be an object, found {type(results).__name__}"
    for key, value in results.items():
        unit = unit_of_result(str(experiment), key)
        if unit is None:
            old = ALIASES.get(str(experiment), {}).get(key)
            hint = f" (an old name: write {old!r})" if old else ""
            return (f"result {key!r} of {experiment} is not declared in reclaimlab.recording.schema.RESULTS{hint}; "
                    f"declare it with its unit in {experiment}'s declaration (reclaimlab.catalog, results=)")
        if not _fits(unit, value):
            return f"result {key!r} of {experiment} must be {unit}, found {_shown(unit, value)}"
    return None
