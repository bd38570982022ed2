"""Labs 03, 04 and 05 say only what their run shows: each sentence a review found false or misleading on a
live run, rebuilt here on an edited copy of a shipped recording (or read from the notebook, for text that
holds on every run). One test per case; each docstring names the case."""
from __future__ import annotations

import copy
import json

import pandas as pd
import pytest

from reclaimlab.paths import labs_dir
from reclaimlab.present import charts
from reclaimlab.present.findings import auto_reclaim as ar
from reclaimlab.present.findings import compaction as cp
from reclaimlab.present.findings import vm as vm_findings
from reclaimlab.recording import datasets

MIB = 1024  # KiB


def _text(stem: str, cell_type: str | None = None) -> str:
    nb = json.loads(next(labs_dir().glob(f"{stem}_*.ipynb")).read_text())
    return "\n".join("".join(c["source"]) for c in nb["cells"] if cell_type in (None, c["cell_type"]))


@pytest.fixture
def comp():
    return copy.deepcopy(datasets.find("compaction"))


def _auto(policy: str, variant: str):
    return copy.deepcopy(datasets.find("auto-reclaim", {"policy": policy, "variant": variant}))


def _report_in_fragment_window(rec, kib: float) -> None:
    """The host's view rises by `kib` halfway through the 'while fragmented' window, and everything after it
    is shifted up by as much (the later windows keep their own rises)."""
    w = next(w for w in cp.host_windows(rec) if w["step"] == "fragment")
    t = w["t0_s"] + w["length_s"] / 2
    rec.samples.loc[rec.samples["t_s"] >= t, "host_reported_kib"] += kib


def _unaccounted(rec) -> None:
    """As a run that read neither the per-CPU lists nor saw the buddy allocator grow: where else reportable
    memory came from is not measured."""
    rec.meta["results"].pop("per_cpu_free_kib", None)
    rec.meta["notices"] = [n for n in rec.meta.get("notices") or [] if "buddy allocator" not in n]


def _host_gets(rec, fragment_kib: float, compact_kib: float, compact_delay_s: float, release_kib: float) -> None:
    """The host's view rewritten: it gets fragment_kib halfway through the 'while fragmented' window,
    compact_kib compact_delay_s after compact_memory began, and release_kib halfway through the release window."""
    windows = {w["step"]: w for w in cp.host_windows(rec)}
    t = rec.samples["t_s"]
    start = float(rec.samples["host_reported_kib"].dropna().iloc[0])
    rises = ((windows["fragment"]["t0_s"] + windows["fragment"]["length_s"] / 2, fragment_kib),
             (windows["compact_memory"]["t0_s"] + compact_delay_s, compact_kib),
             (windows["release"]["t0_s"] + windows["release"]["length_s"] / 2, release_kib))
    rec.samples["host_reported_kib"] = start + sum((t >= at) * kib for at, kib in rises)


def _big_rise(rec, kib: int) -> None:
    """The compacted snapshot holds `kib` more free memory in blocks of order 9 and up than the fragmented one."""
    b = rec.buddyinfo
    frag, comp = b[b["label"] == "fragmented"], b[b["label"] == "compacted"]
    b.loc[comp.index, "free_blocks"] = frag["free_blocks"].to_numpy()
    first9 = comp.index[comp["order"] == 9][0]
    b.loc[first9, "free_blocks"] += kib // (512 * 4)


# --------------------------------------------------------------------------- lab 03


def test_host_got_memory_while_fragmented_is_not_credited_to_the_fragmenters_holes(comp):
    """Live-guest review, lab 03: the host got 172 MiB while fragmented, and the lab said the fragmenter's holes
    were large enough to report, although the run showed nearly all the freed memory below order 9."""
    _unaccounted(comp)
    _report_in_fragment_window(comp, 172 * MIB)
    c = cp.host_reporting(comp)
    assert cp.fragmented(comp).verdict == "fragmented"
    assert c.verdict == "while_fragmented_elsewhere"
    assert "large enough to report" not in c.sentence and "Not from the fragmenter's holes" in c.sentence
    assert "below order 9" in c.sentence and "not measured here" in c.sentence


def test_host_got_memory_while_fragmented_names_the_rest_of_the_guest_where_the_run_measured_it(comp):
    """Live-guest review, lab 03: where the run's accounting shows the rest of the guest freed memory meanwhile,
    that figure is the reason given for what the host got while the fragmenter's memory sat in small blocks."""
    _report_in_fragment_window(comp, 172 * MIB)
    first = cp.labels(comp)[0]
    plain = cp.fragmented(comp)
    held_kib = comp.meta["results"]["fragment_held_pages"] * 4
    accounted = -plain.evidence["big_change_kib"] - held_kib - plain.evidence["small_rise_kib"]
    # the per-CPU lists grew by 300 MiB more than the reportable memory that went: the rest freed that much
    comp.meta["results"]["per_cpu_free_kib"] = {first: 80_000, "fragmented": 80_000 + accounted + 300 * MIB}
    c = cp.host_reporting(comp)
    assert c.verdict == "while_fragmented_elsewhere" and "the rest of the guest freed 300 MiB" in c.sentence


