"""One declaration per experiment: a toy declared here, through the public API (reclaimlab.catalog), is
found by the doctor, the plan, the schema check and `reclaimlab record --help`, with no other file
touched; and probe/ names no experiment and no lab (it reports what the machine has)."""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import tree_roots
from reclaimlab import catalog
from reclaimlab.cli.app import main
from reclaimlab.experiments import verdicts
from reclaimlab.notebook import plan
from reclaimlab.recording import recording, schema
from reclaimlab.recording.recording import Recording, RecordingError

ROOT = Path(__file__).resolve().parents[1]
TOY = "toy-hold"


@pytest.fixture
def toy():
    exp = catalog.declare(catalog.Experiment(
        TOY, "hold a buffer for a while (a test's own experiment)",
        defaults={"size": "64MiB", "hold_s": 1.5, "sample_hz": 10.0, "rounds": 2},
        units={"rounds": "count"}, vm_defaults=None, needs=("memory",),
        results={"held_s": "s", "held_kib": "KiB"}, columns={"toy_resident_kib": "KiB"}, events=("hold",),
        labs=("99_toy_lab",), findings=("toy",)))
    yield catalog.attach_runner(TOY, _never_run)
    catalog.withdraw(TOY)


def _never_run(**_kw):
    raise AssertionError("the toy's live script is never run by these tests")


def _toy_recording(**results) -> Recording:
    n = 5
    samples = pd.DataFrame({"t_s": np.arange(n) / 10, "mem_total_kib": [16000] * n, "toy_resident_kib": [10] * n})
    events = pd.DataFrame({"t_s": [0.1], "kind": ["hold"], "detail": [""]})
    meta = {"schema_version": recording.SCHEMA_VERSION, "experiment": TOY, "parameters": {"size": "64MiB"},
            "mode": "live", "complete": True, "kernel_release": "6.18.44", "guest_kind": "vm", "sample_hz": 10.0,
            "tool_version": "0.1.0", "date_utc": "2026-12-06T21:00:00Z", "results": results}
    return Recording(samples=samples, events=events, meta=meta)


def test_the_toy_is_in_the_doctors_table_and_json(toy):
    tree = tree_roots("firecracker-vm")
    args = ["doctor", "--proc-root", str(tree.proc), "--sys-root", str(tree.sys)]
    text = CliRunner().invoke(main, args).output
    row = next(line for line in text.splitlines() if line.startswith(f"  {TOY} (lab 99)"))
    assert "can be allocated safely" in row
    d = json.loads(CliRunner().invoke(main, args + ["--json"]).output)["live_support"][TOY]
    assert d["labs"] == ["99_toy_lab"] and d["needs_consent"] is False and d["verdict"] in ("live", "recorded")


def test_the_toy_is_in_the_plan(toy):
    assert plan.LAB_EXPERIMENTS["99 · toy lab"] == (TOY,)
    info = verdicts.probe(tree_roots("firecracker-vm"), env={})
    how, why = plan.experiment_plan(TOY, "auto", None, guest_info=info)
    assert (how, why) == ("live", "this guest can run it")
    catalog.declare(dataclasses.replace(toy, runner=None))  # declared, no live script: its recording is shown
    how, why = plan.experiment_plan(TOY, "auto", None, guest_info=info)
    assert how == "recorded" and "no live script" in why
    toy = catalog.attach_runner(TOY, _never_run)
    # judged from its declared needs: too little memory here, and the plan shows its recording, saying why
    tight = dataclasses.replace(info, memory=dataclasses.replace(info.memory, memory_budget_bytes=1 << 20))
    how, why = plan.experiment_plan(TOY, "auto", None, guest_info=tight)
    assert how == "recorded" and "needs 256 MiB" in why


def test_the_schema_checks_the_toys_recordings(toy, tmp_path):
    back = recording.load(recording.save(_toy_recording(held_s=1.5, held_kib=65536), tmp_path / "ok"))
    assert back.meta["results"] == {"held_s": 1.5, "held_kib": 65536}
    with pytest.raises(RecordingError, match=f"result 'held_ms' of {TOY} is not declared"):
        recording.save(_toy_recording(held_ms=3), tmp_path / "bad")
    with pytest.raises(RecordingError, match="'held_s' of toy-hold must be s"):
        recording.save(_toy_recording(held_s="long"), tmp_path / "bad2")
    catalog.withdraw(TOY)
    problem = schema.problem(_toy_recording().meta, ["t_s"])
    assert problem.startswith(f"experiment '{TOY}' is not declared") and "catalog.declare" in problem


def test_the_toy_is_in_record_help(toy):
    out = CliRunner().invoke(main, ["record", "--help"], terminal_width=400).output
    assert f"{TOY}: hold a buffer for a while" in out
    assert "hold_s=1.5 (s)" in out and "rounds=2 (count)" in out and "Labs: 99_toy_lab" in out


def test_the_toy_needed_no_other_file():
    """Its name is only in this module: lib/, labs/ and the data hold nothing of it."""
    for folder in ("lib", "labs", "docs"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in (".py", ".ipynb", ".md", ".json"):
                assert TOY not in path.read_text(errors="replace"), path


def test_a_declaration_without_a_unit_is_refused():
    with pytest.raises(catalog.CatalogError, match="parameter 'rounds' has no unit"):
        catalog.declare(catalog.Experiment("toy-unitless", "x", defaults={"rounds": 2}))
    assert "toy-unitless" not in catalog.names()
    with pytest.raises(catalog.CatalogError, match="need 'gpu' is not one of"):
        catalog.declare(catalog.Experiment("toy-gpu", "x", defaults={}, needs=("gpu",)))


def test_every_kit_parameter_has_a_unit():
    for exp in catalog.REGISTRY.values():
        assert exp.problem() is None, exp.problem()
        for param in {**exp.defaults, **(exp.vm_defaults or {})}:
            assert exp.unit_of(param)


def test_probe_names_no_experiment_and_no_lab():
    """The probe reports what the machine has; which experiment needs what is the experiments' to say."""
    lab_stems = {p.stem for p in (ROOT / "labs").glob("[0-9][0-9]_*.ipynb")}
    lab_stems |= {stem for exp in catalog.REGISTRY.values() for stem in exp.labs}
    quoted = re.compile(r"""["'](%s)["']""" % "|".join(map(re.escape, catalog.names())))
    for path in sorted((ROOT / "lib/reclaimlab/probe").rglob("*.py")):
        text = path.read_text()
        assert not quoted.search(text), (path.name, quoted.search(text).group(0))
        for stem in lab_stems:
            assert stem not in text, (path.name, stem)
        assert not re.search(r"\blabs? 0\d", text), (path.name, re.search(r"\blabs? 0\d", text).group(0))
        assert "catalog" not in text and "experiments" not in re.sub(r"#.*|\"\"\".*?\"\"\"", "", text, flags=re.S), \
            path.name


def test_every_kit_declaration_names_real_findings_and_labs():
    import importlib
    for exp in catalog.REGISTRY.values():
        assert exp.labs and exp.findings and exp.events and exp.results, exp.name
        for lab in exp.labs:
            assert (ROOT / "labs" / f"{lab}.ipynb").is_file(), (exp.name, lab)
        for module in exp.findings:
            importlib.import_module(f"reclaimlab.present.findings.{module}")
