#!/usr/bin/env python3
"""Build the test corpus: real and deliberately hostile recordings, made from the shipped recordings by
documented edits, each with the claim verdicts its edit implies.

    python tests/corpus/make_corpus.py OUT_DIR      # writes OUT_DIR/<case>/ and OUT_DIR/cases.json

Every case names the lab that shows it, the `recordings` parameter that replays it there, and the
verdict each claim must reach (`expect`, keyed by claim key). See README.md beside this file for what
each edit stands for and why it implies those verdicts. `pytest -m corpus` executes every lab on every
case through papermill and asserts the verdicts.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from reclaimlab.recording import datasets, recording
from reclaimlab.paths import recordings_dir
from reclaimlab.present.analysis import next_event, when
from reclaimlab.recording.recording import Recording

GIB_KIB = 1024 * 1024


@dataclass
class Case:
    name: str
    lab: str                      # notebook file name in labs/
    experiment: str
    source: Callable[[], Recording]
    edit: Callable[[Recording], None]
    expect: dict[str, str]        # claim key -> verdict
    doc: str
    replay_key: str = ""          # the key in the lab's `recordings` parameter (default: the experiment)
    values: dict[str, float] = field(default_factory=dict)  # claim key -> value it must have (approx.)
    params: dict[str, str] = field(default_factory=dict)    # more lab parameters (e.g. guest="vm" for a VM run)


# --------------------------------------------------------------------------- sources


def shipped(experiment: str, *, guest_kind: str | None = None, has_column: str | None = None,
            policy: str | None = None) -> Callable[[], Recording]:
    def load() -> Recording:
        for entry in datasets.read_index():
            if entry["experiment"] != experiment or not entry.get("complete"):
                continue
            if (entry.get("guest_kind") == "kit-vm") != (guest_kind == "kit-vm"):
                continue
            if policy and entry["parameters"].get("policy") != policy:
                continue
            rec = recording.load(recordings_dir() / entry["path"])
            if has_column and has_column not in rec.samples.columns:
                continue
            return rec
        raise LookupError(f"no shipped {experiment} recording"
                          + (f" with column {has_column}" if has_column else "") + " to build the corpus from")
    return load


def shipped_with(experiment: str, **params: object) -> Callable[[], Recording]:
    """The first shipped (local) recording of `experiment` whose parameters hold every one of `params`."""
    def load() -> Recording:
        for entry in datasets.read_index():
            if (entry["experiment"] == experiment and entry.get("complete") and entry.get("guest_kind") != "kit-vm"
                    and all(entry["parameters"].get(k) == v for k, v in params.items())):
                return recording.load(recordings_dir() / entry["path"])
        raise LookupError(f"no shipped {experiment} recording with {params} to build the corpus from")
    return load


# --------------------------------------------------------------------------- edits (each one documented)


def no_edit(rec: Recording) -> None:
    """A real run, as shipped."""


def drop_columns(*columns: str, **meta: object) -> Callable[[Recording], None]:
    def edit(rec: Recording) -> None:
        rec.samples = rec.samples.drop(columns=[c for c in columns if c in rec.samples.columns])
        rec.meta.update(meta)
    edit.__doc__ = f"Remove the column(s) {', '.join(columns)}" + (f"; set meta {meta}" if meta else "")
    return edit


def others_during_drop_1(rec: Recording) -> None:
    """Another program reads 3 GiB of files and fills 300 MiB of slab while drop_caches=1 runs: ramp the
    guest-wide Cached up by 3 GiB and SReclaimable by 300 MiB across the level-1 window (our file's own
    columns untouched)."""
    t0 = when(rec, "drop_caches", "1")
    t1 = next_event(rec, t0)
    s = rec.samples
    ramp = ((s["t_s"] - t0) / (t1 - t0)).clip(0, 1)
    s["cached_kib"] = s["cached_kib"] + (ramp * 3 * GIB_KIB).round()
    s["slab_reclaimable_kib"] = s["slab_reclaimable_kib"] + (ramp * 300 * 1024).round()


def cut_after(kind: str, detail: str | None, after_s: float) -> Callable[[Recording], None]:
    def edit(rec: Recording) -> None:
        t_cut = when(rec, kind, detail) + after_s
        rec.samples = rec.samples[rec.samples["t_s"] <= t_cut].reset_index(drop=True)
        rec.events = rec.events[rec.events["t_s"] <= t_cut].reset_index(drop=True)
        if len(rec.buddyinfo):
            rec.buddyinfo = rec.buddyinfo[rec.buddyinfo["t_s"] <= t_cut].reset_index(drop=True)
        rec.physmaps = [m for m in rec.physmaps if m.t_s <= t_cut]
    edit.__doc__ = f"Cut the recording {after_s} s after {kind}{f' {detail}' if detail else ''} (samples, events, snapshots)"
    return edit


def stall_reporting_from(kind: str, detail: str | None = None) -> Callable[[Recording], None]:
    def edit(rec: Recording) -> None:
        t0 = when(rec, kind, detail)
        s = rec.samples
        frozen = float(rec.at(t0)["host_reported_kib"])
        s.loc[s["t_s"] >= t0, "host_reported_kib"] = frozen
    edit.__doc__ = f"Reporting stalls at {kind}{f' {detail}' if detail else ''}: host_reported_kib stays flat from there on"
    return edit


def _snapshot(rec: Recording, label: str) -> pd.DataFrame:
    return rec.buddyinfo[rec.buddyinfo["label"] == label]


def _replace_snapshot(rec: Recording, label: str, rows: pd.DataFrame) -> None:
    b = rec.buddyinfo
    t = float(b.loc[b["label"] == label, "t_s"].iloc[0])
    rows = rows.assign(label=label, t_s=t)
    rec.buddyinfo = pd.concat([b[b["label"] != label], rows]).sort_values(["t_s", "zone", "order"]).reset_index(drop=True)


def compaction_freed_nothing(rec: Recording) -> None:
    """A long-used guest: compact_memory scans pages (the counters still rise) but the *compacted* snapshot is
    the *fragmented* one again: no free block grew."""
    _replace_snapshot(rec, "compacted", _snapshot(rec, "fragmented").copy())


def compaction_below_order(rec: Recording) -> None:
    """Compaction joins the fragmenter's order-0 holes, but only into order-6 blocks (below order 9): the
    *compacted* snapshot is *fragmented* with the order-0 blocks added since *before* moved to order 6."""
    frag = _snapshot(rec, "fragmented").copy()
    before = _snapshot(rec, "before").set_index(["zone", "order"])["free_blocks"]
    frag = frag.set_index(["zone", "order"])
    for zone in frag.index.get_level_values("zone").unique():
        extra = max(int(frag.loc[(zone, 0), "free_blocks"] - before.get((zone, 0), 0)), 0)
        frag.loc[(zone, 0), "free_blocks"] -= extra
        frag.loc[(zone, 6), "free_blocks"] += extra // 64
    _replace_snapshot(rec, "compacted", frag.reset_index())


def already_fragmented(rec: Recording) -> None:
    """A long-used guest: its free memory sat in small blocks before the fragmenter ran: the *before*
    snapshot is the *fragmented* one."""
    _replace_snapshot(rec, "before", _snapshot(rec, "fragmented").copy())


def reporting_order(order: int) -> Callable[[Recording], None]:
    def edit(rec: Recording) -> None:
        rec.meta["page_reporting_order"] = order
        if "page_reporting_order" in rec.meta.get("results", {}):
            rec.meta["results"]["page_reporting_order"] = order
    edit.__doc__ = f"A guest that reports order {order} and up (WSL on newer Windows builds uses 5): meta says so"
    return edit


def cold_as_fast_as_hot(rec: Recording) -> None:
    """The cold touch ran as fast as the hot one (the host kept the pages, e.g. reporting off)."""
    r = rec.meta["results"]
    r["touch_cold_s"] = r["touch_hot_s"]
    r["cold_touch_gb_per_s"] = r["hot_touch_gb_per_s"]


def refault_reporting_stalled(rec: Recording) -> None:
    """Only 5 % of the buffer was reported before the cold touch: host_reported_kib flat from the hot free on."""
    stall_reporting_from("free", "hot")(rec)
    r = rec.meta["results"]
    r["reported_before_cold_kib"] = int(0.05 * r["size_bytes"] / 1024)


def another_process_allocating(rec: Recording) -> None:
    """Another program allocates 1.5 GiB between calloc and touch: AnonPages (guest-wide) rises by 1.5 GiB
    there and stays; the workload's own RssAnon is untouched."""
    t0, t1 = when(rec, "calloc"), when(rec, "touch")
    s = rec.samples
    ramp = ((s["t_s"] - t0) / max(t1 - t0, 1e-3)).clip(0, 1)
    s["anon_kib"] = s["anon_kib"] + (ramp * 1.5 * GIB_KIB).round()