def test_compaction_claim_uses_the_counters_a_compact_memory_write_moves(comp):
    """Live-guest review, lab 03: the lab quoted compact_success/compact_fail, which count only compaction for
    an allocation, and said the pages between could not be moved; it now quotes both scanners' counts."""
    c = cp.compacted(comp)
    assert "compact_success" not in c.sentence and "compact_fail" not in c.sentence
    assert "pinned pages stay put" not in c.sentence and "could not be moved" not in c.sentence
    assert f"{c.evidence['migrate_scanned_pages']:,.0f} pages for pages to move" in c.sentence
    assert f"{c.evidence['free_scanned_pages']:,.0f} for free pages" in c.sentence


def test_compaction_claim_quotes_the_fragmenters_moved_pages_where_the_run_read_them(comp):
    """Live-guest review, lab 03: the fragmenter's own kept pages (read from its pagemap) say what compaction
    moved; a run without them says it was not measured."""
    comp.meta["results"].update(compact_moved_held_pages=None, compact_vacated_blocks=None,
                                fragment_held_blocks=None, compacted_held_blocks=None)  # PFNs hidden: not root
    assert "not measured in this run" in cp.compacted(comp).sentence
    comp.meta["results"].update(compact_moved_held_pages=41_000, compact_vacated_blocks=150)
    c = cp.compacted(comp)
    assert "It moved 41,000 of the fragmenter's 262,144 kept pages" in c.sentence
    assert "emptied 150 blocks of order 9" in c.sentence


def test_compaction_claim_states_the_period_2_pattern_only_for_a_period_2_run(comp):
    """Teaching review, lab 03: the fragmenter keeps every other page; the scanners' meeting is given as the
    reason only where the run's kept and freed pages show that pattern."""
    assert cp.compacted(comp).evidence["kept_one_in"] == 2
    assert "kept every other page" in cp.compacted(comp).sentence and "two scans meet" in cp.compacted(comp).sentence
    comp.meta["results"].update(fragment_held_pages=131_072, fragment_freed_pages=393_216)  # one page in four
    assert "every other page" not in cp.compacted(comp).sentence


def test_after_compaction_attributes_no_more_than_compaction_made(comp):
    """Teaching review, lab 03: '384 MiB in the 2 s after compaction … reporting followed those blocks' when
    compaction had added 306 MiB of such blocks and 128 MiB came 0.09 s after compact_memory began (the shipped run
    of 2026-11-25, rebuilt on today's)."""
    _host_gets(comp, 0, 384 * MIB, 0.09, 1024 * MIB)
    _big_rise(comp, 306 * MIB)
    c = cp.host_reporting(comp)
    assert c.verdict == "after_compaction"
    assert "reporting followed those blocks" not in c.sentence
    assert "Compaction added +306 MiB" in c.sentence and "the other 78 MiB were free blocks it did not make" in c.sentence
    assert c.evidence["first_report_after_compact_s"] < 0.5
    assert "too soon to tell its blocks from others" in c.sentence


def test_after_compaction_is_not_credited_to_compaction_when_it_formed_nothing(comp):
    """Teaching review, lab 03: where the compacted snapshot shows no new reportable block, the memory the host
    got after compact_memory is said not to be compaction's doing."""
    _host_gets(comp, 0, 384 * MIB, 1.0, 1024 * MIB)
    rows = comp.buddyinfo[comp.buddyinfo["label"] == "fragmented"].copy()
    t = float(comp.buddyinfo.loc[comp.buddyinfo["label"] == "compacted", "t_s"].iloc[0])
    comp.buddyinfo = pd.concat([comp.buddyinfo[comp.buddyinfo["label"] != "compacted"],
                                rows.assign(label="compacted", t_s=t)]).sort_values(["t_s", "zone", "order"])
    c = cp.host_reporting(comp)
    assert c.verdict == "after_compaction_elsewhere" and "not compaction's doing" in c.sentence


def test_lab03_states_the_fragmenters_pattern_as_it_is():
    """Teaching review, lab 03: 'frees all but a few pages' / 'frees most of the 2 GiB' while the fragmenter
    keeps one page in two."""
    text = _text("03")
    assert "all but a few pages" not in text and "frees most of the 2 GiB" not in text
    assert "keeps one page in two (in the kit's VM one in three,\n`keep_every=3`)" in text


