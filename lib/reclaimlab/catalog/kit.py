"""The kit's experiments, each declared once (see declaration.py for what every field means)."""
from __future__ import annotations

from .declaration import Experiment, declare

# the kit's VM run's common timings (vm.experiments)
VM_COMMON = {"baseline_s": 1.0, "tail_s": 1.0, "sample_hz": 10.0}

# ---------------------------------------------------------------- calloc-reclaim
CALLOC_RECLAIM_RESULTS = {
    "calloc_s": "s", "touch_s": "s", "free_s": "s",
    # local: the child's own view
    "child_rss_anon_before_kib": "KiB", "calloc_child_rss_anon_kib": "KiB", "touch_child_s": "s",
    "touch_gb_per_s": "GB/s", "touch_child_rss_anon_kib": "KiB", "free_child_s": "s",
    "free_child_rss_anon_kib": "KiB", "reported_after_free_kib": "KiB", "observed_after_free_s": "s",
    # the kit's VM: QEMU's resident memory
    "host_rss_before_kib": "KiB", "touch_pages": "pages", "free_host_peak_kib": "KiB",
    "touched_host_kib": "KiB", "free_host_back_s": "s", "free_host_rss_after_kib": "KiB",
    "free_host_returned_fraction": "share", "free_observed_s": "s",
    "age_held_pages": "pages", "age_fragment_s": "s", "age_write_file_s": "s", "age_unfragment_s": "s",
    "thp_enabled": "text",
    # the workload's own memory cgroup (where the kit may create one)
    "workload_cgroup_version": "int", "cgroup_before_kib": "KiB", "calloc_cgroup_kib": "KiB",
    "touch_cgroup_kib": "KiB", "free_cgroup_kib": "KiB",
}

declare(Experiment(
    "calloc-reclaim", "calloc a buffer, touch it, free it, and watch the host take the pages back",
    defaults={"size": "3GB", "hold_s": 2.0, "observe_s": 25.0, "baseline_s": 1.0, "tail_s": 2.0,
              "sample_hz": 10.0, "huge_pages": False},
    units={"huge_pages": "bool", "thp_enabled": "text: always, madvise or never ('' leaves the guest's)"},
    # VM: age_bytes: before the run, age the guest as long use does (vm.experiments.age): map and touch that much,
    # free every other page, fill those holes with a file's page cache, then free the rest: single free pages
    # between cached ones, below any reporting order (0: a freshly booted guest, as shipped).
    # thp_enabled: the guest's transparent_hugepage/enabled for the run ("": its kernel's, Debian's "always": the
    # buffer then takes whole 2 MiB blocks; "never": 4 KiB pages, which take the smallest free blocks first).
    vm_defaults={**VM_COMMON, "hold_s": 1.0, "observe_s": 15.0, "age_bytes": 0, "thp_enabled": ""},
    needs=("memory",), wants=("host_view",), events=("calloc", "touch", "free"),
    labs=("01_calloc_and_reclaim",), findings=("calloc_reclaim",),
    results=CALLOC_RECLAIM_RESULTS))

# ---------------------------------------------------------------- refault
REFAULT_RESULTS = {
    "calloc_s": "s", "calloc_hot_s": "s", "calloc_cold_s": "s",
    "touch_first_s": "s", "touch_hot_s": "s", "touch_cold_s": "s",
    "free_first_s": "s", "free_hot_s": "s", "free_cold_s": "s",
    "first_touch_gb_per_s": "GB/s", "hot_touch_gb_per_s": "GB/s", "cold_touch_gb_per_s": "GB/s",
    "reported_before_cold_kib": "KiB", "waited_for_report_s": "s", "workload_cgroup_version": "int",
    "hot_host_peak_kib": "KiB", "hot_host_back_s": "s", "hot_host_rss_after_kib": "KiB",
    "hot_host_returned_fraction": "share", "hot_observed_s": "s",
}