# --------------------------------------------------------------------------- the cases

PC = shipped("page-cache", has_column="workload_file_resident_kib")
AC = shipped("app-cache")


def no_maps(rec: Recording) -> None:
    """Remove the maps of physical memory and say why, as a run that could not read /proc/kpageflags
    (not root) records it: free's columns remain, the host's side is unknown."""
    rec.physmaps = []
    rec.meta["physmap_unavailable"] = "/proc/kpageflags: Permission denied (not root)"
CP = shipped("compaction")

CASES: list[Case] = [
    # lab 02 · page cache
    Case("page-cache-real", "02_page_cache.ipynb", "page-cache", PC, no_edit,
         {"page_cache.cache_kept": "nearly_all", "page_cache.drop_1": "nearly_all",
          "page_cache.drop_3": "nearly_all"},
         "The shipped run: our file stays cached, and drop_caches=1 and 3 drop nearly all of it."),
    Case("page-cache-no-host-view", "02_page_cache.ipynb", "page-cache", PC,
         drop_columns("host_reported_kib", hypervisor=None),
         {"page_cache.host_after_drop": "no_host_view", "page_cache.drop_1": "nearly_all"},
         "No host view: what the host got back is not measured; our file's figures are unchanged."),
    Case("page-cache-container", "02_page_cache.ipynb", "page-cache", PC,
         drop_columns("host_reported_kib", "workload_file_resident_kib", guest_kind="container", hypervisor=None),
         {"page_cache.drop_1": "nearly_all", "page_cache.drop_3": "nearly_all",
          "page_cache.host_after_drop": "no_host_view"},
         "A container: no host view and no per-file figure, only the workload's memory cgroup, which is "
         "enough to say what drop_caches did to our file."),
    Case("page-cache-older-recording", "02_page_cache.ipynb", "page-cache", PC,
         drop_columns("workload_file_resident_kib", "workload_cgroup_bytes"),
         {"page_cache.drop_1": "not_measurable", "page_cache.drop_1_guest": "guest_only",
          "page_cache.cache_kept": "not_measurable"},
         "A recording without our file's figures (made before 2026-11-26): the lab says it cannot tell our "
         "file from the guest, and quotes the guest's Cached as the guest's."),
    Case("page-cache-another-process", "02_page_cache.ipynb", "page-cache", PC, others_during_drop_1,
         {"page_cache.drop_1": "nearly_all", "page_cache.drop_1_guest": "others_grew",
          "page_cache.slab_at_level_1": "rose"},
         "Another program fills 3 GiB of cache and 300 MiB of slab during drop_caches=1: our file's drop is "
         "unchanged, the guest-wide counters are explained as others'."),
    Case("page-cache-tail-cut", "02_page_cache.ipynb", "page-cache", PC, cut_after("drop_caches", "1", 0.5),
         {"page_cache.drop_1": "cut_short", "page_cache.slab_at_level_1": "cut_short",
          "page_cache.host_after_drop": "cut_short", "page_cache.drop_3": "not_run",
          "page_cache.slab_at_level_2": "not_run"},
         "The recording ends 0.5 s after drop_caches=1: nothing is concluded from that step; later steps are absent."),
    Case("page-cache-reporting-stalled", "02_page_cache.ipynb", "page-cache", PC,
         stall_reporting_from("drop_caches", "1"),
         {"page_cache.host_after_drop": "little", "page_cache.drop_1": "nearly_all"},
         "Reporting stalls at the drop: the host gets next to nothing back, and the lab says so."),
    Case("app-cache-real", "02_page_cache.ipynb", "app-cache", AC, no_edit,
         {"app_cache.picture": "small_blocks_most", "app_cache.app_vs_cache": "app_small",
          "app_cache.no_reason_to_drop": "no_pressure", "app_cache.after_drop": "host_got_some"},
         "The shipped SQLite run (2026-12-06, a busy guest): the app's RSS 18 MiB, its 1.5 GiB database in the "
         "page cache; the host held more than free's used by the cache and by free memory in blocks too small to "
         "report, which was the larger part on this guest."),
    Case("app-cache-no-maps", "02_page_cache.ipynb", "app-cache", AC, no_maps,
         {"app_cache.picture": "no_host_view", "app_cache.after_drop": "no_host_view",
          "app_cache.app_vs_cache": "app_small", "app_cache.no_reason_to_drop": "no_pressure"},
         "No maps (not root): free's columns and the app's figures stay, the host's side is said to be unknown."),
    # lab 03 · compaction
    Case("compaction-real", "03_compaction.ipynb", "compaction", CP, no_edit,
         {"compaction.reporting_order": "known", "compaction.fragmented": "fragmented",
          "compaction.compacted": "freed_nothing", "compaction.host_reporting": "while_fragmented_elsewhere"},
         "The shipped run (2026-12-06, a busy guest): fragmented; compaction moves a few thousand of the kept pages "
         "but forms no reportable block; what the host gets while fragmented is the rest of the guest's."),
    Case("compaction-no-host-view", "03_compaction.ipynb", "compaction", CP,
         drop_columns("host_reported_kib", hypervisor=None),
         {"compaction.host_reporting": "no_host_view", "compaction.fragmented": "fragmented"},
         "No host view: when the host got memory back is not measured."),
    Case("compaction-order-5", "03_compaction.ipynb", "compaction", CP, reporting_order(5),
         {"compaction.reporting_order": "known", "compaction.fragmented": "fragmented"},
         "A guest reporting order 5 (128 KiB): the split moves to order 5; the fragmenter's single-page holes "
         "are still below it.", values={"compaction.reporting_order": 5}),
    Case("compaction-freed-nothing", "03_compaction.ipynb", "compaction", CP, compaction_freed_nothing,
         {"compaction.compacted": "freed_nothing"},
         "A long-used guest where compaction scans but no free block grows: the lab says compaction freed "
         "nothing reportable, with the kernel's counters."),
    Case("compaction-below-order", "03_compaction.ipynb", "compaction", CP, compaction_below_order,
         {"compaction.compacted": "below_order"},
         "Compaction joins holes into order-6 blocks only: larger, still below order 9."),
    Case("compaction-already-fragmented", "03_compaction.ipynb", "compaction", CP, already_fragmented,
         {"compaction.fragmented": "already"},
         "The guest was fragmented before the fragmenter ran: the lab says so instead of crediting the fragmenter."),
    Case("compaction-reporting-stalled", "03_compaction.ipynb", "compaction", CP, stall_reporting_from("fragment"),
         {"compaction.host_reporting": "little"},
         "Reporting stalls for the whole run: the host gets little back in any window."),
    # lab 01 · calloc and reclaim
    Case("refault-cold-not-slower", "01_calloc_and_reclaim.ipynb", "refault", shipped("refault"), cold_as_fast_as_hot,
         {"refault.cold_vs_hot": "about_the_same"},
         "The cold touch ran as fast as the hot one: no '× slower' may be printed."),
    Case("refault-reporting-stalled", "01_calloc_and_reclaim.ipynb", "refault", shipped("refault"),
         refault_reporting_stalled, {"refault.cold_vs_hot": "not_measurable"},
         "Only 5 % was reported before the cold touch: the comparison is not measurable, and the lab says why."),
    Case("calloc-another-process", "01_calloc_and_reclaim.ipynb", "calloc-reclaim", shipped("calloc-reclaim"),
         another_process_allocating, {"calloc_reclaim.calloc": "next_to_nothing", "calloc_reclaim.whole_guest": "busy"},
         "Another program allocates 1.5 GiB between calloc and touch: the workload's own RssAnon still says "
         "calloc committed next to nothing."),
    # lab 04 · WSL autoMemoryReclaim: runs are compared at equal time after their
    # actions, so one cut short makes the comparison window short for every run, and none may be final.
    Case("auto-reclaim-tail-cut", "04_wsl_autoreclaim.ipynb", "auto-reclaim",
         shipped("auto-reclaim", policy="dropCache"), cut_after("drop_caches", None, 2.3),
         {"auto_reclaim.host_after_action.dropCache · newer": "cut_short",
          "auto_reclaim.host_after_action.gradual · newer": "cut_short"},
         "The dropCache run ends 2.3 s after its drop, mid-report: no 'reached the host after the action' "
         "figure may be quoted as final.", replay_key="auto-reclaim:policy=dropCache"),
]