def test_lab03_outcomes_keypoint_and_notes_promise_no_memory_back_after_compaction():
    """Both reviews, lab 03 and lab 05: outcome 3, keypoint 3, the instructor note and lab 05's keypoint 5
    promised the host gets memory back after compaction, which the shipped runs do not show."""
    for stem in ("03", "05"):
        text = _text(stem, "markdown")
        assert "the host gets the memory back" not in text
        assert "why compaction helps the host get memory back" not in text
        assert "grow back after compaction and release" not in text
    assert "one pass may form few such blocks" in _text("03")


def test_lab03_wrong_answer_c_and_the_dmesg_line_say_what_the_sources_show():
    """Teaching review, lab 03: answer (c) said freed pages go to the free lists 'at once' (lab 01 teaches the
    per-CPU lists first); the instructor note quoted a dmesg line neither WSL reclaim thread writes."""
    text = _text("03")
    assert "go back to the kernel's free lists at once" not in text and "per-CPU lists" in text
    assert 'WSL\'s `dmesg` shows "WSL2: Performing memory compaction"' not in text
    assert "writes no such line" in text and "02cd979" in text and "3e27a6a" in text


# --------------------------------------------------------------------------- lab 04


def test_more_than_freed_does_not_call_an_unbusy_guest_shared():
    """Live-guest review, lab 04: 'on this shared guest other programs freed memory…' printed on a guest the
    doctor called not shared: the sentence names other programs only by the run's busy-CPU figure."""
    rec = _auto("dropCache", "newer")
    t = ar.first_action_s(rec)
    freed = ar.fall_across_actions(rec, ar.CACHE_COLUMNS, ar.action_times(rec, t, t + 8))
    s = rec.samples
    base = float(s.loc[s["t_s"] <= t - 0.5, "host_reported_kib"].iloc[-1])
    s["host_reported_kib"] = base + (s["t_s"] > t - 0.5) * 2.0 * freed
    rec.meta["results"]["guest_busy_share_baseline"] = 0.01
    quiet = ar.host_after_action({"x": rec}, window_s=8)[0]
    assert quiet.verdict == "more_than_freed" and "shared" not in quiet.sentence and "other programs" not in quiet.sentence
    rec.meta["results"]["guest_busy_share_baseline"] = 0.5
    busy = ar.host_after_action({"x": rec}, window_s=8)[0]
    assert "other programs kept its CPU 50% busy" in busy.sentence


def test_what_reached_the_host_is_judged_against_what_the_policy_freed():
    """Teaching review, lab 04: '1.79 GiB reached the host, more than the 0.65 GiB by which free memory rose
    (275 %)': the denominator is now the cache the run's own actions freed, not MemFree's net change."""
    rec = _auto("dropCache", "newer")
    c = {x.evidence["label"]: x for x in ar.host_after_action({"dropCache · newer": rec})}["dropCache · newer"]
    assert c.evidence["freed_kib"] > 2 * c.evidence["mem_free_rise_kib"]   # the cache's fall, not MemFree's rise
    assert c.verdict in ("nearly_all", "most") and "by which the guest's free memory rose" not in c.sentence


def test_cgroup_cache_taken_is_the_actions_not_the_files_deletion():
    """Live-guest review, lab 04: 'cache charged to the experiment's cgroup 1.44 → 0.00 GiB' in all four runs:
    the end value is the workload's file being deleted; the claim now sums the falls across the run's actions."""
    rec = _auto("gradual", "released")
    before = ar.actions(rec, "g").sentence
    t_tail = rec.event_times("tail")[0]
    late = rec.samples["t_s"] > t_tail - 0.35   # the deletion, moved to just before the tail mark
    rec.samples.loc[late, "workload_cgroup_bytes"] = 0
    after = ar.actions(rec, "g")
    assert after.sentence == before and "→ **0.00 GiB**" not in after.sentence
    assert "took **" in after.sentence


def test_a_run_that_made_no_reclaim_says_why_from_the_gates_figures():
    """Live-guest review, lab 04: gradual·released 'made no drop or reclaim' with no reason although its idle
    window fits several times in the watch: the reason comes from the gate's CPU figures, or is not measured."""
    rec = _auto("gradual", "released")
    rec.events = rec.events[~rec.events["kind"].isin(["reclaim", "drop_caches"])]
    rec.meta["results"].update(idle_share=0.005, guest_busy_share_baseline=0.02)
    c = ar.actions(rec, "g")
    assert c.verdict == "no_action" and "fits" in c.sentence and "never passed" in c.sentence and "2.0%" in c.sentence
    rec.meta["results"]["idle_share"] = 1.0
    assert "not measured here" in ar.actions(rec, "g").sentence


