"""Charts the labs call instead of building them in a cell: the workload's line stays visible on top
of the whole guest's (lab 01), touch speeds of one or two refault runs (labs 01 and 05)."""
from __future__ import annotations

import pytest

from reclaimlab.present import charts
from reclaimlab.recording import datasets


def test_the_workloads_line_is_drawn_last_and_dashed():
    spec = charts.workload_memory(datasets.find("calloc-reclaim")).to_dict()
    lines = [layer for layer in spec["layer"] if (layer.get("mark", {}).get("type") if isinstance(layer.get("mark", {}), dict)
                                                  else layer["mark"]) == "line"]
    assert len(lines) == 2
    top = lines[-1]
    assert top["mark"].get("strokeWidth") == 3
    dash = top["encoding"]["strokeDash"]["scale"]
    own = dash["domain"].index("Our allocator's own memory cgroup (dashed)")  # the figure lab 01's claims quote
    assert dash["range"][own] == [7, 3] and all(r == [1, 0] for i, r in enumerate(dash["range"]) if i != own)


def test_lines_without_on_top_is_one_layer_as_before():
    spec = charts.lines(datasets.find("calloc-reclaim"), {"anon_kib": "AnonPages"}, title="t").to_dict()
    marks = [layer.get("mark") for layer in spec["layer"]]
    assert sum(1 for m in marks if m == {"type": "line", "interpolate": "step-after"}) == 1
    assert all("strokeDash" not in layer.get("encoding", {}) for layer in spec["layer"])


def test_touch_speeds_one_or_two_runs():
    one = charts.touch_speeds({"this run": datasets.find("refault")}).to_dict()
    assert "xOffset" not in one["encoding"]
    on = datasets.find("refault", {"reporting": True}, guest_kind="kit-vm")
    off = datasets.find("refault", {"reporting": False}, guest_kind="kit-vm")
    two = charts.touch_speeds({"reporting on": on, "reporting off": off}).to_dict()
    assert two["encoding"]["xOffset"]["sort"] == ["reporting on", "reporting off"]
    with pytest.raises(ValueError, match="no touch speeds"):
        charts.touch_speeds({"x": datasets.find("calloc-reclaim")})
