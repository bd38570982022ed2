"""Step markers on every chart that compares runs (issue 25): the library's comparison charts draw a rule at
each step, and the labs draw no chart of their own (a chart built in a lab would escape this check)."""
from __future__ import annotations

import json

import pandas as pd

from reclaimlab import paths
from reclaimlab.present import charts
from reclaimlab.recording import datasets
from reclaimlab.wsl import autoreclaim_policy

GIB = 2**30


def _marks(spec: dict) -> list[str]:
    out = []
    for layer in spec.get("layer", [spec]):
        out += _marks(layer) if "layer" in layer else [layer.get("mark", {}).get("type", layer.get("mark"))]
    return out


def test_compare_marks_each_run_s_steps():
    rec = datasets.find("page-cache")
    spec = charts.compare({"a": rec, "b": rec}, "cached_kib", title="t").to_dict()
    assert "rule" in _marks(spec)


def test_the_policy_model_marks_the_build_end_and_each_action():
    model = dict(duration_s=30 * 60, busy_until_s=5 * 60, mem_total_bytes=16 * GIB, anon_bytes=GIB, cache_bytes=3 * GIB)
    runs = {f"{v} · {m}": pd.DataFrame(autoreclaim_policy.simulate(autoreclaim_policy.Policy(m, v), **model))
            for v in autoreclaim_policy.VARIANTS for m in ("disabled", "dropCache", "gradual")}
    spec = charts.policy_model(runs, busy_until_s=model["busy_until_s"], title="t").to_dict()
    marks = _marks(spec)
    assert {"line", "rule", "point", "text"} <= set(marks)
    rule = next(layer for layer in spec["layer"] if layer["mark"]["type"] == "rule")
    rule_data = spec["datasets"][rule["data"]["name"]]
    assert rule_data[0]["minute"] == 5 and "steps" in charts.describe(spec)


def test_labs_draw_no_chart_of_their_own():
    for nb in sorted(paths.labs_dir().glob("0[0-5]_*.ipynb")):
        code = "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
        assert "alt.Chart" not in code and "import altair" not in code, f"{nb.name}: draw charts with reclaimlab.present.charts"
