"""Claims: how a lab speaks about a run. A value, a verdict chosen by thresholds kept here, the
sentence that verdict selects, and the evidence behind it.

A lab never writes prose around a number that might contradict it. It computes a Claim from the
Recording (the builders live in `reclaimlab.present.findings.<experiment>`), and the sentence shown is the
one its verdict picks. Where an effect did not appear, the verdict says so (e.g. "not_measurable")
and the sentence says why, from the kernel's own figures.

Executed notebooks carry their claims machine-readably: `show()` emits, beside the Markdown, an
`application/vnd.reclaimlab.claims+json` part (viewers ignore it), so tests and reviewers check
verdicts against numbers without parsing prose (`from_notebook()`).
"""
from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

MIME = "application/vnd.reclaimlab.claims+json"

# Every threshold that turns a number into a word, in one place (unit-tested at its edges).
THRESHOLDS: dict[str, float] = {
    # A ratio of two speeds/durations within this factor (either way) is "about the same".
    "same_ratio": 1.25,
    # Shares of a whole (e.g. of the buffer reported to the host).
    "share_nearly_all": 0.90,   # at least this: "nearly all"
    "share_most": 0.50,         # at least this: "most"
    "share_some": 0.10,         # at least this: "some"; below: "little"
    # A change smaller than this share of the workload's size is "next to nothing".
    "negligible_share": 0.02,
    # calloc-reclaim, refault (lab 01) and the kit's VM (lab 05)
    "reported_enough_share": 0.90,      # at least this share of the buffer back: the host has it
    "refault_min_reported_share": 0.25,  # below: too little was reported for cold vs hot to mean anything
    "busy_guest_share": 0.10,           # other programs moved AnonPages by this share of our buffer: "busy"
    "stall_small_blocks_share": 0.50,   # free in blocks below the order >= this share of what is missing: a reason
    "stall_per_cpu_share": 0.25,        # free pages on the per-CPU lists >= this share of what is missing: a reason
    "tail_still_reporting_s": 3.0,      # a report this close to the end: the watch ended too early
    "report_delay_early_s": 1.5,        # first report after a free sooner than this: sooner than the kernel's 2 s
    "report_delay_late_s": 3.5,         # later than this: later than 2 s plus a pass
    # auto-reclaim (findings/auto_reclaim.py)
    "auto_reclaim_compare_s": 20.0,          # compare runs at most this long after each one's action
    "auto_reclaim_min_freed_kib": 64 * 1024,  # an action that freed less than this freed "next to nothing"
    "auto_reclaim_more_than_freed_share": 1.10,  # host got at least this share of what the actions freed: others' too
    "auto_reclaim_min_window_s": 6.0,        # runs compared over less than this after their actions: cut short
    "auto_reclaim_busy_cpu_share": 0.10,     # busy CPU in the baseline at least this: other programs are named
    # page reporting order (findings/reporting_order.py)
    "order_returned_min_kib": 32 * 1024,     # less than this reaching the host is "nothing"
    "order_release_watch_s": 8.0,            # watched less than this after the release: too short to show reporting
    # page-cache (findings/page_cache.py)
    # The guest's Cached fell by more than our file's drop plus this share of the file: others' files too.
    "page_cache_others_share": 0.10,
    # SReclaimable's fall at drop_caches=1 is "explained" by buffer heads and xarray nodes within this factor.
    "slab_explained_ratio": 1.5,
    # An SReclaimable change smaller than this (KiB) is "did not move".
    "slab_still_kib": 4096,
    # A drop whose recording ends sooner than this (s) after it is "cut short": nothing is concluded.
    "page_cache_min_window_s": 1.0,
}


class ClaimError(ValueError):
    """A claim was built wrongly (an unknown verdict, a verdict without a sentence)."""


@dataclass(frozen=True)
class Claim:
    key: str                     # what is claimed, e.g. "refault.cold_vs_hot"
    verdict: str                 # chosen by thresholds from the value, e.g. "slower"
    sentence: str                # Markdown, selected by the verdict
    value: float | None = None   # the number judged (None where nothing could be measured)
    unit: str = ""               # the value's unit, e.g. "ratio", "KiB", "s", "share"
    evidence: Mapping[str, Any] = field(default_factory=dict)  # the numbers the verdict came from

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "verdict": self.verdict, "value": _jsonable(self.value),
                "unit": self.unit, "sentence": self.sentence,
                "evidence": {k: _jsonable(v) for k, v in self.evidence.items()}}


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, (str, bool)):
        return v
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        f = float(v)
        return f if math.isfinite(f) else None   # JSON has no NaN: "not measured" is null
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return str(v)