def _busy_key(policy: str, variant: str) -> str:
    return f"auto-reclaim:busy=0.03:policy={policy}:variant={variant}"


def gate_always_open(rec: Recording) -> None:
    """Every poll's busy share set to 0.1 % of all CPUs (under the gate's 0.5 %); no action added."""
    for poll in rec.meta["results"]["polls"]:
        if poll.get("busy_share") is not None:
            poll["busy_share"], poll["interval_idle"] = 0.001, True


def pressure_backs_off(rec: Recording) -> None:
    """PSI some avg10 at 6.0 at every poll (the back-off band), so the series never reclaims: the reclaim and
    compaction events removed and the experiment's own cache held at its idle-mark value."""
    for poll in rec.meta["results"]["polls"]:
        poll.update(psi_some_avg10=6.0, zone="backoff: pressure", reclaim_bytes=0)
    rec.events = rec.events[~rec.events["kind"].isin(["reclaim", "compact_memory"])].reset_index(drop=True)
    t0 = when(rec, "idle")
    s = rec.samples
    held = float(s.loc[s["t_s"] <= t0, "workload_cgroup_bytes"].dropna().iloc[-1])
    s.loc[s["t_s"] > t0, "workload_cgroup_bytes"] = held


_BUSY_SHIPPED = {"auto_reclaim.busy.dropCache · newer": "gate_shut",
                 "auto_reclaim.busy.gradual · newer": "gate_shut",
                 "auto_reclaim.busy.gradual · pressure": "pressure_acted",
                 "auto_reclaim.busy.cache_at_equal_time": "pressure_only",
                 "auto_reclaim.busy.wslconfig": "gate_blocks"}

