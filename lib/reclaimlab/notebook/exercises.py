"""Your-turn exercises: the learner computes a number from a recording, a checker computes the same
number from the same recording and gives feedback.

Each exercise has a pure part that returns `Feedback(correct, markdown)` (tested) and a display part
that shows it (`check_*`). An answer is a number of MiB, or a size with its unit ("1.2GiB"); an
answer left as `...` is no answer yet, and anything else gets a message that names the problem and
the fix, never a traceback. Solutions are files in labs/solutions/, loaded on request with `%load`.

    exercises.check_live_labs(live, lab.lab_rows(ctx))  # lab 00: which labs run live on this machine
    snap = exercises.buddy_snapshot(rec)             # free blocks per order, as /proc/buddyinfo had them
    exercises.check_reportable(reportable_9, rec, order=9)
    exercises.check_step_budget(budget_mib, rec_on)
    exercises.check_dropped(dropped_1, rec, level=1)   # lab 02: MiB of our file drop_caches=1 dropped
    exercises.check_wslconfig(my_wslconfig)          # lab 04: a .wslconfig for a stated need
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple

import pandas as pd

from ..probe import procfs
from ..recording import provenance
from ..recording.recording import Recording
from ..units import KIB_PER_MIB, format_kib, format_size
from ..wsl import wslconfig

RELATIVE_TOLERANCE = 0.01   # an answer within 1 % (or ABSOLUTE_TOLERANCE_MIB) is right: rounding is fine
ABSOLUTE_TOLERANCE_MIB = 1.0


class Feedback(NamedTuple):
    correct: bool | None      # None: no answer yet, or an answer that is not a number
    markdown: str


class _NoAnswer(Exception):
    """The answer is missing or not a number; the message says what to write instead."""


def _answer_mib(answer: Any) -> float:
    """The learner's answer in MiB: a number (MiB) or a size text with its unit."""
    if answer is Ellipsis or answer is None:
        raise _NoAnswer("No answer yet: replace `...` with your number of MiB (e.g. `1234.5`), then run the cell again.")
    if isinstance(answer, bool):
        raise _NoAnswer(f"`{answer!r}` is not a number of MiB: write a number such as `1234.5`, or a size with its "
                        "unit such as `\"1.2GiB\"`.")
    if isinstance(answer, str):
        from ..units import parse_size
        try:
            return parse_size(answer) / KIB_PER_MIB / KIB_PER_MIB
        except ValueError as exc:
            raise _NoAnswer(f"`{answer!r}` is not a size ({exc}). Write a number of MiB such as `1234.5`, or a "
                            "size with its unit such as `\"1.2GiB\"`.") from None
    try:
        value = float(answer)
    except (TypeError, ValueError):
        raise _NoAnswer(f"`{answer!r}` ({type(answer).__name__}) is not a number of MiB: write a number such as "
                        "`1234.5`, or a size with its unit such as `\"1.2GiB\"`.") from None
    if not math.isfinite(value):
        raise _NoAnswer(f"`{answer!r}` is not a finite number: write a number of MiB such as `1234.5`.")
    if value < 0:
        raise _NoAnswer(f"`{answer!r}` is negative: an amount of memory is 0 or more MiB.")
    return value


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= max(ABSOLUTE_TOLERANCE_MIB, RELATIVE_TOLERANCE * abs(b))


def _mib(v: float) -> str:
    return format_kib(v * KIB_PER_MIB, "MiB", digits=1, grouping=True)


def _say(markdown: str) -> None:
    """Markdown in a notebook, plain text elsewhere."""
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:
        get_ipython = None
    if get_ipython is None or get_ipython() is None:
        print(markdown)
        return
    display(Markdown(markdown))


def _show(fb: Feedback) -> None:
    _say(fb.markdown)


# --------------------------------------------------------------------------- lab 00: which labs run live here


