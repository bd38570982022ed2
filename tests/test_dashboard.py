"""The live dashboard: bounded data, one at a time, clean stops, frames that keep coming, presenter
fonts, and (in a real ipykernel 7 kernel) widget updates that arrive while another cell runs."""
from __future__ import annotations

import re
import threading
import time

import pytest

from conftest import tree_roots
from reclaimlab.present import charts, dashboard
from reclaimlab.present.dashboard import Dashboard, DashboardError

ROOTS = tree_roots("firecracker-vm")  # a captured guest: the tests never depend on this machine's memory


class FakeHostView:
    """A host view as host.available_host_views() gives them: .column, .read(), .close()."""

    column = "host_reported_kib"

    def __init__(self, start_kib: int = 5_000_000, step_kib: int = 2048):
        self.value = start_kib
        self.step = step_kib
        self.closed = 0

    def read(self) -> int:
        self.value += self.step
        return self.value

    def close(self) -> None:
        self.closed += 1


def dashboard_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("reclaimlab-dashboard")]


def wait_until(predicate, timeout_s: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


def figure_time_s(value: str) -> float:
    return float(re.search(r"data-t-s='([0-9.]+)'", value).group(1))


@pytest.fixture
def dash_factory():
    """Start dashboards on the captured tree; every one is stopped at the end, even on failure."""
    made: list[Dashboard] = []

    def make(**kw) -> Dashboard:
        kw.setdefault("roots", ROOTS)
        kw.setdefault("host", False)
        kw.setdefault("display", False)
        d = dashboard.show(**kw)
        made.append(d)
        return d

    yield make
    dashboard.stop()
    for d in made:
        d.stop()
    assert not dashboard_threads(), "a dashboard thread outlived its test"


# --------------------------------------------------------------------------- pure parts


def test_format_kib_has_units():
    assert dashboard.format_kib(512 * 1024) == "512 MiB"
    assert dashboard.format_kib(3 * 1024 * 1024) == "3.00 GiB"
    assert dashboard.format_kib(None) == "n/a"


def test_reported_kib_is_shown_since_start_and_vm_footprint_as_is():
    assert dashboard.host_value("host_reported_kib", 7000, 5000) == 2000
    assert dashboard.host_value("host_reported_kib", 7000, None) is None
    assert dashboard.host_value("host_vm_rss_kib", 7000, 5000) == 7000


def test_time_axis_fills_then_scrolls():
    assert dashboard.x_domain(10.0, 120.0) == [0.0, 120.0]
    assert dashboard.x_domain(300.0, 120.0) == [180.0, 300.0]


def test_spec_shows_only_the_window_and_its_events():
    cols = ("mem_total_kib", "mem_free_kib", "anon_kib", "cached_kib", "buffers_kib", "slab_reclaimable_kib")
    rows = [(t / 4, 8_000_000, 4_000_000, 1_000_000, 500_000, 10, 90_000) for t in range(4 * 200)]
    spec = dashboard.chart_spec(rows, cols, [(10.0, "alloc", ""), (150.0, "free", "3GB")], window_s=60)
    stack = spec["layer"][0]["data"]["values"]
    assert min(d["t_s"] for d in stack) >= 200 - 60 - 0.25
    assert len(stack) <= 4 * (dashboard.MAX_POINTS_PER_SERIES + 1)
    labels = [v.get("label") for layer in spec["layer"][1:] for v in layer["data"]["values"]]
    assert "free 3GB" in labels and not any(str(l).startswith("alloc") for l in labels)
    assert not [l for l in spec["layer"] if l["mark"]["type"] == "line"], "no host column: no host line"
    with_host = dashboard.chart_spec([r + (7000,) for r in rows], cols + ("host_reported_kib",), [], window_s=60,
                                     host_base={"host_reported_kib": 5000})
    line = next(l for l in with_host["layer"] if l["mark"]["type"] == "line")
    assert {d["GiB"] for d in line["data"]["values"]} == {2000 / 1024 / 1024}  # since start, in GiB


def test_bad_parameters_are_refused_with_their_names():
    with pytest.raises(ValueError, match="sample rate"):
        Dashboard(hz=0, roots=ROOTS, host=False)
    with pytest.raises(ValueError, match="hz=100"):
        Dashboard(hz=100, roots=ROOTS, host=False)
    with pytest.raises(ValueError, match="window_s"):
        Dashboard(window_s=-5, roots=ROOTS, host=False)
    with pytest.raises(ValueError, match="window_s"):
        Dashboard(window_s=dashboard.MAX_WINDOW_S * 2, roots=ROOTS, host=False)


# --------------------------------------------------------------------------- presenter fonts


def test_presenter_enlarges_chart_and_figure_fonts():
    rows = [(0.0, 8_000_000, 4_000_000, 1_000_000)]
    cols = ("mem_total_kib", "mem_free_kib", "anon_kib")
    normal = dashboard.chart_spec(rows, cols, [], 60, presenter=False)["config"]
    big = dashboard.chart_spec(rows, cols, [], 60, presenter=True)["config"]
    for part in ("axis", "legend"):
        for key, size in normal[part].items():
            assert big[part][key] == round(size * dashboard.PRESENTER_FONT_SCALE)
    assert big["title"]["fontSize"] > normal["title"]["fontSize"]
    row = dict(zip(("t_s", *cols), rows[0]))
    assert "font-size:21px" in dashboard.figures_html(row, {}, 1, 1, 4, 60, presenter=True)
    assert "font-size:14px" in dashboard.figures_html(row, {}, 1, 1, 4, 60, presenter=False)


def test_presenter_none_follows_lab_setup_and_reaches_the_svg(dash_factory):
    try:
        charts.use_offline_renderer(presenter=True)  # what lab.setup(presenter=True) does
        d = dash_factory(window_s=10)
        assert d.presenter is True
        svg = d.svg
        assert 'font-size="16px"' in svg and 'font-size="11px"' not in svg  # axis labels 11 px * 1.5
    finally:
        charts.use_offline_renderer(presenter=False)
    d2 = dash_factory(window_s=10)
    assert d2.presenter is False
    assert 'font-size="11px"' in d2.svg


# --------------------------------------------------------------------------- life cycle


def test_ring_buffer_is_bounded_by_the_window(dash_factory):
    d = dash_factory(hz=20, window_s=0.5, chart_hz=1)
    bound = d._ring.maxlen
    assert bound <= 0.5 * 20 + 5
    wait_until(lambda: d.samples_taken > 3 * bound, timeout_s=10, what="the ring to wrap three times")
    assert len(d.data()) == bound
    span_s = d.data()["t_s"].iloc[-1] - d.data()["t_s"].iloc[0]
    assert span_s <= 0.5 + 5 / 20
    for i in range(dashboard.MAX_EVENTS + 25):
        d.mark("note", str(i))
    events = d.events()
    assert len(events) == dashboard.MAX_EVENTS and events["detail"].iloc[-1] == str(dashboard.MAX_EVENTS + 24)


def test_frames_keep_coming(dash_factory):
    d = dash_factory(hz=10, window_s=30, chart_hz=4)
    wait_until(lambda: d.chart_frames >= 2, what="a chart frame from the render thread")
    figures0, svg0, frames0 = d.figures.value, d.svg, d.chart_frames
    time.sleep(1.2)
    assert figure_time_s(d.figures.value) >= figure_time_s(figures0) + 0.8
    assert d.svg != svg0 and d.svg.startswith("<svg")
    assert d.chart_frames >= frames0 + 2
    assert d.figure_frames >= 8


def test_second_show_replaces_the_first(dash_factory):
    first = dash_factory(hz=10, window_s=10)
    first_threads = [t for t in dashboard_threads()]
    assert len(first_threads) == 2 and all(t.is_alive() for t in first_threads)
    second = dash_factory(hz=10, window_s=10)
    assert first.stopped and not any(t.is_alive() for t in first_threads)
    assert dashboard.current() is second
    assert len(dashboard_threads()) == 2
    assert "Stopped" in first.status.value


def test_stop_joins_threads_closes_sources_and_is_safe_twice(dash_factory, monkeypatch):
    view = FakeHostView()
    monkeypatch.setattr("reclaimlab.probe.hostviews.available_host_views", lambda roots=None: [view])
    d = dash_factory(hz=10, window_s=10, host=True)
    wait_until(lambda: d.samples_taken >= 3, what="three samples")
    cost = d.stop()
    assert not d.running and not dashboard_threads()
    assert view.closed == 1 and d._readers is None
    assert cost["samples"] >= 3 and cost["chart_frames"] >= 1
    taken = d.samples_taken
    time.sleep(0.3)
    assert d.samples_taken == taken, "sampling went on after stop()"
    d.stop()
    assert view.closed == 1
    with pytest.raises(DashboardError, match="not running"):
        d.mark("free")


def test_host_view_is_shown_as_returned_since_start(dash_factory):
    view = FakeHostView(start_kib=5_000_000, step_kib=1024 * 1024)  # 1 GiB more at every read
    d = dash_factory(hz=10, window_s=10, host=[view])
    wait_until(lambda: d.samples_taken >= 3, what="three samples")
    d.stop()
    assert view.closed == 0, "a view the caller passed is the caller's to close"
    assert "Returned to the host since start" in d.figures.value
    returned_gib = float(re.search(r"Returned to the host since start <b>([0-9.]+) GiB", d.figures.value).group(1))
    assert returned_gib == d.samples_taken - 1
    assert "returned to the host since start" in d.svg


def test_a_failing_source_is_shown_in_the_view_not_printed(dash_factory):
    class Broken(FakeHostView):
        def read(self):
            raise OSError("host went away")

    d = dash_factory(hz=10, window_s=10, host=[Broken()])
    time.sleep(0.3)
    assert d.running  # a host view failing leaves its column empty; the sampler's policy
    assert "n/a" in d.figures.value


def test_first_frame_failure_raises_in_the_cell(tmp_path):
    from reclaimlab.probe.sources import Roots, SourceError
    with pytest.raises(SourceError, match="meminfo"):
        dashboard.show(roots=Roots(tmp_path / "proc", tmp_path / "sys"), host=False, display=False)
    assert not dashboard_threads()


# --------------------------------------------------------------------------- a real ipykernel 7


def _run_cell(kc, code: str, timeout_s: float = 60.0) -> list[dict]:
    """Execute `code`; every iopub message until this cell's kernel status is idle again."""
    msg_id = kc.execute(code)
    messages = []
    deadline = time.monotonic() + timeout_s
    while True:
        m = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        messages.append(m)
        if (m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "status"
                and m["content"]["execution_state"] == "idle"):
            return messages


def _errors(messages: list[dict]) -> list[str]:
    return [f"{m['content']['ename']}: {m['content']['evalue']}" for m in messages if m["msg_type"] == "error"]


@pytest.mark.slow
def test_updates_arrive_while_another_cell_runs_in_a_real_kernel():
    jupyter_client = pytest.importorskip("jupyter_client")
    km, kc = jupyter_client.manager.start_new_kernel(kernel_name="python3")
    try:
        opened = _run_cell(kc, "from pathlib import Path\nfrom reclaimlab.present import dashboard\n"
                               "from reclaimlab.probe.sources import Roots\n"
                               f"d = dashboard.show(hz=5, window_s=10, chart_hz=2, host=False, "
                               f"roots=Roots(Path({str(ROOTS.proc)!r}), Path({str(ROOTS.sys)!r})))")
        assert not _errors(opened), _errors(opened)
        models = {m["content"]["comm_id"]: m["content"]["data"]["state"]
                  for m in opened if m["msg_type"] == "comm_open"}
        box = next(st for st in models.values() if st.get("_model_name") == "VBoxModel")
        figures_id, chart_id, _status_id = (ref.replace("IPY_MODEL_", "") for ref in box["children"])
        assert models[figures_id]["_model_name"] == "HTMLModel" and models[chart_id]["_model_name"] == "ImageModel"

        sleeping = _run_cell(kc, "import time\ntime.sleep(3)")  # the dashboard must move meanwhile
        assert not _errors(sleeping), _errors(sleeping)
        figure_values = [m["content"]["data"]["state"]["value"] for m in sleeping
                         if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == figures_id
                         and "value" in m["content"]["data"]["state"]]
        chart_updates = [m for m in sleeping if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == chart_id]
        assert len(figure_values) >= 8, f"only {len(figure_values)} figure updates in 3 s at 5 samples/s"
        times = [figure_time_s(v) for v in figure_values]
        assert times == sorted(times) and times[-1] - times[0] >= 2.0
        assert len(chart_updates) >= 3 and all(m["buffers"] for m in chart_updates), "the chart did not move"
        # The threads write nothing: no output of theirs lands in the sleeping cell.
        assert not [m for m in sleeping if m["msg_type"] in ("stream", "display_data", "update_display_data")]

        stopped = _run_cell(kc, "cost = d.stop()\nimport threading\n"
                                "print(sorted(t.name for t in threading.enumerate() if 'dashboard' in t.name))")
        assert not _errors(stopped), _errors(stopped)
        printed = "".join(m["content"]["text"] for m in stopped if m["msg_type"] == "stream")
        assert printed.strip() == "[]", f"dashboard threads left after stop(): {printed}"
        after = _run_cell(kc, "time.sleep(1)")
        assert not [m for m in after if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == figures_id]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_in_a_container_the_stack_is_the_cgroups_own_split_up_to_its_limit():
    from reclaimlab.present import charts
    row = {"t_s": 1.0, "mem_free_kib": 20 << 20, "anon_kib": 5 << 20,   # the host's meminfo: not the learner's
           "cgroup_usage_bytes": 700 << 20, "cgroup_anon_bytes": 500 << 20, "cgroup_file_bytes": 150 << 20}
    values = dict(dashboard.stack_values(row, container=True, limit_kib=float(2 << 20)))
    anon, file, other, free = charts.CGROUP_STACK
    assert values[anon] == 500 * 1024 and values[file] == 150 * 1024
    assert values[other] == 50 * 1024 and values[free] == (2048 - 700) * 1024
    spec = dashboard.chart_spec([tuple(row.values())], tuple(row)[1:], [], 60, container=True,
                                limit_kib=float(2 << 20))
    assert spec["title"]["text"].startswith("Your container")