CASES += [
    # lab 04 · why vmmem stays big on a busy machine: three runs beside a 3 % busy loop, the CPU gate on
    Case("auto-reclaim-busy-shipped", "04_wsl_autoreclaim.ipynb", "auto-reclaim",
         shipped_with("auto-reclaim", policy="gradual", variant="pressure", busy=0.03), no_edit, _BUSY_SHIPPED,
         "The shipped busy runs: newer dropCache and gradual never pass the gate, the pressure variant acts.",
         replay_key=_busy_key("gradual", "pressure")),
    Case("auto-reclaim-busy-gate-open", "04_wsl_autoreclaim.ipynb", "auto-reclaim",
         shipped_with("auto-reclaim", policy="dropCache", variant="newer", busy=0.03), gate_always_open,
         {**_BUSY_SHIPPED, "auto_reclaim.busy.dropCache · newer": "gate_open_no_action",
          "auto_reclaim.busy.wslconfig": "window_not_reached"},
         "Every poll under the gate's limit and still no drop: the lab may not say the gate was shut, nor give "
         "advice from a run that did not reach its window.", replay_key=_busy_key("dropCache", "newer")),
    Case("auto-reclaim-busy-pressure-backs-off", "04_wsl_autoreclaim.ipynb", "auto-reclaim",
         shipped_with("auto-reclaim", policy="gradual", variant="pressure", busy=0.03), pressure_backs_off,
         {**_BUSY_SHIPPED, "auto_reclaim.busy.gradual · pressure": "pressure_held",
          "auto_reclaim.busy.cache_at_equal_time": "none"},
         "Memory pressure high throughout: the pressure variant holds back, and no run gave cache back.",
         replay_key=_busy_key("gradual", "pressure")),
]