def live_labs(rows: list[tuple[str, str, str]]) -> list[int]:
    """The labs with at least one experiment LIVE on this machine, from `lab.lab_rows(ctx)`:
    (lab "01 · ...", "experiment: LIVE; ...", why) rows."""
    return sorted(int(name[:2]) for name, runs, _ in rows if any(part.endswith(": LIVE") or ": LIVE in the kit's VM" in part
                                                                    for part in runs.split("; ")))


def _answer_labs(answer: Any) -> list[int]:
    """The learner's answer as lab numbers: a list (or tuple, set) of ints or texts like "01"."""
    example = "write a list of lab numbers such as `[1, 5]`, or `[]` if no lab runs live here"
    if answer is Ellipsis or answer is None:
        raise _NoAnswer(f"No answer yet: replace `...` with the labs that run live here: {example}.")
    if isinstance(answer, (int, str)) and not isinstance(answer, bool):
        answer = [answer]  # one lab, written alone
    if not isinstance(answer, (list, tuple, set, frozenset)):
        raise _NoAnswer(f"`{answer!r}` ({type(answer).__name__}) is not a list of labs: {example}.")
    labs = []
    for item in answer:
        try:
            n = int(str(item).strip()) if not isinstance(item, (bool, float)) else None
        except ValueError:
            n = None
        if n is None or not 0 <= n <= 99:
            raise _NoAnswer(f"`{item!r}` in your answer is not a lab number: {example}.")
        labs.append(n)
    return sorted(set(labs))


def live_labs_feedback(answer: Any, rows: list[tuple[str, str, str]]) -> Feedback:
    """Feedback on the learner's list of the labs that run (at least partly) live on this machine."""
    try:
        got = _answer_labs(answer)
    except _NoAnswer as exc:
        return Feedback(None, str(exc))
    want = live_labs(rows)
    known = sorted(int(name[:2]) for name, _, _ in rows)
    said = ", ".join(f"{n:02d}" for n in want) if want else "none"
    if got == want:
        why = ("the table above says LIVE for at least one of their experiments" if want else
               "the table above says RECORDED (or REFUSED) for every experiment: each lab shows a shipped recording, "
               "and its banner says why")
        return Feedback(True, f"✔ **Right: {said}**: {why}.")
    unknown = [n for n in got if n not in known]
    if unknown:
        hint = f"there is no lab {', '.join(f'{n:02d}' for n in unknown)}; the labs are {', '.join(f'{n:02d}' for n in known)}."
    elif set(got) > set(want):
        extra = ", ".join(f"{n:02d}" for n in sorted(set(got) - set(want)))
        hint = f"lab {extra} shows a recording here: read the *what it runs here* column for LIVE."
    else:
        missed = ", ".join(f"{n:02d}" for n in sorted(set(want) - set(got)))
        hint = f"lab {missed} has an experiment marked LIVE in the table: it counts."
    return Feedback(False, f"✘ **Not quite**: you wrote {got or '[]'}; {hint} Try again, or load the solution.")


def check_live_labs(answer: Any, rows: list[tuple[str, str, str]]) -> None:
    """Show feedback on the learner's list of the labs that run live here (`rows`: `lab.lab_rows(ctx)`)."""
    _show(live_labs_feedback(answer, rows))


# --------------------------------------------------------------------------- lab 01: what is reportable


def _snapshot_rows(rec: Recording, label: str | None) -> tuple[pd.DataFrame, str]:
    b = rec.buddyinfo
    if b is None or b.empty:
        raise ValueError(f"this {rec.meta.get('experiment', '?')} recording has no /proc/buddyinfo snapshot: "
                         "record it again with this version of the kit, or use the shipped recording")
    labels = list(dict.fromkeys(b["label"]))
    label = labels[-1] if label is None else label
    if label not in labels:
        raise ValueError(f"this recording has no buddyinfo snapshot {label!r}; it has: {', '.join(labels)}")
    return b[b["label"] == label], label