declare(Experiment(
    "refault", "the cost of giving memory back: touching pages the host already took back",
    defaults={"size": "1GiB", "wait_for_report_s": 30.0, "baseline_s": 1.0, "tail_s": 1.0, "sample_hz": 10.0},
    vm_defaults={**VM_COMMON, "wait_for_report_s": 15.0},
    needs=("memory",), events=("touch", "free"),
    aliases={"first_touch_s": "touch_first_s", "hot_touch_s": "touch_hot_s", "cold_touch_s": "touch_cold_s"},
    labs=("01_calloc_and_reclaim",), findings=("refault",),
    results=REFAULT_RESULTS))

# ---------------------------------------------------------------- page-cache
PAGE_CACHE_RESULTS = {
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
}

declare(Experiment(
    "page-cache", "grow the page cache with file I/O and drop it with drop_caches 1, 2 and 3",
    defaults={"size": "1.5GB", "settle_s": 2.0, "observe_s": 6.0, "walk_timeout_s": 30.0, "baseline_s": 1.0,
              "tail_s": 1.0, "sample_hz": 10.0},
    # VM: drop_levels "3" drops everything at once (lab 05); "1,2,3" drops in lab 02's steps (the file's
    # clean pages, then the slab, then both), watching the host after the first
    vm_defaults={**VM_COMMON, "hold_s": 1.0, "observe_s": 15.0, "drop_levels": "3"},
    units={"drop_levels": "text: drop_caches levels, comma-separated"},
    knobs=("drop_caches",), needs=("drop_caches", "disk"), events=("write_file", "read_file", "drop_caches"),
    aliases={"drop_caches_s": "drop_caches_3_s"},
    columns={"workload_file_resident_kib": "KiB"},
    labs=("02_page_cache",), findings=("page_cache",),
    results=PAGE_CACHE_RESULTS))

# ---------------------------------------------------------------- app-cache
APP_CACHE_RESULTS = {
    "build_db_s": "s", "query_scan_s": "s", "query_lookups_s": "s", "drop_caches_1_s": "s",
    "drop_caches_1_sync_s": "s", "db_bytes": "bytes", "db_rows": "count", "app_rss_max_kib": "KiB",
    "sqlite_cache_kib": "KiB",
}

declare(Experiment(
    "app-cache", "a real application (SQLite) fills the page cache while using little memory itself: "
                 "free's columns beside the host's view, then drop_caches 1",
    defaults={"size": "1.5GiB", "lookups": 20000, "cache_kib": 2048, "settle_s": 3.0, "observe_s": 8.0,
              "baseline_s": 1.0, "tail_s": 1.0, "sample_hz": 10.0},
    units={"lookups": "count", "cache_kib": "KiB"},
    knobs=("drop_caches",), needs=("drop_caches", "disk"), events=("build_db", "query"),
    labs=("02_page_cache",), findings=("app_cache",),
    results=APP_CACHE_RESULTS))

# ---------------------------------------------------------------- compaction
COMPACTION_RESULTS = {
    "fragment_s": "s", "compact_memory_s": "s", "release_s": "s", "unfragment_s": "s",
    "fragment_freed_pages": "pages", "fragment_held_pages": "pages", "fragment_fill_bytes": "bytes",
    "reported_while_held_kib": "KiB", "page_reporting_order": "order",
    "host_rss_before_kib": "KiB", "fragmented_host_rss_kib": "KiB", "compacted_host_rss_kib": "KiB",
    "compaction_returned_kib": "KiB", "fragment_host_rss_kib": "KiB", "fragmented_returned_kib": "KiB",
    # the fragmenter's own kept pages (their PFNs, /proc/<pid>/pagemap), just before and after compact_memory
    "held_blocks_order": "order", "fragment_held_blocks": "blocks", "compacted_held_blocks": "blocks",
    "compact_moved_held_pages": "pages", "compact_vacated_blocks": "blocks",
    # the kit's VM with then_order: one fragmentation watched at two orders, [{order, start_s, observed_s,
    # host_rss_start_kib, host_rss_end_kib, returned_kib}], and how long the watch after compact_memory ran
    "order_phases": "list", "compacted_observed_s": "s",
}