def shipped_vm(policy: str, variant: str) -> Callable[[], Recording]:
    """The shipped auto-reclaim run of `policy` · `variant` made in the kit's VM (wsl/vm_autoreclaim.py)."""
    def load() -> Recording:
        return datasets.find("auto-reclaim", {"policy": policy, "variant": variant}, guest_kind="kit-vm")
    return load


def host_view_held(rec: Recording) -> None:
    """QEMU's resident memory held at its idle-mark value for the rest of the run, in the samples and in the
    results (host_rss_after_kib): the guest dropped its cache but the host got nothing back (as with free page
    reporting off)."""
    t0 = when(rec, "idle")
    s = rec.samples
    held = float(s.loc[s["t_s"] <= t0, "host_vm_rss_kib"].dropna().iloc[-1])
    s.loc[s["t_s"] > t0, "host_vm_rss_kib"] = held
    rec.meta["results"]["host_rss_after_kib"] = int(held)


def vm_gate_never_open(rec: Recording) -> None:
    """Every poll of the VM's gate at 2 % busy (over WSL's 0.5 %), so the policy never acts: its drop, reclaim and
    compaction events removed, the cache and QEMU's resident memory held at their idle-mark values."""
    res = rec.meta["results"]
    res["poll_busy_shares"] = [0.02 for _ in res.get("poll_busy_shares") or []]
    res["gate_idle_polls"] = 0
    rec.events = rec.events[~rec.events["kind"].isin(["reclaim", "drop_caches", "compact_memory"])].reset_index(drop=True)
    t0 = when(rec, "idle")
    s = rec.samples
    for column in ("host_vm_rss_kib", "cached_kib"):
        held = float(s.loc[s["t_s"] <= t0, column].dropna().iloc[-1])
        s.loc[s["t_s"] > t0, column] = held


