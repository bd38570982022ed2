"""reclaimlab.cli.labs: which labs run, and whether an earlier stage's executed copies can be reused
(the browser and site checks open the copies the labs check wrote in the same pytest session)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from reclaimlab.cli import labs as cli_labs


def _labs(tmp_path: Path) -> list[Path]:
    labs = tmp_path / "labs"
    labs.mkdir()
    for name in ("00_start.ipynb", "01_calloc.ipynb", "notes.ipynb"):
        (labs / name).write_text("{}")
    return cli_labs.lab_notebooks(labs)


def test_only_numbered_notebooks_are_labs(tmp_path):
    assert [p.name for p in _labs(tmp_path)] == ["00_start.ipynb", "01_calloc.ipynb"]


def test_executed_copies_are_reused_only_when_every_one_is_from_this_run(tmp_path):
    labs = _labs(tmp_path)
    out = cli_labs.executed_dir(labs[0].parent, "recorded")
    assert out == tmp_path / "build" / "labs" / "recorded"
    out.mkdir(parents=True)
    assert not cli_labs.executed_since(labs, out, 1000.0)  # none yet
    (out / labs[0].name).write_text("{}")
    assert not cli_labs.executed_since(labs, out, 1000.0)  # one missing
    (out / labs[1].name).write_text("{}")
    assert cli_labs.executed_since(labs, out, 1000.0)
    os.utime(out / labs[1].name, (500.0, 500.0))  # a copy from an earlier run
    assert not cli_labs.executed_since(labs, out, 1000.0)
    assert not cli_labs.executed_since([], out, 1000.0)  # no labs: nothing to reuse


@pytest.mark.slow
def test_a_lab_runs_without_the_kernels_tcp_warning_and_leaves_no_socket_folder(tmp_path, capfd):
    import tempfile

    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("mode = 'auto'", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("print(mode)")]
    lab = tmp_path / "00_tiny.ipynb"
    nbformat.write(nb, lab)
    before = set(Path(tempfile.gettempdir()).glob("reclaimlab-kernel-*"))
    (tmp_path / "out").mkdir()
    cli_labs.execute_lab(lab, tmp_path / "out", "recorded")
    assert "recorded" in nbformat.read(tmp_path / "out" / lab.name, 4).cells[-1].outputs[0]["text"]
    assert "without encryption" not in capfd.readouterr().err
    assert set(Path(tempfile.gettempdir()).glob("reclaimlab-kernel-*")) <= before