def buddy_snapshot(rec: Recording, label: str | None = None) -> pd.DataFrame:
    """One buddyinfo snapshot (default: the last) summed over zones: order, pages_per_block, free_blocks."""
    snap, _ = _snapshot_rows(rec, label)
    out = snap.groupby("order", as_index=False)["free_blocks"].sum()
    out.insert(1, "pages_per_block", 2 ** out["order"])
    return out.astype(int).reset_index(drop=True)


def reportable_kib(rec: Recording, order: int, label: str | None = None) -> float:
    """Free KiB in blocks of at least `order` in the snapshot: what reporting at that order could hand over."""
    if isinstance(order, bool) or not isinstance(order, int) or not 0 <= order <= 10:
        raise ValueError(f"order={order!r} is not a buddy order; use an integer 0..10 (9 is 2 MiB with 4 KiB pages)")
    snap = buddy_snapshot(rec, label)
    blocks = dict(zip(snap["order"].astype(int), snap["free_blocks"].astype(int)))
    return float(procfs.free_kib_at_least(blocks, order, provenance.page_kib(rec.meta)))


def reportable_feedback(answer: Any, rec: Recording, order: int, label: str | None = None) -> Feedback:
    """Feedback on the learner's MiB of free memory in blocks of order >= `order`."""
    want = reportable_kib(rec, order, label) / KIB_PER_MIB
    try:
        got = _answer_mib(answer)
    except _NoAnswer as exc:
        return Feedback(None, f"Order {order}: {exc}")
    snap = buddy_snapshot(rec, label)
    page_kib = provenance.page_kib(rec.meta)
    total = float((snap["free_blocks"] * snap["pages_per_block"]).sum() * page_kib) / KIB_PER_MIB
    if _close(got, want):
        return Feedback(True, f"✔ **Right: {_mib(want)}** of the {_mib(total)} free at that moment sits in blocks of "
                              f"order {order} or more ({want / total:.0%}). Only that much could free page reporting "
                              f"hand to the host with `page_reporting_order` {order}; the rest stays with the guest.")
    only_this = snap[snap["order"] == order]
    only_mib = float((only_this["free_blocks"] * only_this["pages_per_block"]).sum() * page_kib) / KIB_PER_MIB
    blocks = float(snap.loc[snap["order"] >= order, "free_blocks"].sum())
    pages = want * KIB_PER_MIB / page_kib
    if want and _close(got, only_mib) and not _close(only_mib, want):
        hint = (f"that is the memory in blocks of order {order} alone. Reporting takes every free block of order "
                f"{order} **or larger**: add the larger orders.")
    elif _close(got / KIB_PER_MIB, want):
        hint = "that looks like KiB, not MiB: divide by 1024."
    elif _close(got / KIB_PER_MIB / KIB_PER_MIB, want):
        hint = "that looks like bytes, not MiB: divide by 1024 twice."
    elif _close(got, pages):
        hint = f"that is a number of pages: multiply by the page size ({page_kib} KiB), then divide by 1024 for MiB."
    elif _close(got, blocks):
        hint = "that is a number of blocks: a block of order k holds 2^k pages (`pages_per_block`)."
    elif _close(got, total):
        hint = f"that is all the free memory; count only the blocks of order {order} and up."
    else:
        hint = (f"sum `free_blocks × pages_per_block × {page_kib} KiB` over the rows with `order >= {order}`, "
                "then divide by 1024 for MiB.")
    return Feedback(False, f"✘ **Not quite**: you wrote {_mib(got)}; {hint} Try again, or load the solution.")


def check_reportable(answer: Any, rec: Recording, order: int, label: str | None = None) -> None:
    """Show feedback on the learner's MiB of free memory in blocks of order >= `order`."""
    _show(reportable_feedback(answer, rec, order, label))


# --------------------------------------------------------------------------- lab 02: what a drop freed


def dropped_kib(rec: Recording, level: int = 1) -> float:
    """KiB of our own file that `drop_caches=level` dropped (the table's "our file in memory" change)."""
    from ..present.findings import page_cache
    if page_cache.own_column(rec) is None:
        raise ValueError(f"this {rec.meta.get('experiment', '?')} recording has no figure of our own file "
                         "(mincore or its cgroup): use the shipped page-cache recording")
    w = page_cache.around_drop(rec, level)
    if w is None:
        raise ValueError(f"this recording has no drop_caches={level} step; use level 1 or 3, or the shipped recording")
    return float(w["own_before_kib"] - w["own_after_kib"])