def test_released_drop_without_compaction_after_it_names_the_compactions_before_it():
    """Live-guest review, lab 04: released dropCache said 'no compact_memory followed … busy at 0 %' while the
    table counted 3 compactions (they came before the drop)."""
    rec = _auto("dropCache", "released")
    t = ar.first_action_s(rec)
    extra = pd.DataFrame({"t_s": [t - 9, t - 6, t - 3], "kind": ["compact_memory"] * 3, "detail": [""] * 3})
    rec.events = pd.concat([rec.events, extra]).sort_values("t_s").reset_index(drop=True)
    c = ar.actions(rec, "d")
    assert "its 3 came before the drop" in c.sentence and "no such second came" not in c.sentence


def test_an_action_later_than_the_idle_window_says_why():
    """Live-guest review, lab 04: the newer dropCache acted after 482 s of WSL's clock against a '2 min' window,
    unexplained: a wait beyond the window names the CPU gate (when it was on), or says it is not recorded."""
    rec = _auto("dropCache", "newer")
    idle = rec.event_times("idle")[0]
    rec.events.loc[rec.events["kind"] == "idle", "t_s"] = idle - 35.0   # 350 s more of WSL's clock at ×0.1
    rec.meta["results"].update(idle_share=0.005, guest_busy_share_baseline=0.02)
    c = ar.actions(rec, "d")
    assert "more than its 120 s window" in c.sentence and "counted polls as busy" in c.sentence
    assert "window" not in ar.actions(_auto("dropCache", "newer"), "d").sentence


def test_lab04_describes_the_released_compaction_as_the_source_does():
    """Teaching review, lab 04: the released thread's compaction was described as 'after any user activity';
    the source compacts after a poll with more than a jiffy per CPU of user time (nearly every poll), and
    before #40197 an inner `Stop` shadowed the outer one (every quiet poll)."""
    text = _text("04")
    assert "after any user activity, once the next second is quiet" not in text
    assert "#40197" in text and "shadowed" in text


# --------------------------------------------------------------------------- lab 05


def test_lab05_counts_its_guests_and_names_no_kernel_it_did_not_boot():
    """Both reviews, lab 05: 'six small VMs' in the header and 'eight guests' in the notes; 'Linux 6.1 here'
    on a machine that did not boot the VM. Since one guest serves the reporting-on runs: four boots."""
    text = _text("05")
    assert "six small VMs" not in text and "eight small VMs" not in text and "four small guests" in text
    assert "Linux 6.1 here" not in text and "Debian's 6.1 here" not in text


def test_lab05_budget_rule_is_per_free_list():
    """Teaching review, lab 05: keypoint 3 gave ⌈top-order blocks / 512⌉ + 1 calls as the most one pass
    returns; mm/page_reporting.c budgets each zone × order × migratetype list on its own."""
    text = _text("05")
    assert "blocks of the top\n   order / 512⌉ calls plus one" not in text
    assert "zone × order × migratetype" in text
    vm_rec = next(r for r in (datasets.recording.load(datasets.recordings_dir() / e["path"])
                              for e in datasets.read_index()
                              if e["experiment"] == "calloc-reclaim" and e.get("guest_kind") == "kit-vm"
                              and e["parameters"].get("reporting") is True))
    c = vm_findings.step_budget(vm_rec)
    assert c.verdict == "not_measurable" or "that list's budget" in c.sentence


def test_lab05_fragmenter_note_gives_no_stride_reason_for_a_synchronous_compaction():
    """Teaching review, lab 05: the note blamed the free scanner's doubling stride, which applies only to
    asynchronous compaction; a compact_memory write compacts synchronously (compact_node: MIGRATE_SYNC)."""
    text = _text("05")
    assert "every sample then has the same\n  parity" not in text
    assert "applies only to asynchronous" in text


# --------------------------------------------------------------------------- charts


def test_comparison_charts_mark_each_runs_steps():
    """Teaching review, labs 03/04/05: the comparison charts had no step markers."""
    runs = {"gradual": datasets.find("auto-reclaim", {"policy": "gradual", "variant": "newer"}),
            "dropCache": datasets.find("auto-reclaim", {"policy": "dropCache", "variant": "newer"})}
    spec = charts.compare(runs, "cached_kib", title="t").to_dict()
    assert "Dashed vertical lines mark the experiment's steps" in charts.describe(spec)


def test_compaction_claim_quotes_compact_isolated_where_the_run_sampled_it(comp):
    """Live-guest review, lab 03: compact_isolated (pages compaction took to move, and free pages it took as
    targets) is one of the counters a compact_memory write moves: quoted where sampled, absent otherwise."""
    comp.samples = comp.samples.drop(columns=["compact_isolated_pages"], errors="ignore")  # a run that did not sample it
    assert "it took" not in cp.compacted(comp).sentence
    t = comp.event_times("compact_memory")[0]
    comp.samples["compact_isolated_pages"] = 1_000 + (comp.samples["t_s"] > t) * 52_000
    c = cp.compacted(comp)
    assert c.evidence["isolated_pages"] == 52_000 and "it took 52,000, to move or as targets" in c.sentence
