"""Every lab on every corpus recording (real and deliberately hostile runs made from the shipped
recordings by documented edits, make_corpus.py): each claim's verdict must be the one the edit implies.
The cases run two at a time (check_corpus.py's pool) once per session; each is its own test item."""
from __future__ import annotations

import pytest

import check_corpus
import make_corpus

pytestmark = pytest.mark.corpus


@pytest.fixture(scope="session")
def corpus_results(request) -> dict[str, tuple[str, list[str]]]:
    from concurrent.futures import ProcessPoolExecutor
    out = (check_corpus.ROOT / "build" / "corpus").resolve()  # the labs run in labs/: absolute folders
    selected = sorted(item.callspec.params["name"] for item in request.session.items
                      if getattr(item, "originalname", "") == "test_claims_on_corpus_recording")  # -k picks cases
    cases = make_corpus.build(out / "recordings", selected)
    with ProcessPoolExecutor(max_workers=2) as pool:
        return {name: (status, messages) for name, status, messages in pool.map(check_corpus.run_case, cases,
                                                                                [out] * len(cases))}


@pytest.mark.parametrize("name", [case.name for case in make_corpus.CASES])
def test_claims_on_corpus_recording(corpus_results, name):
    status, messages = corpus_results[name]
    if status == "skip":
        pytest.skip("; ".join(messages))
    assert status == "ok", "\n".join(messages)