def dropped_feedback(answer: Any, rec: Recording, level: int = 1) -> Feedback:
    """Feedback on the learner's MiB of our file that drop_caches=level dropped."""
    from ..present.findings import page_cache
    try:
        want = dropped_kib(rec, level) / KIB_PER_MIB
    except ValueError as exc:   # an older run without our file's figure: say so, no traceback
        return Feedback(None, f"This run cannot check the exercise: {exc}.")
    if isinstance(answer, (int, float)) and not isinstance(answer, bool) and answer < 0 \
            and _close(-float(answer), want):
        return Feedback(False, f"✘ **Almost**: the table shows the *change*, {float(answer):,.0f} MiB; how much was "
                               "dropped is that change without its minus sign. Try again.")
    try:
        got = _answer_mib(answer)
    except _NoAnswer as exc:
        return Feedback(None, str(exc))
    w = page_cache.around_drop(rec, level)
    before = w["own_before_kib"] / KIB_PER_MIB
    guest = (w["cached_kib_before"] - w["cached_kib_after"]) / KIB_PER_MIB
    if _close(got, want):
        share = f" ({want / before:.0%} of the {_mib(before)} of it in memory)" if before else ""
        return Feedback(True, f"✔ **Right: {_mib(want)}** of our file{share} left the page cache at "
                              f"`drop_caches={level}`. Those pages are now free, so the guest can report them to the host.")
    if _close(got, guest) and not _close(guest, want):
        hint = ("that is the whole guest's Cached, every file of the machine; the question asks for our own file "
                "(the column \"our file in memory\").")
    elif _close(got, before) and not _close(before, want):
        hint = "that is how much of our file was in memory before the drop; the question asks how much the drop removed."
    elif _close(got / KIB_PER_MIB, want):
        hint = "that looks like KiB, not MiB: divide by 1024."
    else:
        hint = f"read the row `drop_caches={level}`, column \"our file in memory\", and drop the minus sign."
    return Feedback(False, f"✘ **Not quite**: you wrote {_mib(got)}; {hint} Try again, or load the solution.")


def check_dropped(answer: Any, rec: Recording, level: int = 1) -> None:
    """Show feedback on the learner's MiB of our file that drop_caches=level dropped."""
    _show(dropped_feedback(answer, rec, level))


# --------------------------------------------------------------------------- lab 05: the size of a pass


