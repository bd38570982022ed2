#!/usr/bin/env python3
"""The hostile-recordings corpus: recording folders made hostile by one small edit each, generated from the
shipped recordings at test time (never committed), each with the error load() must give.

    python tests/corpus/hostile.py OUT_DIR      # writes OUT_DIR/<case>/ to look at or load by hand

Where an edit needs a forged manifest (someone who edits a file and re-writes manifest.json to match, as
the review of 2026-12-06 assumed), it is written as save() writes it. tests/test_hostile_audit.py loads
every case (one test each); each case names the finding of that review it stands for.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from reclaimlab.paths import recordings_dir
from reclaimlab.recording import datasets, recording, schema


@dataclass(frozen=True)
class Case:
    name: str                    # <experiment>/<shipped id>/<edit>
    finding: int                 # the review's numbered finding this case stands for
    source: Path                 # the shipped recording it starts from
    edit: Callable[[Path], None]
    error: str                   # a regular expression the RecordingError must match
    doc: str


def forge_manifest(folder: Path) -> None:
    (folder / recording.MANIFEST_NAME).write_text(recording._manifest_text(folder))


def _without_events(kind: str) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        events = pd.read_csv(folder / "events.csv", keep_default_na=False, dtype=str)
        events[events["kind"] != kind].to_csv(folder / "events.csv", index=False)
        forge_manifest(folder)
    return edit


def _meta_literal(path: tuple[str, ...], literal: str) -> Callable[[Path], None]:
    """meta.json with the value at `path` written as this JSON literal (e.g. 1e400, which Python reads as inf)."""
    def edit(folder: Path) -> None:
        meta = json.loads((folder / "meta.json").read_text())
        inner: Any = meta
        for key in path[:-1]:
            inner = inner[key]
        inner[path[-1]] = "@@HOSTILE@@"
        (folder / "meta.json").write_text(json.dumps(meta).replace('"@@HOSTILE@@"', literal))
        forge_manifest(folder)
    return edit


def _shipped() -> list[tuple[str, Path]]:
    return [(entry["experiment"], recordings_dir() / entry["path"]) for entry in datasets.read_index()]


def event_cases() -> list[Case]:
    """Finding 13 (a `free` event removed: KeyError in analysis), for every event every complete recording
    of its experiment marks, in every shipped recording."""
    return [Case(f"{experiment}/{folder.name}/no-{kind}", 13, folder, _without_events(kind),
                 rf"events\.csv: no '{kind}' event, which every complete {experiment} recording marks",
                 f"the {kind!r} event removed from events.csv, manifest forged")
            for experiment, folder in _shipped() for kind in schema.EVENTS.get(experiment, ())]


BIG = "1" + "0" * 400  # a JSON integer of 401 digits: a float overflow in any arithmetic
NUMBER_CASES = [
    (("page_reporting_order",), "1" + "0" * 30, r"'page_reporting_order' must be order.*a whole number from 0 to 31",
     "order 10**30: block sizes are 2**order (the lab ran out of memory)"),
    (("page_reporting_order",), "9.5", r"'page_reporting_order' must be order", "an order that is not whole"),
    (("page_reporting_order",), "-1", r"'page_reporting_order' must be order", "a negative order"),
    (("page_size_kib",), "1e400", r"'page_size_kib' must be KiB, found inf \(a measured amount is finite",
     "1e400, which JSON readers take as infinity (OverflowError in the lab)"),
    (("duration_s",), BIG, r"'duration_s' must be s, found 10{39}\.\.\. \(401 characters\)",
     "a 401-digit duration, shown cut short"),
    (("results", "size_bytes"), BIG, r"result 'size_bytes' of calloc-reclaim must be bytes.*restore the folder",
     "a 401-digit result (OverflowError: integer division result too large for a float)"),
    (("sample_hz",), "1e-300", r"'sample_hz' must be a number of samples per second of at least one an hour",
     "a sample rate that makes the events' time-span check accept any time"),
]


def number_cases() -> list[Case]:
    """Finding 9 (meta values unchecked), for numbers: out of range, not finite, too long to show."""
    folder = next(f for experiment, f in _shipped() if experiment == "calloc-reclaim" and f.name.endswith("local"))
    return [Case(f"calloc-reclaim/{folder.name}/{'.'.join(path)}={literal[:12]}", 9, folder, _meta_literal(path, literal),
                 error, doc) for path, literal, error, doc in NUMBER_CASES]


def cases() -> list[Case]:
    return event_cases() + number_cases()


def build(case: Case, dest: Path) -> Path:
    """The case's hostile folder at `dest` (a copy of its source, edited)."""
    shutil.copytree(case.source, dest)
    case.edit(dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="a new folder for the cases")
    args = parser.parse_args(argv)
    for case in cases():
        build(case, args.out / case.name.replace("/", "--"))
        print(f"{case.name}: finding {case.finding}: {case.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
