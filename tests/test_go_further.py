"""The core path of labs 00-05 (issue 25): a word budget outside the `go-further` cells, go-further runs that
JupyterLab opens collapsed (and nothing else), and a core path that still teaches: objectives, a prediction,
a run, a chart, a claim or an echo, a self-check with its solution, and the keypoints.

Words are counted as reclaimlab.notebook.gofurther.words counts them: whitespace-separated tokens of each
markdown cell's source as written, fenced code, links, table rules and HTML tags included (what a reader
scrolls past); code cells are not counted. Solutions count: they sit on the core path, folded."""
from __future__ import annotations

import json
import re

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell

from reclaimlab import paths
from reclaimlab.notebook import gofurther

LABS = sorted(paths.labs_dir().glob("0[0-5]_*.ipynb"))


def _load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def _gf(cell, heading=False):
    cell.metadata["tags"] = ["go-further"]
    if heading:
        cell.metadata[gofurther.COLLAPSED_KEY] = True
    return cell


def test_words_are_whitespace_tokens_of_markdown_outside_go_further():
    nb = {"cells": [new_markdown_cell("## Title\n\nOne two `three`."), new_code_cell("not counted at all"),
                    _gf(new_markdown_cell("## Go further: x"), heading=True), _gf(new_markdown_cell("four five"))]}
    assert gofurther.markdown_words(nb) == 5
    assert gofurther.markdown_words(nb, core_only=False) == 5 + 4 + 2


def test_headings_skip_fenced_code_and_see_html():
    text = "## A\n```\n# not a heading\n```\n<h4>B</h4>\n#hashtag\n### C ###"
    assert [level for level, _ in gofurther.headings(text)] == [2, 4, 3]
    assert gofurther.heading_level(new_markdown_cell("text\n\n### low\n\n## high")) == 2


def test_jupyterlab_hides_up_to_the_next_heading_of_the_same_level_or_higher():
    cells = [new_markdown_cell("## 1. Core"), _gf(new_markdown_cell("### Go further: x"), heading=True),
             _gf(new_code_cell("x = 1")), _gf(new_markdown_cell("#### a detail")), new_markdown_cell("### Check yourself")]
    assert gofurther.hidden_by_jupyterlab(cells) == {2, 3}
    assert gofurther.problems(cells) == []


def test_problems_name_a_run_that_leaks_or_ends_early():
    leaks = [_gf(new_markdown_cell("### Go further: x"), heading=True), _gf(new_code_cell("x = 1")),
             new_code_cell("core()")]  # no heading ends the collapse: the core cell is hidden
    assert any("cell 2" in p and "not go-further" in p for p in gofurther.problems(leaks))
    early = [_gf(new_markdown_cell("### Go further: x"), heading=True), _gf(new_markdown_cell("## big")),
             new_markdown_cell("## next")]
    assert any("cell 1" in p and "shows it" in p for p in gofurther.problems(early))
    no_key = [_gf(new_markdown_cell("### Go further: x")), new_markdown_cell("## next")]
    assert any(gofurther.COLLAPSED_KEY in p for p in gofurther.problems(no_key))
    no_heading = [_gf(new_markdown_cell("a paragraph")), new_markdown_cell("## next")]
    assert any("must start with" in p for p in gofurther.problems(no_heading))


def test_the_core_path_of_labs_00_to_05_is_within_the_budget():
    counts = {p.stem[:2]: gofurther.markdown_words(_load(p)) for p in LABS}
    assert len(counts) == 6, counts
    assert sum(counts.values()) <= gofurther.CORE_BUDGET_WORDS, \
        f"{sum(counts.values())} markdown words outside go-further (budget {gofurther.CORE_BUDGET_WORDS}): {counts}"


@pytest.mark.parametrize("path", LABS, ids=[p.name for p in LABS])
def test_go_further_runs_open_collapsed_in_jupyterlab(path):
    cells = _load(path)["cells"]
    assert gofurther.problems(cells) == [], f"{path.name}: {gofurther.problems(cells)}"


@pytest.mark.parametrize("path", LABS, ids=[p.name for p in LABS])
def test_the_core_path_keeps_the_shape_of_a_lab(path):
    cells = [c for c in _load(path)["cells"] if not gofurther.is_go_further(c)]
    md = "\n".join(gofurther.source(c) for c in cells if c["cell_type"] == "markdown")
    code = "\n".join(gofurther.source(c) for c in cells if c["cell_type"] == "code")
    assert re.search(r"^## By the end you will be able to", md, re.M), f"{path.name}: objectives"
    assert "lab.question(" in code, f"{path.name}: check yourself"
    assert any("solution" in gofurther.tags(c) for c in cells), f"{path.name}: a solution on the core path"
    assert re.search(r"^## Summary", md, re.M) and "**Keypoints**" in md, f"{path.name}: summary"
    if path.stem.startswith("00"):
        return
    predictions = re.findall(r"^(\w+) = lab\.predict\(", code, re.M)
    assert predictions, f"{path.name}: predict before a run"
    for name in predictions:  # every prediction on the path is closed on it
        assert re.search(rf"lab\.echo\({name},", code), f"{path.name}: {name}'s echo is folded away"
    assert re.search(r"\bctx\.run\(|\brun_vm\(|\bsimulate\(", code), f"{path.name}: run"
    assert "charts." in code, f"{path.name}: observe (a chart)"
    assert "claims.show(" in code or "lab.echo(" in code, f"{path.name}: explain (a claim from the run)"


def test_two_asides_in_a_row_are_two_runs():
    cells = [_gf(new_markdown_cell("## Go further: a"), heading=True), _gf(new_code_cell("a = 1")),
             _gf(new_markdown_cell("## Go further: b"), heading=True), _gf(new_markdown_cell("text")),
             new_markdown_cell("## Summary")]
    assert gofurther.runs(cells) == [(0, 1), (2, 3)]
    assert gofurther.problems(cells) == []