def pass_budget(rec: Recording, label: str = "before") -> dict[str, Any]:
    """The most one reporting pass can hand over from the top order's free list, from the buddyinfo snapshot
    `label` (mm/page_reporting.c budgets each zone × order × migratetype list on its own): ⌈free blocks of the
    top order in the zone / (32 × 16)⌉ calls plus one, each of up to 32 blocks."""
    from ..present.findings.vm import BUDGET_DIVISOR, REPORT_CAPACITY
    snap, _ = _snapshot_rows(rec, label)
    top = int(snap["order"].max())
    per_zone = snap[snap["order"] == top].groupby("zone")["free_blocks"].sum()
    n_top, zone = int(per_zone.max()), str(per_zone.idxmax())
    calls = -(-n_top // (REPORT_CAPACITY * BUDGET_DIVISOR))
    block_mib = 2 ** top * provenance.page_kib(rec.meta) / KIB_PER_MIB
    return {"zone": zone, "top_order": top, "top_blocks": n_top, "block_mib": block_mib, "calls": calls,
            "budget_mib": (calls + 1) * REPORT_CAPACITY * block_mib}


def step_budget_feedback(answer: Any, rec: Recording) -> Feedback:
    """Feedback on the learner's most MiB one reporting pass can hand over."""
    from ..present.findings.vm import REPORT_CAPACITY
    b = pass_budget(rec)
    try:
        got = _answer_mib(answer)
    except _NoAnswer as exc:
        return Feedback(None, str(exc))
    if _close(got, b["budget_mib"]):
        return Feedback(True, f"✔ **Right: {b['budget_mib']:.0f} MiB** a pass: ⌈{b['top_blocks']} / 512⌉ = {b['calls']} "
                              f"call(s) plus one, × {REPORT_CAPACITY} blocks × {b['block_mib']:.0f} MiB. The claim "
                              "below sets it against the steps the host's view really took.")
    without_extra = b["calls"] * REPORT_CAPACITY * b["block_mib"]
    if _close(got, without_extra):
        hint = "you left out the one additional call: the budget is a sixteenth of the list *plus one* call."
    elif _close(got, b["budget_mib"] / 2):
        hint = f"blocks of order {b['top_order']} are {b['block_mib']:.0f} MiB each (2^{b['top_order']} pages of 4 KiB)."
    elif _close(got, b["top_blocks"] * b["block_mib"]):
        hint = "that is all the free memory in top-order blocks; one pass reports only its budget of calls."
    else:
        hint = (f"calls = ⌈{b['top_blocks']} / (32 × 16)⌉, plus one; each call hands over up to 32 blocks of "
                f"{b['block_mib']:.0f} MiB.")
    return Feedback(False, f"✘ **Not quite**: you wrote {_mib(got)}; {hint} Try again, or load the solution.")


def check_step_budget(answer: Any, rec: Recording) -> None:
    """Show feedback on the learner's budget of one reporting pass, in MiB."""
    _show(step_budget_feedback(answer, rec))


def with_snapshot(rec: Recording, label: str | None = None) -> Recording:
    """`rec` if it has the buddyinfo snapshot an exercise needs, else the shipped recording of the same
    experiment (and says so): a live run without /proc/buddyinfo still gets an exercise."""
    b = rec.buddyinfo
    if b is not None and not b.empty and (label is None or (b["label"] == label).any()):
        return rec
    from ..recording import datasets
    name = rec.meta.get("experiment", "?")
    kind = rec.meta.get("guest_kind")
    params = rec.meta.get("parameters", {})
    selectors = {"reporting": params["reporting"]} if kind == "kit-vm" and "reporting" in params else None
    shipped = datasets.find(name, selectors, guest_kind=kind if kind == "kit-vm" else None)
    _say(f"_This run has no `/proc/buddyinfo` snapshot{f' {label!r}' if label else ''}: the exercise uses the "
            f"shipped {name} recording of {str(shipped.meta.get('date_utc', '?'))[:10]} instead._")
    return shipped


# --------------------------------------------------------------------------- lab 04: a .wslconfig for a need
# The learner writes a .wslconfig for a stated need; the checker (reclaimlab.wsl.wslconfig) reads it as
# WSL's parser does and says whether WSL would apply what the need asks, line by line where not.
# Solution: labs/solutions/04_wslconfig.py.


@dataclass(frozen=True)
class Need:
    ask: str                           # the need, in the learner's words
    memory_bytes: int | None           # [wsl2] memory, None: not asked
    auto_memory_reclaim: str | None    # [experimental] autoMemoryReclaim, None: not asked


NEEDS: Mapping[str, Need] = {
    "gradual_8gb": Need("give cached memory back to Windows gradually while the VM is idle, and never let the "
                        "VM use more than 8 GB", memory_bytes=8 << 30, auto_memory_reclaim="gradual"),
}


def _gib(n: int) -> str:
    return format_size(n, "GiB", digits=None if n % (1 << 28) == 0 else 2)  # 8 GiB, 0.25 GiB, 1.30 GiB


def _findings_for(findings: list[wslconfig.Finding], name: str) -> list[wslconfig.Finding]:
    low = name.lower()
    return [f for f in findings if f.key and f.key.lower().split(".")[-1] == low and f.severity != "info"]


def _why_missing(findings: list[wslconfig.Finding], name: str, home: str) -> str:
    mine = _findings_for(findings, name)
    if mine:
        f = mine[0]
        return _line(f)
    return f"there is no `{name}=` line under `[{home}]`."


def _line(f: wslconfig.Finding) -> str:
    return f"line {f.line}: {f.message}." + (f" Fix: `{f.fix}`." if f.fix else "")


def wslconfig_feedback(answer: Any, need: str | Need = "gradual_8gb") -> Feedback:
    """Would WSL apply `answer` (the text of a .wslconfig) as `need` asks? With the reason for each miss."""
    want = NEEDS[need] if isinstance(need, str) else need
    if answer is Ellipsis or answer is None or (isinstance(answer, str) and not answer.strip()):
        return Feedback(None, "No answer yet: write your `.wslconfig` between the triple quotes (sections in "
                              "`[brackets]`, then `key=value` lines), then run the cell again.")
    if not isinstance(answer, str):
        return Feedback(None, f"Your answer is of type {type(answer).__name__}, not the text of a file: write it as a "
                              "string, e.g. `my_wslconfig = \"\"\"[wsl2]\\nmemory=...\"\"\"`.")
    findings = wslconfig.check_text(answer)
    applied = wslconfig.settings(answer)
    misses: list[str] = []
    got: list[str] = []
    if want.memory_bytes is not None:
        value = applied.get("wsl2.memory")
        size = wslconfig.parse_size_bytes(value) if value is not None else None
        if value is None:
            misses.append(f"**memory** is not applied, so WSL uses its default, half of Windows' memory: "
                          f"{_why_missing(findings, 'memory', 'wsl2')}")
        elif size != want.memory_bytes:
            misses.append(f"**memory={value}** is {_gib(size or 0)}, not {_gib(want.memory_bytes)}: WSL's units are "
                          "binary (`GB` = 1024³ bytes) and upper case; write `memory=8GB`.")
        else:
            got.append(f"`memory={value}` ({_gib(size)})")
    if want.auto_memory_reclaim is not None:
        value = applied.get("experimental.autoMemoryReclaim")
        if value is None:
            misses.append("**autoMemoryReclaim** is not applied, so WSL uses today's default, `dropCache` (the whole "
                          f"cache at once): {_why_missing(findings, 'autoMemoryReclaim', 'experimental')}")
        elif value.lower() != want.auto_memory_reclaim.lower():
            misses.append(f"**autoMemoryReclaim={value}** is not what the need asks: `dropCache` gives the whole "
                          "cache back at once, `disabled` gives nothing back; `gradual` gives it back in steps "
                          "while the VM is idle.")
        else:
            got.append(f"`autoMemoryReclaim={value}` under `[experimental]`")
    others = [f for f in findings if f.severity == "error"
              and not _findings_for([f], "memory") and not _findings_for([f], "autoMemoryReclaim")]
    for f in others:
        text = _line(f)
        misses.append(("Also " + text) if misses else text[0].upper() + text[1:])
    if misses:
        return Feedback(False, "✘ **Not yet.**\n\n" + "\n".join(f"- {m}" for m in misses)
                        + ("\n\nWhat WSL does apply as asked: " + ", ".join(got) + "." if got else "")
                        + "\n\nFix it and run the cell again, or load the solution.")
    return Feedback(True, "✔ **WSL applies it:** " + ", ".join(got) + ". It takes effect after `wsl --shutdown` (or "
                          "once the VM has stopped, 60 s after its last process by default). Inside the VM, "
                          "`gradual` needs cgroup v2 `memory.reclaim`; without it WSL falls back to `dropCache`.")


def check_wslconfig(answer: Any, need: str | Need = "gradual_8gb") -> None:
    """Show feedback on the learner's .wslconfig for `need`, and the checker's own findings."""
    fb = wslconfig_feedback(answer, need)
    _say(fb.markdown)
    if isinstance(answer, str) and answer.strip():
        print(wslconfig.format_findings(wslconfig.check_text(answer), "your .wslconfig"))
