"""The browser check's own logic, without a browser: what it injects, when it thinks the kernel is
ready and the run is done, and what it reports (`pytest -m browser` runs the real thing)."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bc():
    spec = importlib.util.spec_from_file_location("browser_check", ROOT / "tests" / "checks" / "browser_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["browser_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("browser_check", None)


def code(source: str, count: int | None = 1, outputs: list | None = None) -> dict:
    return {"cell_type": "code", "source": source, "execution_count": count, "outputs": outputs or [],
            "metadata": {}}


def dom_cell(prompt: str = "[1]:", outputs: list | None = None, text: str = "") -> dict:
    return {"code": True, "prompt": prompt, "outputs": outputs or [], "text": text}


def dom_output(mime: str = "text/html", ok_imgs: int = 0, svgs: int = 0, widgets: int = 0, vega: bool = False) -> dict:
    return {"mime": mime, "imgs": [{"ok": True, "svg": True}] * ok_imgs, "svgs": svgs, "canvases": 0,
            "widgets": widgets, "text": "", "vega": vega, "height": 100}


def test_recorded_mode_is_injected_after_the_parameters_cell(bc):
    nb = {"cells": [code("import x"), {**code('mode = "auto"'), "metadata": {"tags": ["parameters"]}}, code("go()")]}
    bc.inject_recorded_mode(nb)
    assert [c["source"] for c in nb["cells"]][1:3] == ['mode = "auto"', nb["cells"][2]["source"]]
    assert nb["cells"][2]["source"].startswith('mode = "recorded"')
    assert nb["cells"][2]["metadata"]["tags"] == ["injected-parameters"]
    plain = {"cells": [code("x = 1")]}
    bc.inject_recorded_mode(plain)
    assert len(plain["cells"]) == 1


def test_prepare_copies_into_build_never_into_labs(bc, tmp_path, monkeypatch):
    monkeypatch.setattr(bc, "BUILD", tmp_path / "browser")
    monkeypatch.setattr(bc, "SHOTS", tmp_path / "shots")
    labs = sorted((ROOT / "labs").glob("[0-9]*.ipynb"))[:1]
    before = labs[0].read_bytes()
    out = bc.prepare(labs)
    assert [p.name for p in out] == [bc.SELF_TEST_NB, labs[0].name, bc.DASHBOARD_NB]
    assert all(p.parent == tmp_path / "browser" / "labs" for p in out)
    assert labs[0].read_bytes() == before
    copy = json.loads(out[1].read_text())
    assert any("".join(c["source"]).startswith('mode = "recorded"') for c in copy["cells"])
    settings = tmp_path / "browser/settings/@jupyterlab/notebook-extension/tracker.jupyterlab-settings"
    assert json.loads(settings.read_text()) == {"windowingMode": "none"}


def test_the_kernel_is_ready_only_when_the_status_bar_says_so(bc):
    # The toolbar reads "idle" before a kernel exists; Run All Cells is then lost.
    assert not bc.kernel_idle({"status": "idle", "bar": "0\nNo Kernel | Initializing\nMode: Command"})
    assert not bc.kernel_idle({"status": "busy", "bar": "1\nPython 3 (ipykernel) | Busy"})
    assert bc.kernel_idle({"status": "idle", "bar": "1\nPython 3 (ipykernel) | Idle\nMode: Command"})


def test_run_progress(bc):
    st = {"cells": [dom_cell("[1]:"), dom_cell("[*]:"), dom_cell("[ ]:"), {"code": False, "prompt": ""}]}
    assert bc.started(st) and bc.queued(st)
    assert not bc.started({"cells": [dom_cell("[ ]:")]})
    assert "1 of 3 code cells" in bc.progress(st)


def test_an_error_is_reported_once_with_the_cells_it_stopped(bc):
    result = bc.LabResult("04_x")
    nb = {"cells": [code("a = 1"), code("boom()", outputs=[{"output_type": "error", "ename": "RecordingError",
                                                             "evalue": "no recording"}]),
                    code("b", count=None), code("c", count=None)]}
    bc.check_saved(result, nb)
    assert result.failures == ["code cell 2 (boom()): raised RecordingError: no recording",
                               "2 code cells from cell 3 on did not run (after the error above)"]


def test_rendering_failures_are_named(bc):
    nb = {"cells": [code("charts.lines(rec)"), code("charts.lines(rec)"), code("alt.Chart(df)"),
                    code('lab.question("q", ["a", "b"], 0, "x")'), code('lab.predict("p", ["a", "b"])'),
                    code("show()")]}
    st = {"cells": [dom_cell(outputs=[dom_output("image/svg+xml", ok_imgs=1)]),
                    dom_cell(outputs=[dom_output("image/svg+xml")]),                 # blank
                    dom_cell(outputs=[dom_output("text/html", vega=True)]),          # needs a CDN
                    dom_cell(outputs=[dom_output("text/html")]),                     # no widget
                    dom_cell(outputs=[dom_output("text/html"), dom_output("", widgets=1)]),
                    dom_cell(outputs=[dom_output("")], text="Error displaying widget: model not found")]}
    result = bc.LabResult("lab")
    bc.check_rendering(result, st, nb)
    assert result.charts == 2 and result.widgets == 1
    assert [f.split(": ", 1)[0] for f in result.failures] == [
        "code cell 2 (charts.lines(rec))", "code cell 3 (alt.Chart(df))",
        'code cell 4 (lab.question("q", ["a", "b"], 0, "x"))', "code cell 6 (show())"]
    assert "blank" in result.failures[0] and "JavaScript" in result.failures[1]
    assert "no widget" in result.failures[2] and "Error displaying widget" in result.failures[3]


def test_the_self_test_passes_only_when_every_planted_failure_is_reported(bc):
    r = bc.LabResult(bc.SELF_TEST_NB)
    r.failures = [f"cell: {text}" for text in bc.SELF_TEST_EXPECTED.values()]
    assert bc.self_test_misses(r) == []
    r.failures = r.failures[1:]
    assert len(bc.self_test_misses(r)) == 1


def test_a_widget_still_loading_keeps_the_page_unsettled(bc):
    def page(*outputs):
        return {"cells": [{"code": True, "outputs": [
            {"mime": m, "widgets": w, "text": t} for m, w, t in outputs]}]}
    loading = page(("", 0, "Loading widget..."))
    failed = page(("", 0, "Error displaying widget: model not found"))
    rendered = page((bc.WIDGET_MIME, 1, ""))
    assert bc.pending_widgets(loading) == 1
    assert bc.pending_widgets(failed) == 0 and bc.pending_widgets(rendered) == 0


def test_a_live_dashboard_does_not_keep_the_page_unsettled_but_other_changes_do(bc):
    class FakeLab:  # each read: the dashboard's cell shows a new time; `other` changes another cell
        def __init__(self, other: bool):
            self.n, self.other = 0, other

        def state(self):
            self.n += 1
            return {"status": "idle", "cells": [
                {"code": True, "live": True, "outputs": [{"mime": "", "widgets": 1, "text": f"t = {self.n} s"}],
                 "text": f"t = {self.n} s"},
                {"code": True, "live": False, "outputs": [], "text": str(self.n) if self.other else ""}]}
    live = FakeLab(other=False)
    st = bc.settled_state(live, min_s=0.02, max_s=5, poll_s=0.01)
    assert live.n <= 3 and st["cells"][0]["text"] == f"t = {live.n} s"   # read as shown, not emptied
    changing = FakeLab(other=True)
    bc.settled_state(changing, min_s=0.02, max_s=0.2, poll_s=0.01)
    assert changing.n >= 10   # never settled: read at max_s


def md(source: str, tags: list[str] | None = None) -> dict:
    return {"cell_type": "markdown", "source": source, "metadata": {"tags": tags or []}}


def dom_md(shown: str, summary: str = "") -> dict:
    return {"code": False, "prompt": "", "outputs": [], "text": "", "shown": shown, "summary": summary}


def test_a_solution_may_show_its_summary_and_nothing_more(bc):
    nb = {"cells": [md("q"), md("<details><summary>Solution</summary>\n\nB</details>", ["solution"]),
                    md("**Solution.** B", ["solution"]), md("hidden", ["solution"])]}
    st = {"cells": [dom_md("q"), dom_md("Solution (open it)\n", "Solution (open it)"),  # shut
                    dom_md("Solution. B is the answer"),                                  # open
                    dom_md("")]}                                                          # collapsed
    result = bc.LabResult("lab")
    assert bc.check_solutions(result, st, nb) == 3
    assert result.failures == ["cell 3: a solution is visible before the learner opens it ('Solution. B is the answer')"]
    mismatch = bc.LabResult("lab")
    bc.check_solutions(mismatch, {"cells": st["cells"][:2]}, nb)
    assert "the page shows 2 cells, the notebook has 4" in mismatch.failures[0]


def test_an_untrusted_copy_must_show_every_chart_of_the_file_as_a_picture(bc):
    ours = {"output_type": "display_data", "data": {"text/html": '<img class="reclaimlab-chart" src="data:...">'}}
    svg = {"output_type": "display_data", "data": {"image/svg+xml": "<svg/>", "text/plain": "alt.Chart(...)"}}
    nb = {"cells": [code("charts.lines(rec)", outputs=[ours]), code("alt.Chart(df)", outputs=[svg]),
                    code("charts.host_view(rec)", outputs=[ours])]}
    st = {"cells": [dom_cell(outputs=[dom_output("text/html", ok_imgs=1)]),
                    dom_cell(outputs=[{**dom_output("text/plain"), "text": "alt.Chart(...)"}]),  # refused
                    dom_cell(outputs=[{**dom_output("text/html"), "imgs": [{"ok": False, "svg": True}]}])]}
    result = bc.LabResult("untrusted/lab")
    bc.check_untrusted(result, st, nb)
    assert result.charts == 1
    assert [f.split(": ", 1)[0] for f in result.failures] == [
        "code cell 2 (alt.Chart(df))", "code cell 3 (charts.host_view(rec))", "3 charts in the executed file, 1 rendered as pictures"]
    assert "shows as its text" in result.failures[0] and "did not load" in result.failures[1]
    assert all(bc.is_chart_output(o) for o in (ours, svg))
    assert not bc.is_chart_output({"output_type": "display_data", "data": {"text/html": "<table></table>"}})


def test_a_chart_shown_as_text_is_caught_in_a_trusted_run_too(bc):
    result = bc.LabResult("lab")
    bc.check_rendering(result, {"cells": [dom_cell(outputs=[{**dom_output("text/plain"), "text": "<Chart>"}])]},
                       {"cells": [code("chart")]})
    assert result.failures and "shows as its text" in result.failures[0]


def test_every_planted_failure_has_a_notebook_that_plants_it(bc):
    broken = bc.self_test_notebook()
    assert any("solution" in c["metadata"].get("tags", []) and c["metadata"]["jupyter"]["source_hidden"]
               for c in broken["cells"])
    planted = bc.self_test_untrusted_notebook()
    outputs = [o for c in planted["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert len(outputs) == 2 and all(bc.is_chart_output(o) for o in outputs)
    assert "image/svg+xml" in outputs[0]["data"] and "reclaimlab-chart" in outputs[1]["data"]["text/html"]
    r = bc.LabResult(bc.SELF_TEST_UNTRUSTED_NB)
    r.failures = [f"x: {t}" for t in bc.SELF_TEST_UNTRUSTED_EXPECTED.values()][:-1]
    assert len(bc.self_test_misses(r, bc.SELF_TEST_UNTRUSTED_EXPECTED)) == 1


def test_a_collapsed_code_cell_must_show_the_placeholder_not_its_source(bc):
    hidden = {**code("plot_it()"), "metadata": {"jupyter": {"source_hidden": True}}}
    tagged = {**code("table()"), "metadata": {"tags": ["hide-input"]}}
    nb = {"cells": [md("q"), code("ctx.run()"), hidden, hidden, tagged]}
    st = {"cells": [dom_md("q"), {**dom_cell(), "collapsed": False, "editor": True},   # not meant collapsed
                    {**dom_cell(), "collapsed": True, "editor": False},                # collapsed: ok
                    {**dom_cell(), "collapsed": False, "editor": True},                # Run All opened it
                    {**dom_cell(), "collapsed": False, "editor": True}]}               # tag only
    result = bc.LabResult("lab")
    assert bc.check_collapsed(result, st, nb) == 3
    assert [f.split(" (", 1)[0] for f in result.failures] == ["cell 4", "cell 5"]
    assert "metadata jupyter.source_hidden" in result.failures[0]
    assert "hide-input tag" in result.failures[1] and "JupyterLab collapses only on" in result.failures[1]
    assert all("shows its source after Run All" in f for f in result.failures)
    planted = bc.self_test_notebook()["cells"]
    assert [bc.meant_collapsed(c) for c in planted if bc.meant_collapsed(c)] == [
        "a hide-input tag", "metadata jupyter.source_hidden"]
