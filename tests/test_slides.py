"""Slide metadata for jupyterlab-rise: derived from content and tags, idempotent, on every lab."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from reclaimlab.notebook import slides

ROOT = Path(__file__).resolve().parents[1]
LABS = sorted((ROOT / "labs").glob("[0-9]*.ipynb"))


def tagged(cell, *tags):
    cell.metadata["tags"] = list(tags)
    return cell


def sample_notebook():
    return new_notebook(cells=[
        new_markdown_cell("# 09 · A lab\n\nIntro."),                            # slide
        new_markdown_cell("## Imports"),                                         # skip: its section is skipped
        new_code_cell("import pandas as pd\nfrom reclaimlab.notebook import lab  # the helpers\n"),  # skip
        new_markdown_cell("## Parameters\n\nEdit the next cell."),               # slide: has text
        tagged(new_code_cell('mode = "auto"'), "parameters"),                    # skip
        new_code_cell("ctx = lab.setup(mode=mode)"),                             # -
        new_markdown_cell("### Run it"),                                         # subslide (section not skipped)
        new_code_cell('lab.predict("What happens?", ["a", "b"])'),               # fragment
        new_code_cell("rec = ctx.run('calloc-reclaim')"),                        # -
        new_code_cell('lab.question("Why?", ["a", "b"], answer_index=1, explanation="x")'),  # fragment
        tagged(new_markdown_cell("**Solution.** (b)."), "solution"),             # fragment
        tagged(new_markdown_cell("**Instructor notes.** Pace."), "instructor"),  # notes
        tagged(new_code_cell("charts.lines(rec, {})"), "subslide"),              # override
        new_markdown_cell("#### A small heading"),                               # -
        new_markdown_cell("Plain text."),                                        # -
    ])


EXPECTED = ["slide", "skip", "skip", "slide", "skip", "-", "subslide", "fragment", "-", "fragment",
            "fragment", "notes", "subslide", "-", "-"]


def test_types_follow_content_and_tags():
    assert slides.slide_types(sample_notebook().cells) == EXPECTED


def test_an_existing_type_is_replaced_not_kept():
    nb = sample_notebook()
    nb.cells[5].metadata["slideshow"] = {"slide_type": "slide"}  # stale: the cell is a continuation
    slides.apply(nb)
    assert nb.cells[5].metadata["slideshow"]["slide_type"] == "-"


def test_go_further_cells_stay_out_of_the_deck_but_instructor_notes_stay_notes():
    cells = [new_markdown_cell("# 09 · A lab"), tagged(new_markdown_cell("## Go further: x"), "go-further"),
             tagged(new_code_cell("helper = 1"), "go-further"),
             tagged(new_markdown_cell("**Instructor notes.** x"), "instructor", "go-further")]
    assert slides.slide_types(cells) == ["slide", "skip", "skip", "notes"]


def test_the_first_cell_is_always_a_slide():
    nb = new_notebook(cells=[new_code_cell("x = 1"), new_markdown_cell("## Next")])
    assert slides.slide_types(nb.cells) == ["slide", "slide"]


def test_apply_is_idempotent_and_sets_rise_scroll():
    nb = sample_notebook()
    assert slides.apply(nb) == len(EXPECTED)
    assert slides.apply(nb) == 0
    assert nb.metadata["rise"] == {"scroll": True}
    nb.metadata["rise"]["scroll"] = False  # an author's choice stays
    slides.apply(nb)
    assert nb.metadata["rise"]["scroll"] is False
    assert [c.metadata["slideshow"]["slide_type"] for c in nb.cells] == EXPECTED


def test_apply_file_writes_once_and_check_mode_reports(tmp_path, capsys):
    path = tmp_path / "09_lab.ipynb"
    nbformat.write(sample_notebook(), path)
    assert slides.main(["--check", str(path)]) == 1
    before = path.read_bytes()
    assert path.read_bytes() == before, "--check must not write"
    assert slides.main([str(path)]) == 0
    written = path.read_bytes()
    assert slides.apply_file(path) == 0 and path.read_bytes() == written
    assert slides.main(["--check", str(path)]) == 0
    assert "up to date" in capsys.readouterr().out


@pytest.mark.parametrize("lab", LABS, ids=[p.name for p in LABS])
def test_every_lab_gets_a_deck(lab, tmp_path):
    copy = tmp_path / lab.name
    shutil.copy(lab, copy)
    slides.apply_file(copy)
    nb = nbformat.read(copy, as_version=4)
    kinds = [c.metadata["slideshow"]["slide_type"] for c in nb.cells]
    assert set(kinds) <= set(slides.SLIDE_TYPES)
    assert kinds[0] == "slide" and kinds.count("slide") >= 3
    for cell, kind in zip(nb.cells, kinds):
        tags = set(cell.metadata.get("tags", []))
        if "instructor" in tags:
            assert kind == "notes"
        if "parameters" in tags:
            assert kind == "skip"
    assert slides.apply_file(copy) == 0


def test_the_ci_script_runs_without_an_install(tmp_path):
    path = tmp_path / "09_lab.ipynb"
    nbformat.write(sample_notebook(), path)
    out = subprocess.run([sys.executable, str(ROOT / "ci/add-slide-metadata"), str(path)],
                         capture_output=True, text=True, check=True).stdout
    assert "changed 15 cell(s)" in out