def _vm_key(policy: str, variant: str) -> str:
    return f"vm:auto-reclaim:policy={policy}:variant={variant}"


_VM_SHIPPED = {"auto_reclaim.vm.dropCache · newer": "host_fell",
               "auto_reclaim.vm.gradual · newer": "host_fell",
               "auto_reclaim.vm.dropCache · released": "host_fell",
               "auto_reclaim.vm.gradual · released": "host_fell",
               "auto_reclaim.vm_method.dropCache · newer": "drop",
               "auto_reclaim.vm_method.gradual · newer": "swappiness_refused",
               "auto_reclaim.vm_method.dropCache · released": "drop",
               "auto_reclaim.vm_method.gradual · released": "plain_as_wsl",
               "auto_reclaim.wslconfig_all": "idle_acts_busy_blocks"}

CASES += [
    # lab 04 · the policies as WSL runs them, in the kit's VM: the CPU gate on, the root's real memory.reclaim
    Case("auto-reclaim-vm-shipped", "04_wsl_autoreclaim.ipynb", "auto-reclaim",
         shipped_vm("gradual", "newer"), no_edit, _VM_SHIPPED,
         "The shipped VM runs (2026-12-06): all four act with the gate on and QEMU's resident memory falls; newer "
         "gradual's swappiness=0 was refused by the 6.1 kernel and the plain amount written; with the busy runs "
         "the takeaway is dropCache for an idle WSL, memory= for a busy one.",
         replay_key=_vm_key("gradual", "newer")),
    Case("auto-reclaim-vm-host-kept", "04_wsl_autoreclaim.ipynb", "auto-reclaim",
         shipped_vm("dropCache", "newer"), host_view_held,
         {**_VM_SHIPPED, "auto_reclaim.vm.dropCache · newer": "host_kept"},
         "The newer dropCache run's host view held flat after the drop: the lab may not say the host got memory "
         "back from it, and the takeaway names the runs whose host view fell.",
         replay_key=_vm_key("dropCache", "newer")),
    Case("auto-reclaim-vm-gate-never-open", "04_wsl_autoreclaim.ipynb", "auto-reclaim",
         shipped_vm("gradual", "newer"), vm_gate_never_open,
         {**_VM_SHIPPED, "auto_reclaim.vm.gradual · newer": "no_action",
          "auto_reclaim.vm_method.gradual · newer": "no_request"},
         "The VM's newer gradual run with its gate busy at every poll: no reclaim, so the lab may not say it acted "
         "or how it reclaimed.", replay_key=_vm_key("gradual", "newer")),
]


# Real runs kept for the corpus only (not shown to learners): tests/fixtures/recordings/<name>/.
FIXTURE_RECORDINGS = Path(__file__).resolve().parents[1] / "fixtures" / "recordings"


def fixture(name: str) -> Callable[[], Recording]:
    def load() -> Recording:
        return recording.load(FIXTURE_RECORDINGS / name)
    return load


def shipped_vm_then(order: int, then_order: int) -> Callable[[], Recording]:
    """The shipped compaction run in the kit's VM that watched one fragmentation at `order`, then `then_order`."""
    def load() -> Recording:
        return datasets.find("compaction", {"page_reporting_order": order, "then_order": then_order},
                             guest_kind="kit-vm")
    return load


