"""findings.compaction on the shipped recordings and on every lab-03 corpus case (pure: no notebook)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from reclaimlab.recording import recording
from reclaimlab.present.findings import compaction as cp

CORPUS = Path(__file__).parent / "corpus"


def _make_corpus():
    spec = importlib.util.spec_from_file_location("make_corpus", CORPUS / "make_corpus.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_corpus"] = mod
    spec.loader.exec_module(mod)
    return mod


MC = _make_corpus()
PURE = {"03_compaction.ipynb": cp.all_claims}


def _pc_claims(rec):
    from reclaimlab.present.findings import page_cache as pc
    out = []
    for v in pc.all_claims(rec).values():
        out += v if isinstance(v, list) else [v]
    return out


@pytest.mark.parametrize("case", [c for c in MC.CASES if c.lab in ("02_page_cache.ipynb", "03_compaction.ipynb")],
                         ids=lambda c: c.name)
def test_corpus_case_verdicts_from_the_findings(case, tmp_path):
    try:
        built = MC.build(tmp_path, [case.name])[0]
    except LookupError as exc:
        pytest.skip(str(exc))
    rec = recording.load(next(iter(built["recordings"].values())))
    got = (list(cp.all_claims(rec).values()) if case.experiment == "compaction" else _pc_claims(rec))
    verdicts = {c.key: c.verdict for c in got}
    assert {k: verdicts.get(k) for k in case.expect} == case.expect
    values = {c.key: c.value for c in got}
    for key, value in case.values.items():
        assert values[key] == value


def test_order_is_said_to_be_assumed_when_the_run_does_not_record_it(tmp_path):
    built = MC.build(tmp_path, ["compaction-real"])[0]
    rec = recording.load(next(iter(built["recordings"].values())))
    rec.meta["page_reporting_order"] = None
    rec.meta["results"].pop("page_reporting_order", None)
    c = cp.order_claim(rec)
    assert (c.verdict, c.value) == ("assumed", 9)
    assert "{" not in c.sentence