def claim(key: str, verdict: str, sentences: Mapping[str, str], *, value: float | None = None,
          unit: str = "", **evidence: Any) -> Claim:
    """Build a Claim whose sentence is `sentences[verdict]`, formatted with the evidence and value.

    `sentences` must give a sentence for every verdict the builder can reach; a missing one is a
    programming error (ClaimError), never a silently empty explanation.
    """
    if verdict not in sentences:
        raise ClaimError(f"claim {key!r}: no sentence for verdict {verdict!r} (have: {', '.join(sentences)})")
    try:
        text = sentences[verdict].format(value=value, **evidence)
    except (KeyError, IndexError, ValueError) as exc:
        raise ClaimError(f"claim {key!r}, verdict {verdict!r}: the sentence needs {exc}") from None
    return Claim(key=key, verdict=verdict, sentence=text.strip(), value=value, unit=unit, evidence=evidence)


# --------------------------------------------------------------------------- verdicts


def ratio_verdict(ratio: float | None, *, more: str = "slower", less: str = "faster",
                  same: str = "about_the_same") -> str:
    """`more` when ratio >= same_ratio, `less` when ratio <= 1/same_ratio, else `same`;
    "not_measurable" when the ratio is missing or not a positive number."""
    if ratio is None or not math.isfinite(ratio) or ratio <= 0:
        return "not_measurable"
    r = THRESHOLDS["same_ratio"]
    if ratio >= r:
        return more
    if ratio <= 1 / r:
        return less
    return same


def share_verdict(share: float | None) -> str:
    """A share of a whole: "nearly_all", "most", "some", "little", or "not_measurable"."""
    if share is None or not math.isfinite(share):
        return "not_measurable"
    if share >= THRESHOLDS["share_nearly_all"]:
        return "nearly_all"
    if share >= THRESHOLDS["share_most"]:
        return "most"
    if share >= THRESHOLDS["share_some"]:
        return "some"
    return "little"


def negligible(change: float, whole: float) -> bool:
    """Is |change| next to nothing beside `whole` (same unit)?"""
    return abs(change) < THRESHOLDS["negligible_share"] * abs(whole)


def times(ratio: float) -> str:
    """A ratio in words: 4.53 → "4.5×"."""
    return f"{ratio:.1f}×" if ratio < 10 else f"{ratio:.0f}×"


# --------------------------------------------------------------------------- showing and reading


def bundle(claims: Claim | Sequence[Claim], intro: str = "", outro: str = "") -> dict[str, Any]:
    """The display bundle: Markdown for people, the claims as JSON for tests and reviewers."""
    items = [claims] if isinstance(claims, Claim) else list(claims)
    text = "\n\n".join(part for part in (intro.strip(), " ".join(c.sentence for c in items), outro.strip()) if part)
    return {"text/markdown": text, MIME: {"claims": [c.to_json() for c in items]}}


def show(claims: Claim | Sequence[Claim], intro: str = "", outro: str = "") -> None:
    """Display claims in a notebook (Markdown + the machine-readable part); print the text elsewhere."""
    display_bundle(bundle(claims, intro, outro))


def display_bundle(data: Mapping[str, Any]) -> None:
    """Show a bundle from `bundle()` (or one built like it) in a notebook; print its Markdown elsewhere."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        print(data["text/markdown"])
        return
    if get_ipython() is None:
        print(data["text/markdown"])
        return
    display(data, raw=True)


def from_notebook(path: str | Path) -> list[dict[str, Any]]:
    """Every claim an executed notebook carries, in order, each with the index of its cell."""
    nb = json.loads(Path(path).read_text())
    found = []
    for index, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []):
            payload = out.get("data", {}).get(MIME)
            if payload:
                found += [dict(c, cell=index) for c in payload.get("claims", [])]
    return found


def by_key(found: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Claims from `from_notebook()` keyed by their key (the last one wins where a key repeats)."""
    return {c["key"]: c for c in found}