CASES += [
    # lab 03 · the conditions users have, from real runs (issue 24)
    Case("compaction-fresh-guest", "03_compaction.ipynb", "compaction", fixture("compaction-fresh-guest"), no_edit,
         {"compaction.reporting_order": "known", "compaction.fragmented": "fragmented",
          "compaction.compacted": "joined_most", "compaction.host_reporting": "after_compaction"},
         "A real run on this Firecracker guest booted 4 minutes before (kernel 6.18.44-fc-v1300, 2026-12-06 "
         "20:42 UTC, other helpers starting): 15.7 GiB of MemFree sat in neither the buddy nor the per-CPU lists "
         "(the maps); here compaction joined +780 MiB into order-9 blocks and the host got 384 MiB after it, "
         "where the shipped run (17:10 UTC, a busy guest) joined nothing."),
    Case("compaction-vm-order-9-then-5", "03_compaction.ipynb", "compaction", shipped_vm_then(9, 5), no_edit,
         {"reporting_order.while_fragmented.9": "nothing", "reporting_order.while_fragmented.5": "returned",
          "reporting_order.compare": "lower_returns_more", "reporting_order.after_compaction.5": "still_reporting",
          "reporting_order.after_release.5": "still_reporting"},
         "The kit's VM, one fragmentation watched at order 9, then at order 5 written at runtime (labs 03 and 05): "
         "nothing at 9, the holes' 128 KiB blocks at 5, and reporting still under way through compact_memory and "
         "the release, which the claims measure instead of crediting either step.",
         replay_key="vm:compaction:page_reporting_order=9:then_order=5"),
    Case("calloc-vm-long-used", "01_calloc_and_reclaim.ipynb", "calloc-reclaim", fixture("calloc-vm-long-used"),
         no_edit,
         {"calloc_reclaim.reporting": "returned", "calloc_reclaim.whole_guest": "one_program"},
         "A real run in the kit's VM (QEMU TCG, Debian 6.1, 2026-12-07 00:33 UTC) aged as long use does first "
         "(age_bytes=768 MiB: every other page kept, the holes filled by a file's page cache, the rest freed): "
         "342 MiB of free memory sat in single pages below order 9 before calloc and after the watch, never "
         "reported, while the buffer, touched in huge pages, came back whole (99 % of what it added to QEMU).",
         replay_key="vm:calloc-reclaim", params={"guest": "vm"},
         values={"calloc_reclaim.reporting": 779848 / 786364}),   # QEMU fell 779,848 of the 786,364 KiB the touch added
    Case("calloc-vm-long-used-4k", "01_calloc_and_reclaim.ipynb", "calloc-reclaim", fixture("calloc-vm-long-used-4k"),
         no_edit,
         {"calloc_reclaim.reporting": "returned_what_it_added", "calloc_reclaim.whole_guest": "one_program"},
         "The same aged guest in the kit's VM with transparent huge pages off (thp_enabled=never, 2026-12-07 00:54 "
         "UTC): the 4 KiB touch took the 383 MiB of single-page holes first, so it added only 386 MiB to QEMU for "
         "its 768 MiB; after free 399 MiB sat below order 9 and QEMU gave back only what the touch had added.",
         replay_key="vm:calloc-reclaim", params={"guest": "vm"},
         values={"calloc_reclaim.reporting": 382740 / 395132}),   # QEMU fell 382,740 of the 395,132 KiB added
    Case("refault-maps-live", "01_calloc_and_reclaim.ipynb", "refault", fixture("refault-maps-live"), no_edit,
         {"refault.reported_before_cold": "little", "refault.cold_vs_hot": "not_measurable",
          "refault.cold_vs_first": "too_little_reported"},
         "A real refault run here with maps of which frames each touch got (2026-12-07 01:04 UTC, busy shared "
         "guest): 6 MiB reported in the 30 s wait while the maps marked 8.4 GiB reported; of the cold touch's "
         "1,024 MiB of frames, 4 KiB sat in reported blocks, so the lab may not call the cold touch a refault."),
    Case("page-cache-mapped", "02_page_cache.ipynb", "page-cache", fixture("page-cache-mapped"), no_edit,
         {"page_cache.stayed_1": "mapped"},
         "A real run on this Firecracker guest (2026-12-07 00:50 UTC) with the Mapped and Writeback columns: after "
         "drop_caches=1, 223 MiB stayed cached, 219 MiB of it Mapped and 10 MiB Shmem (overlapping), so the lab "
         "names what stayed instead of leaving it 'not told apart'."),
    Case("calloc-local-long-used", "01_calloc_and_reclaim.ipynb", "calloc-reclaim", fixture("calloc-local-long-used"),
         no_edit,
         {"calloc_reclaim.reporting": "stalled", "calloc_reclaim.batches": "too_little",
          "calloc_reclaim.whole_guest": "matches"},
         "A real run on this Firecracker guest (kernel 6.18.44-fc-v1300, up 7.5 h, 2026-12-07 04:07 UTC) aged "
         "first by ci/age-guest (6 GiB: every other page released, a file's page cache in the holes; 2,772 MiB "
         "below order 9 after): of the 2.79 GiB freed only 244 MiB (9 %) was reported in 30 s, while free memory "
         "not reported below order 9 rose 2,468 MiB between the maps: the lab must say the memory landed below "
         "the order, not that large blocks were left or that the host got it back in batches.",
         values={"calloc_reclaim.reporting": 249856 / (3e9 / 1024)}),   # 249,856 KiB reported of the 3 GB buffer
    Case("calloc-local-busy", "01_calloc_and_reclaim.ipynb", "calloc-reclaim", fixture("calloc-local-busy"),
         no_edit,
         {"calloc_reclaim.calloc": "next_to_nothing", "calloc_reclaim.whole_guest": "busy",
          "calloc_reclaim.reporting": "stalled", "calloc_reclaim.batches": "too_little"},
         "A real run on this Firecracker guest (kernel 6.18.44-fc-v1300, up 8 h, 2026-12-07 04:45 UTC) while "
         "ci/busy-guest mapped, touched and freed 1 GiB in a loop beside it: the whole guest's AnonPages moved by "
         "up to 1,020 MiB apart from our allocator's, and of the 2 GiB freed only 10 MiB was reported in 25 s, the "
         "maps showing it landed below order 9 and 862 MiB of free pages on the per-CPU lists: the lab quotes the "
         "workload's own figures and says where the memory went."),
    Case("refault-local-long-used", "01_calloc_and_reclaim.ipynb", "refault", fixture("refault-local-long-used"),
         no_edit,
         {"refault.reported_before_cold": "little", "refault.cold_vs_hot": "not_measurable",
          "refault.cold_vs_first": "too_little_reported"},
         "A real refault run on the same aged guest (2026-12-07 04:09 UTC): the since-boot counter rose 916 MiB "
         "(89 % of the buffer's size) in the 30 s wait, yet of the 1,024 MiB the buffer held after the hot touch "
         "1 MiB sat in reported blocks at 'before_cold' and free memory below order 9 rose 1,169 MiB: the counter "
         "counted other memory, so the lab may neither call the buffer reported nor the cold touch a refault."),
]


