"""One result schema for every Recording, local or in the kit's VM: the names, with their units.

    problem = schema.problem(meta, samples.columns)   # None, or a sentence naming the bad key
    meta = schema.upgrade(meta)                        # old result names -> today's (aliases)
    problem = schema.meta_problem(meta)                # None, or a sentence naming a value of the wrong type

Declared here, in one place:
- META: the keys of meta.json (what each holds);
- SAMPLE_COLUMNS: every column of samples.csv, with its unit;
- RESULTS: per experiment, every key of meta["results"], with its unit (COMMON_RESULTS apply to all);
- ALIASES: per experiment, the names older recordings used, and the name each one is now;
- EVENTS: per experiment, the steps every complete recording of it marks (what its lab needs).

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
    "workload_cgroup": "object: the experiment's own memory cgroup (version, path)",
    "physmap_unavailable": ("text: why the recording holds no maps of physical memory (physmap.json), e.g. "
                            "/proc/kpageflags needs root"),
    # the kit's VM
    "accel_reason": "text", "free_page_reporting": "text: on or off", "page_size_kib": "KiB",
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
    "slab_unreclaimable_kib": "KiB", "anon_huge_kib": "KiB", "dirty_kib": "KiB",
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
}

RESULTS: dict[str, dict[str, str]] = {
    "calloc-reclaim": {
        "calloc_s": "s", "touch_s": "s", "free_s": "s",
        # local: the child's own view
        "child_rss_anon_before_kib": "KiB", "calloc_child_rss_anon_kib": "KiB", "touch_child_s": "s",
        "touch_gb_per_s": "GB/s", "touch_child_rss_anon_kib": "KiB", "free_child_s": "s",
        "free_child_rss_anon_kib": "KiB", "reported_after_free_kib": "KiB", "observed_after_free_s": "s",
        # the kit's VM: QEMU's resident memory
        "host_rss_before_kib": "KiB", "touch_pages": "pages", "free_host_peak_kib": "KiB",
        "touched_host_kib": "KiB", "free_host_back_s": "s", "free_host_rss_after_kib": "KiB",
        "free_host_returned_fraction": "share", "free_observed_s": "s",
        # the workload's own memory cgroup (where the kit may create one)
        "workload_cgroup_version": "int", "cgroup_before_kib": "KiB", "calloc_cgroup_kib": "KiB",
        "touch_cgroup_kib": "KiB", "free_cgroup_kib": "KiB",
    },
    "refault": {
        "calloc_s": "s", "calloc_hot_s": "s", "calloc_cold_s": "s",
        "touch_first_s": "s", "touch_hot_s": "s", "touch_cold_s": "s",
        "free_first_s": "s", "free_hot_s": "s", "free_cold_s": "s",
        "first_touch_gb_per_s": "GB/s", "hot_touch_gb_per_s": "GB/s", "cold_touch_gb_per_s": "GB/s",
        "reported_before_cold_kib": "KiB", "waited_for_report_s": "s", "workload_cgroup_version": "int",
        "hot_host_peak_kib": "KiB", "hot_host_back_s": "s", "hot_host_rss_after_kib": "KiB",
        "hot_host_returned_fraction": "share", "hot_observed_s": "s",
    },
    "page-cache": {
        "write_file_s": "s", "sync_s": "s", "read_file_s": "s", "read_file_again_s": "s",
        "read_file_cached_s": "s", "read_file_cold_s": "s", "rm_file_s": "s",
        "walk_fs_s": "s", "walk_fs_again_s": "s",
        "drop_caches_1_s": "s", "drop_caches_2_s": "s", "drop_caches_3_s": "s",
        "drop_caches_1_sync_s": "s", "drop_caches_2_sync_s": "s", "drop_caches_3_sync_s": "s",
        "file_bytes": "bytes",
        "workload_cgroup_version": "int",
        "drop_caches_host_peak_kib": "KiB", "drop_caches_host_back_s": "s",
        "drop_caches_host_rss_after_kib": "KiB", "drop_caches_host_returned_fraction": "share",
        "drop_caches_observed_s": "s",
    },
    "app-cache": {
        "build_db_s": "s", "query_scan_s": "s", "query_lookups_s": "s", "drop_caches_1_s": "s",
        "drop_caches_1_sync_s": "s", "db_bytes": "bytes", "db_rows": "count", "app_rss_max_kib": "KiB",
        "sqlite_cache_kib": "KiB",
    },
    "compaction": {
        "fragment_s": "s", "compact_memory_s": "s", "release_s": "s", "unfragment_s": "s",
        "fragment_freed_pages": "pages", "fragment_held_pages": "pages", "fragment_fill_bytes": "bytes",
        "reported_while_held_kib": "KiB", "page_reporting_order": "order",
        "host_rss_before_kib": "KiB", "fragmented_host_rss_kib": "KiB", "compacted_host_rss_kib": "KiB",
        "compaction_returned_kib": "KiB", "fragment_host_rss_kib": "KiB", "fragmented_returned_kib": "KiB",
        # the fragmenter's own kept pages (their PFNs, /proc/<pid>/pagemap), just before and after compact_memory
        "held_blocks_order": "order", "fragment_held_blocks": "blocks", "compacted_held_blocks": "blocks",
        "compact_moved_held_pages": "pages", "compact_vacated_blocks": "blocks",
    },
    "auto-reclaim": {
        "policy": "text", "method": "text", "time_scale": "ratio", "cgroup_version": "int",
        "reclaimed_kib": "KiB", "actions": "list", "errors": "list", "fill_cache_s": "s",
        "reclaim_method_available": "text", "reclaim_requests": "list", "report_settled_s": "s",
        "idle_share": "share", "guest_busy_share_baseline": "share", "page_reporting_order": "order",
        # every poll of the daemon: t_s, busy_share/user_share (of all CPUs), interval_idle, idle, actions,
        # and for the pressure variant psi_some_avg10, refault_file_pages, refault_delta_pages, zone,
        # floor_bytes, reclaim_bytes
        "polls": "list", "nprocs": "int",
        "gate_polls": "int", "gate_idle_polls": "int", "gate_limit_share": "share",
        "gate_busy_share_min": "share", "gate_busy_share_median": "share", "gate_busy_share_max": "share",
        "psi_some_avg10_max": "percent", "refault_pages_total": "pages", "refault_delta_pages_max": "pages",
        "pressure_zones": "list",
        # the busy loop beside the page cache (parameter busy > 0): its own CPU, a share of ONE CPU
        "busy_loop_cpu_share": "share", "busy_loop_wakes": "int", "busy_loop_late_wakes": "int",
        # in the kit's VM (wsl/vm_autoreclaim.py): the root cgroup's real memory.reclaim, the gate at every poll
        "host_rss_before_kib": "KiB", "host_rss_idle_kib": "KiB", "host_rss_after_kib": "KiB",
        "cache_idle_kib": "KiB", "cache_after_kib": "KiB", "swappiness_refused": "bool", "guest_swap_kib": "KiB",
        "reclaim_eagain": "count", "poll_busy_shares": "list",  # gate_polls, gate_idle_polls: above
        "poll_user_shares": "list", "action_longest_s": "s",
        # the maps of physical memory at the idle mark and after the tail (vm.guestmap.read_maps), by label
        "guest_map_file_kib": "KiB by label", "guest_map_reported_kib": "KiB by label",
        "host_map_resident_kib": "KiB by label", "maps_reported_and_empty_kib": "KiB by label",
    },
    "watch": {},
    "dashboard": {},
}

# Old name -> today's name, per experiment. Where a recording holds both, today's wins (the old one
# measured the same thing another way, e.g. local `first_touch_s` timed by the child).
ALIASES: dict[str, dict[str, str]] = {
    "refault": {"first_touch_s": "touch_first_s", "hot_touch_s": "touch_hot_s", "cold_touch_s": "touch_cold_s"},
    "page-cache": {"drop_caches_s": "drop_caches_3_s"},
    "compaction": {"compact_s": "compact_memory_s"},
}


# The events every complete recording of an experiment holds, local and in the kit's VM alike (each lab
# times its story from them). Later steps and `end` may be missing from a recording cut short, which
# the labs say; these first steps may not.
EVENTS: dict[str, tuple[str, ...]] = {
    "calloc-reclaim": ("calloc", "touch", "free"),
    "refault": ("touch", "free"),
    "page-cache": ("write_file", "read_file", "drop_caches"),
    "app-cache": ("build_db", "query"),
    "compaction": ("fragment",),
    "auto-reclaim": ("fill_cache",),
}

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
        # Not one of the kit's experiments (a test's or a tool's own recording): only its columns are checked.
        bad = [c for c in columns if c not in SAMPLE_COLUMNS and not c.endswith(UNIT_SUFFIXES)]
        return (f"sample column(s) {', '.join(bad)} have no unit in their name ({', '.join(UNIT_SUFFIXES)})"
                if bad else None)
    unknown_meta = sorted(k for k in meta if k not in META)
    if unknown_meta:
        return (f"meta key(s) {', '.join(unknown_meta)} are not declared in reclaimlab.recording.schema.META; "
                f"declare them there (with what they hold) before writing them")
    unknown_cols = [c for c in columns if c not in SAMPLE_COLUMNS]
    if unknown_cols:
        return (f"sample column(s) {', '.join(unknown_cols)} are not declared in reclaimlab.recording.schema.SAMPLE_COLUMNS; "
                f"declare each with its unit there")
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
                    f"declare it with its unit there")
        if not _fits(unit, value):
            return f"result {key!r} of {experiment} must be {unit}, found {_shown(unit, value)}"
    return None
