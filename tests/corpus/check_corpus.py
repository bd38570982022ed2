#!/usr/bin/env python3
"""Execute every lab on every corpus recording (papermill, through the lab's `recordings` parameter) and
assert each claim's verdict is the one the case's edit implies.

    python tests/corpus/check_corpus.py [--out build/corpus] [--case NAME ...] [--jobs 2]

A lab that carries no claims, or not an expected key, fails, naming the keys the case expects.
Exit status 0 when every executed case holds.
"""
from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_corpus  # noqa: E402


def lab_has_claims(lab: Path) -> bool:
    nb = json.loads(lab.read_text())
    return any("claims.show(" in "".join(c.get("source", "")) for c in nb["cells"] if c["cell_type"] == "code")


def run_case(case: dict, out: Path) -> tuple[str, str, list[str]]:
    """(name, "ok" | "skip" | "fail", messages)."""
    import papermill

    from reclaimlab.cli.labs import local_kernel
    from reclaimlab.present import claims

    lab = ROOT / "labs" / case["lab"]
    if not lab_has_claims(lab):
        return case["name"], "fail", [f"{case['lab']} shows no claims (no claims.show() cell): "
                                      f"expected {case['expect']}"]
    executed = out / "executed" / f"{case['name']}.ipynb"
    executed.parent.mkdir(parents=True, exist_ok=True)
    try:
        with local_kernel() as kernel:
            papermill.execute_notebook(str(lab), str(executed), cwd=str(ROOT / "labs"), progress_bar=False,
                                       parameters={"mode": "recorded", "recordings": case["recordings"],
                                                   **(case.get("params") or {})}, **kernel)
    except Exception as exc:  # papermill names the failing cell
        return case["name"], "fail", [f"{case['lab']} failed on this recording: {str(exc).splitlines()[0:3]}"]
    found = claims.by_key(claims.from_notebook(executed))
    missing = [k for k in case["expect"] if k not in found]
    problems = [f"claim {k} is missing from {case['lab']} (it has: {sorted(found)})" for k in missing]
    for key, verdict in case["expect"].items():
        if key in found and found[key]["verdict"] != verdict:
            problems.append(f"{key}: verdict {found[key]['verdict']!r}, the edit implies {verdict!r} "
                            f"(value {found[key].get('value')}; {found[key]['sentence'][:160]}...)")
    for key, value in (case.get("values") or {}).items():
        if key in found and (found[key].get("value") is None or abs(found[key]["value"] - value) > 1e-6):
            problems.append(f"{key}: value {found[key].get('value')}, the edit implies {value}")
    return case["name"], ("fail" if problems else "ok"), problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "corpus")
    ap.add_argument("--case", action="append")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    args.out = args.out.resolve()  # the labs run in labs/: recording folders must be absolute
    cases = make_corpus.build(args.out / "recordings", args.case)
    failed = 0
    with ProcessPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        for name, status, messages in pool.map(run_case, cases, [args.out] * len(cases)):
            print(f"{status.upper():5} {name}" + "".join(f"\n      {m}" for m in messages), flush=True)
            failed += status == "fail"
    print(f"corpus: {len(cases)} cases, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