def build(out_dir: Path, names: list[str] | None = None) -> list[dict]:
    """Write every case's recording under out_dir and return the cases as JSON-ready dicts."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for case in CASES:
        if names and case.name not in names:
            continue
        rec = case.source()
        rec.meta = json.loads(json.dumps(rec.meta))  # a deep copy: edits never touch the shipped one
        rec.samples, rec.events, rec.buddyinfo = rec.samples.copy(), rec.events.copy(), rec.buddyinfo.copy()
        case.edit(rec)
        rec.meta["notices"] = list(rec.meta.get("notices") or []) + [f"corpus case {case.name}: {case.doc}"]
        folder = out_dir / case.name
        if folder.exists():
            import shutil
            shutil.rmtree(folder)
        recording.save(rec, folder)
        written.append({"name": case.name, "lab": case.lab, "experiment": case.experiment,
                        "recordings": {case.replay_key or case.experiment: str(folder)},
                        "expect": case.expect, "values": case.values, "params": case.params, "doc": case.doc,
                        "edit": (case.edit.__doc__ or "").strip()})
    (out_dir / "cases.json").write_text(json.dumps(written, indent=2) + "\n")
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--case", action="append", help="only this case (repeatable)")
    args = ap.parse_args(argv)
    cases = build(args.out_dir, args.case)
    print(f"{len(cases)} corpus recordings in {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