declare(Experiment(
    "compaction", "fragment free memory, compact it, and see why only large free blocks reach the host",
    defaults={"size": "2GiB", "settle_s": 2.0, "observe_s": 10.0, "baseline_s": 1.0, "sample_hz": 10.0},
    # VM: keep_every: the fragmenter keeps one 4 KiB page in this many (3: holes of 8 KiB, below any
    # reporting order; 64: holes of 252 KiB, above order 5's 128 KiB and below order 9's 2 MiB)
    vm_defaults={**VM_COMMON, "observe_s": 8.0, "keep_every": 3},
    units={"keep_every": "count: pages kept, one in this many"},
    knobs=("compact_memory",), needs=("compact_memory",), events=("fragment",),
    aliases={"compact_s": "compact_memory_s"},
    labs=("03_compaction",), findings=("compaction", "reporting_order"),
    results=COMPACTION_RESULTS))

# ---------------------------------------------------------------- auto-reclaim
AUTO_RECLAIM_RESULTS = {
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
    # what the gate left out of the guest's busy CPU (wsl/vm_autoreclaim.GATE_EXCLUDES), and the sampler's jiffies
    "gate_excludes": "text", "gate_sampler_jiffies": "count",
    # by label, folded from the whole maps kept at the idle mark and after the tail (physmap.json)
    "guest_map_file_kib": "KiB by label", "guest_map_reported_kib": "KiB by label",
    "host_map_resident_kib": "KiB by label", "maps_reported_and_empty_kib": "KiB by label",
}

declare(Experiment(
    "auto-reclaim", "WSL's autoMemoryReclaim (gradual, dropCache) reproduced on this guest, time-compressed",
    # time_scale 0 = the variant's lab scale (DEFAULT_TIME_SCALE); 1 = WSL's real timing.
    # idle_share 0 = WSL's own idle threshold (0.5 % of CPU time); a guest whose own daemons sit near it
    # can raise it, and the recording's parameters say so.
    # tail_s: at least this long after the last action (reporting runs ~2 s apart, in bursts), and then
    # until the host view has been still for report_quiet_s (a run that dropped or reclaimed nothing: only that).
    # busy: a BusyLoop beside the page-cache workload for the whole watch, as a share of ONE CPU
    # (0.03 = 3 %, an editor's language server); 0 = none. busy_period_ms: how often it wakes.
    # variant "pressure": the PROPOSED gradual mode of microsoft/WSL #40778-#40779 (closed, not merged).
    defaults={"policy": "gradual", "variant": "released", "size": "1.5GB", "time_scale": 0.0, "idle_share": 0.0,
              "busy": 0.0, "busy_period_ms": 50.0, "observe_s": 60.0,
              "baseline_s": 1.0, "tail_s": 20.0, "report_quiet_s": 5.0, "sample_hz": 10.0},
    choices={"policy": ("gradual", "dropCache", "disabled"), "variant": ("released", "newer", "pressure")},
    knobs=("drop_caches", "compact_memory", "memory.reclaim"), variant_keys=("policy", "variant", "busy"),
    units={"policy": "text", "variant": "text", "time_scale": "ratio (0: the variant's lab scale)",
           "idle_share": "share of all CPUs (0: WSL's own)", "busy": "share of one CPU"},
    needs=("drop_caches", "reclaim"), events=("fill_cache",),
    columns={"workload_cgroup_bytes": "bytes"},
    labs=("04_wsl_autoreclaim",), findings=("auto_reclaim", "auto_reclaim_busy", "auto_reclaim_vm"),
    results=AUTO_RECLAIM_RESULTS))

# ---------------------------------------------------------------- the kit's VM
# Not an experiment but a guest the experiments above also run in (vm.experiments, with vm_defaults):
# the doctor and the probe's verdicts list it as "vm"; these labs run experiments in it.
KIT_VM = "vm"
KIT_VM_LABS = ("05_be_the_host",)  # labs that boot the kit's VM themselves (lab 03 shows its order run recorded)
