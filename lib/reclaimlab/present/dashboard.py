"""A live view of the guest's memory for presenting: it keeps moving while other cells run.

    from reclaimlab.present import dashboard
    dash = dashboard.show()      # 4 samples/s, the last 120 s; presenter=None follows lab.setup
    dash.mark("free")            # an event marker on the chart, from any cell or thread
    dash.stop()                  # or call show() again: the new view replaces this one

What it shows: the guest's memory stacked (anonymous, page cache, reclaimable slab, free) over
the last `window_s` seconds, the host's side where this guest has a host view (memory returned
to the host since the start, or the VM process's footprint), the event markers, and the current
figures with units.

Why it is built this way:
- ipykernel 7 sends output written from a background thread to whichever cell is executing at
  that moment (or drops it), so the threads never print or display. They set widget values (an
  ipywidgets.HTML for the figures, an ipywidgets.Image holding the SVG chart); those travel as
  comm messages and update the one view in place, whatever cell runs meanwhile.
- The chart is SVG rendered in the kernel by vl-convert: no CDN, no JupyterChart/anywidget.
  A frame costs ~60 ms here and holds the GIL meanwhile (other threads of the kernel, e.g. an
  experiment's sampler, wait; their samples keep their true times). So the chart is redrawn at
  `chart_hz` (2 by default: ~14 % of one core in all at hz=4; chart_hz=1 halves it) while the
  sampling thread keeps its own clock at `hz`, and the figures follow every sample (an HTML
  string: microseconds). `cost()` reports what it took.
- It is a widget, so it needs JupyterLab (or Notebook 7 / VS Code). jupyterlab-rise's slideshow
  view does not render ipywidgets 8 (jupyterlab-contrib/rise#119): present it in a JupyterLab
  tab beside the slides; the kernel is the same.
- The data is a ring buffer (deque with maxlen) over `window_s`: an hour of presenting costs
  the same memory and frame time as two minutes, and the notebook stores only the widgets'
  last state.
- One dashboard at a time: show() stops the previous one (a module-level registry), so
  re-running the cell never stacks threads.
"""
from __future__ import annotations

import atexit
import html
import math
import threading
import time
from collections import deque
from typing import Any, Sequence

import pandas as pd

from . import charts
from ..probe import sources
from ..sampling.sampler import ColumnSource, SampleReaders, validate_hz

DEFAULT_HZ = 4.0
DEFAULT_WINDOW_S = 120.0
DEFAULT_CHART_HZ = 2.0
MAX_HZ = 20.0            # each sample is a comm message to the browser: more only floods it
MAX_WINDOW_S = 3600.0
MAX_EVENTS = 200         # markers kept; older ones have scrolled out of any sensible window
MAX_POINTS_PER_SERIES = 300  # the chart is ~700 px wide: more points are invisible
JOIN_TIMEOUT_S = 5.0
PRESENTER_FONT_SCALE = 1.5   # as charts._font
KIB_PER_GIB = charts.KIB_PER_GIB

STACK = charts.STACK  # (label, meminfo columns), bottom to top: the same parts as the labs' charts
STACK_COLORS = charts.STACK_COLORS
HOST_LABELS = {
    "host_reported_kib": "Returned to the host since start (reported_kib)",
    "host_vm_working_set_kib": "Host: VM process working set (vmmem)",
    "host_vm_rss_kib": "Host: QEMU process resident memory (VmRSS)",
}
HOST_COLORS = ["#2ca02c", "#ff7f0e", "#8c564b"]  # in HOST_LABELS order


class DashboardError(RuntimeError):
    """The dashboard was used out of order, or could not start; str() says what to do."""


# --------------------------------------------------------------------------- pure parts


def format_kib(kib: float | None) -> str:
    """A memory figure with its unit: GiB from 1 GiB up, MiB below."""
    if kib is None or (isinstance(kib, float) and math.isnan(kib)):
        return "n/a"
    if abs(kib) >= KIB_PER_GIB:
        return f"{kib / KIB_PER_GIB:.2f} GiB"
    return f"{kib / 1024:.0f} MiB"


def font_px(size: float, presenter: bool) -> int:
    return int(round(size * (PRESENTER_FONT_SCALE if presenter else 1.0)))


def stack_labels(container: bool = False) -> list[str]:
    return list(charts.CGROUP_STACK) if container else [label for label, _ in STACK]


def stack_values(row: dict[str, Any], container: bool = False,
                 limit_kib: float | None = None) -> list[tuple[str, float | None]]:
    """(label, KiB) of each stack part for one sample; None where the guest lacks the field.

    In a container the host's meminfo is not the learner's memory: the parts are the memory
    cgroup's own split (as charts.memory_stack draws a container recording), up to its limit.
    """
    if not container:
        out = []
        for label, cols in STACK:
            present = [row.get(c) for c in cols if row.get(c) is not None]
            out.append((label, float(sum(present)) if present else None))
        return out
    anon_name, file_name, other_name, free_name = charts.CGROUP_STACK
    usage = row.get("cgroup_usage_bytes")
    anon, file = row.get("cgroup_anon_bytes"), row.get("cgroup_file_bytes")
    kib = lambda b: None if b is None else float(b) / 1024  # noqa: E731
    other = None if usage is None else max(0.0, float(usage) - float(anon or 0) - float(file or 0))
    free = None if usage is None or not limit_kib else max(0.0, limit_kib - float(usage) / 1024)
    return [(anon_name, kib(anon)), (file_name, kib(file)), (other_name, kib(other)), (free_name, free)]


def host_value(column: str, value: float | None, base: float | None) -> float | None:
    """What the chart shows for a host column: reported_kib as the change since the dashboard
    started (it counts from boot), the VM process's footprint as it is."""
    if value is None:
        return None
    if column == "host_reported_kib":
        return None if base is None else float(value - base)
    return float(value)


def thin(rows: list[tuple], max_points: int = MAX_POINTS_PER_SERIES) -> list[tuple]:
    """At most max_points rows spread evenly, the newest always kept."""
    if len(rows) <= max_points:
        return rows
    step = len(rows) / max_points
    keep = sorted({int(i * step) for i in range(max_points)} | {len(rows) - 1})
    return [rows[i] for i in keep]


def x_domain(t_last_s: float, window_s: float) -> list[float]:
    """The time axis: fills from the left until the window is full, then scrolls."""
    hi = max(t_last_s, window_s)
    return [hi - window_s, hi]


def chart_spec(rows: Sequence[tuple], columns: Sequence[str], events: Sequence[tuple[float, str, str]],
               window_s: float, presenter: bool = False, host_base: dict[str, float] | None = None,
               hz: float = DEFAULT_HZ, container: bool = False, limit_kib: float | None = None) -> dict:
    """The Vega-Lite spec of one frame: `rows` are samples (t_s first, then `columns`).

    One panel: the stacked guest memory, the host view as a line on the same GiB axis (memory
    returned to the host, or the VM process's footprint, is guest memory too), the event markers.
    A second panel would cost ~70 % more per frame (measured with vl-convert). Built as a plain
    dict rather than with altair: altair's validation costs ~11 ms a frame and buys nothing here.
    """
    host_base = host_base or {}
    t_last = rows[-1][0] if rows else 0.0
    domain = x_domain(t_last, window_s)
    visible = thin([r for r in rows if r[0] >= domain[0]])
    names = ("t_s", *columns)
    host_cols = [c for c in HOST_LABELS if c in columns]
    stack_data: list[dict] = []
    host_data: dict[str, list[dict]] = {c: [] for c in host_cols}
    for r in visible:
        row = dict(zip(names, r))
        for order, (label, kib) in enumerate(stack_values(row, container, limit_kib)):
            if kib is not None:
                stack_data.append({"t_s": row["t_s"], "part": label, "GiB": kib / KIB_PER_GIB, "order": order})
        for c in host_cols:
            v = host_value(c, row.get(c), host_base.get(c))
            if v is not None:
                host_data[c].append({"t_s": row["t_s"], "GiB": v / KIB_PER_GIB})
    total = limit_kib if container else (dict(zip(names, rows[-1])).get("mem_total_kib") if rows else None)
    x = {"field": "t_s", "type": "quantitative", "title": "time since the dashboard started (s)",
         "scale": {"domain": domain, "nice": False, "zero": False}, "axis": {"tickCount": 12}}
    y = {"field": "GiB", "type": "quantitative",
         "title": "your container's memory (GiB)" if container else "guest memory (GiB)",
         "scale": {"domain": [0, total / KIB_PER_GIB]} if total else {}}
    parts = stack_labels(container)
    stack_layer = {
        "data": {"values": stack_data},
        "mark": {"type": "area", "opacity": 0.85, "clip": True, "interpolate": "step-after"},
        "encoding": {
            "x": x, "y": {**y, "stack": "zero"},
            "color": {"field": "part", "type": "nominal", "title": None, "sort": parts,
                      "scale": {"domain": parts, "range": STACK_COLORS}, "legend": None},
            "order": {"field": "order", "type": "quantitative"},
        },
    }
    host_layers = [{"data": {"values": data},
                    "mark": {"type": "line", "clip": True, "interpolate": "step-after",
                             "strokeWidth": 3 if presenter else 2.5, "color": color},
                    "encoding": {"x": x, "y": y}}
                   for (c, data), color in zip(host_data.items(), HOST_COLORS) if data]
    shown_host = [HOST_LABELS[c].split(" (")[0].lower() for c, data in host_data.items() if data]
    subtitle = f"live at {hz:g} samples/s · t = {t_last:.1f} s"
    if shown_host:
        subtitle += " · line: " + "; ".join(shown_host)
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "background": "white",
        "width": 860 if presenter else 680,
        "height": 400 if presenter else 300,
        "title": {"text": f"{'Your container' if container else 'The guest'}'s memory, last {window_s:g} s",
                  "subtitle": subtitle},
        "layer": [stack_layer, *host_layers, *_event_layers(events, domain, presenter)],
        "config": _config(presenter),
    }


def _event_layers(events: Sequence[tuple[float, str, str]], domain: list[float], presenter: bool) -> list[dict]:
    shown = [{"t_s": t, "label": kind + (f" {detail}" if detail and len(detail) < 18 else "")}
             for t, kind, detail in events if domain[0] <= t <= domain[1]]
    if not shown:
        return []
    x = {"field": "t_s", "type": "quantitative"}
    rules = {"data": {"values": shown}, "mark": {"type": "rule", "strokeDash": [4, 3], "color": "#333"},
             "encoding": {"x": x}}
    labels = {"data": {"values": shown},
              "mark": {"type": "text", "angle": 270, "align": "right", "baseline": "bottom",
                       "dx": -4, "dy": -3, "y": 0, "fontSize": font_px(11, presenter), "color": "#222"},
              "encoding": {"x": x, "text": {"field": "label", "type": "nominal"}}}
    return [rules, labels]


def _config(presenter: bool) -> dict:
    f = lambda size: font_px(size, presenter)  # noqa: E731
    return {
        "axis": {"labelFontSize": f(11), "titleFontSize": f(12)},
        "legend": {"labelFontSize": f(11), "titleFontSize": f(12)},
        "title": {"fontSize": f(14), "subtitleFontSize": f(11), "anchor": "start"},
        "view": {"stroke": "#ddd"},
    }


def figures_html(row: dict[str, Any] | None, host_base: dict[str, float], samples: int, frame: int,
                 hz: float, window_s: float, presenter: bool, container: bool = False,
                 limit_kib: float | None = None) -> str:
    """The current figures as HTML. The data-* attributes let a test (ci/browser_check.py) read
    the time and the sample count of the frame the browser shows."""
    if row is None:
        return "<div class='reclaimlab-dashboard-figures' data-t-s='' data-samples='0'>waiting for the first sample…</div>"
    # The coloured squares are the chart's legend (a legend in the SVG costs ~30 % more per frame).
    figures = [(label, kib, color)
               for (label, kib), color in zip(stack_values(row, container, limit_kib), STACK_COLORS)]
    figures += [(label, host_value(c, row[c], host_base.get(c)), color)
                for (c, label), color in zip(HOST_LABELS.items(), HOST_COLORS) if c in row]
    items = [f"<span title='{html.escape(label)}'><span style='color:{color}'>&#9632;</span> "
             f"{html.escape(label.split(' (')[0])} <b>{format_kib(kib)}</b></span>"
             for label, kib, color in figures]
    t_s = row["t_s"]
    items.append(f"<span style='color:#666'>t = {t_s:.1f} s · {hz:g} samples/s · window {window_s:g} s</span>")
    return (f"<div class='reclaimlab-dashboard-figures' data-t-s='{t_s:.3f}' data-samples='{samples}' "
            f"data-frame='{frame}' style='display:flex;flex-wrap:wrap;gap:4px 22px;line-height:1.5;"
            f"font-size:{font_px(14, presenter)}px'>" + "".join(items) + "</div>")


def _check_positive(name: str, value: Any, limit: float, hint: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value <= 0:
        raise ValueError(f"{name}={value!r} must be a number above 0 ({hint})")
    if value > limit:
        raise ValueError(f"{name}={value!r} is above the maximum of {limit:g} ({hint})")
    return float(value)


# --------------------------------------------------------------------------- the dashboard


def _container_view(roots: sources.Roots) -> tuple[bool, float | None]:
    """(in a container with a memory cgroup, its limit in KiB or None)."""
    from ..probe import consent as policy
    if policy.container_reason(roots) is None:
        return False, None
    cgroup = sources.memory_cgroup(roots)
    if cgroup is None:
        return False, None
    try:
        limit = cgroup.limit_bytes()
    except (sources.SourceError, ValueError):
        limit = None
    return True, None if limit is None else limit / 1024


class Dashboard:
    """Samples in one thread, renders in another, updates its widgets; see the module doc.

    hz: samples per second (figures update at each). window_s: seconds the chart shows and the
    ring buffer keeps. presenter: larger fonts (None: as lab.setup / charts.use_offline_renderer
    set it). chart_hz: chart frames per second (at most hz). host: True opens this guest's host
    views (and closes them at stop), False none, or a list of views the caller owns. roots:
    where /proc and /sys are (tests use captured trees).
    """

    def __init__(self, hz: float = DEFAULT_HZ, window_s: float = DEFAULT_WINDOW_S, presenter: bool | None = None,
                 *, chart_hz: float = DEFAULT_CHART_HZ, host: bool | Sequence[ColumnSource] = True,
                 roots: sources.Roots | None = None):
        self.hz = validate_hz(hz)
        if self.hz > MAX_HZ:
            raise ValueError(f"hz={hz!r} is above the dashboard's maximum of {MAX_HZ:g}: every sample is a "
                             f"message to the browser (to record faster, use reclaimlab.sampling.sampler.Sampler)")
        self.window_s = _check_positive("window_s", window_s, MAX_WINDOW_S, "seconds the chart shows, e.g. 120")
        self.chart_hz = min(_check_positive("chart_hz", chart_hz, MAX_HZ, "chart frames per second, e.g. 2"), self.hz)
        self.presenter = bool(charts._presenter if presenter is None else presenter)
        self.roots = roots or sources.Roots.from_env()
        self._host_arg = host
        self._host_views: list[ColumnSource] = []
        self._owned_views: list[Any] = []
        self._readers: SampleReaders | None = None
        self.columns: tuple[str, ...] = ()
        # Bounded: the window's samples (plus a few for jitter) and the last markers.
        self._ring: deque[tuple] = deque(maxlen=int(math.ceil(self.window_s * self.hz)) + 4)
        self._events: deque[tuple[float, str, str]] = deque(maxlen=MAX_EVENTS)
        self._lock = threading.Lock()          # guards _ring and _events
        self._new_sample = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._t0 = 0.0
        self._proc_cpu0 = 0.0
        self._ended: tuple[float, float] | None = None  # (monotonic, process CPU) at stop(): cost() stops counting
        self.samples_taken = 0
        self.figure_frames = 0
        self.chart_frames = 0
        self._chart_wall_s = 0.0
        self._chart_wall_max_s = 0.0
        self._sample_cpu_s = 0.0
        self._host_base: dict[str, float] = {}
        self.error: str | None = None
        self.stopped = False
        self.container, self.limit_kib = False, None   # set at start(): in a container, show the cgroup
        self.figures, self.chart, self.status, self.widget = _make_widgets()

    # -- life cycle ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def start(self) -> "Dashboard":
        """Open the sources, take the first sample, draw the first frame, start both threads.

        The first frame is drawn here, in the caller's thread, so a failure (a missing /proc
        file, vl-convert) is an exception in the cell rather than a blank view.
        """
        if self._threads or self.stopped:
            raise DashboardError("this dashboard was already started; call dashboard.show() for a new one")
        self._host_views = self._open_host_views()
        try:
            self.container, self.limit_kib = _container_view(self.roots)
            self._readers = SampleReaders(self.roots, self._host_views, cgroup=self.container, hz=self.hz)
            self.columns = self._readers.columns
            self._t0 = time.monotonic()
            self._proc_cpu0 = time.process_time()
            self._take_sample(0)
            self._update_figures()
            self._update_chart()
        except BaseException:
            self._close_sources()
            self.stopped = True
            raise
        self._threads = [threading.Thread(target=self._sample_loop, name="reclaimlab-dashboard-sampler", daemon=True),
                         threading.Thread(target=self._render_loop, name="reclaimlab-dashboard-render", daemon=True)]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> dict[str, Any]:
        """Stop both threads (joined), close the sources, say so in the view; returns cost(). Safe twice."""
        if self.stopped:
            return self.cost()
        self._stop.set()
        self._new_sample.set()  # wake the render thread now
        for t in self._threads:
            t.join(JOIN_TIMEOUT_S)
        alive = [t.name for t in self._threads if t.is_alive()]
        self._ended = (time.monotonic(), time.process_time())
        self._close_sources()
        self.stopped = True
        cost = self.cost()
        last = self.latest()
        if not alive:
            self._update_figures()  # the render thread may not have shown the final sample
        self.status.value = (f"<span style='color:#666'>Stopped at t = {last['t_s']:.1f} s "
                             f"(dashboard.show() starts a new one).</span>" if last else "Stopped.")
        if alive:
            raise DashboardError(f"threads did not stop within {JOIN_TIMEOUT_S:g} s: {', '.join(alive)}")
        return cost

    def display(self) -> None:
        """Show the view (again) in the current cell; every view of it keeps updating."""
        from IPython.display import display
        # The widget's own text/plain would repeat its whole state (the SVG, tens of KB) in the
        # saved notebook; a line of text is what a reader without a kernel needs.
        bundle = dict(self.widget._repr_mimebundle_() or {})
        bundle["text/plain"] = "reclaimlab live dashboard (it updates while its kernel runs)"
        display(bundle, raw=True)

    def __repr__(self) -> str:
        state = "stopped" if self.stopped else "running" if self.running else "not started"
        return f"<reclaimlab Dashboard, {state}, {self.hz:g} samples/s, window {self.window_s:g} s>"

    # -- what a notebook may ask -------------------------------------------------------------
    def mark(self, kind: str, detail: str = "") -> float:
        """Put an event marker on the chart now (e.g. "free"); returns its t_s."""
        if not isinstance(kind, str) or not kind.strip():
            raise ValueError(f"event kind {kind!r} must be a non-empty word such as 'free'")
        if not self._threads or self.stopped:
            raise DashboardError("this dashboard is not running: markers go on a running one (dashboard.show())")
        with self._lock:
            t_s = round(time.monotonic() - self._t0, 3)
            self._events.append((t_s, kind.strip(), str(detail)))
        return t_s

    @property
    def svg(self) -> str:
        """The chart frame the view shows now, as SVG text."""
        return bytes(self.chart.value).decode()

    def latest(self) -> dict[str, Any] | None:
        """The newest sample as {column: value} (t_s first), or None before the first."""
        with self._lock:
            row = self._ring[-1] if self._ring else None
        return None if row is None else dict(zip(("t_s", *self.columns), row))

    def data(self) -> pd.DataFrame:
        """The samples in the window (at most window_s * hz rows), t_s first."""
        with self._lock:
            rows = list(self._ring)
        return pd.DataFrame.from_records(rows, columns=["t_s", *self.columns])

    def events(self) -> pd.DataFrame:
        with self._lock:
            return pd.DataFrame(list(self._events), columns=["t_s", "kind", "detail"])

    def cost(self) -> dict[str, Any]:
        """What the dashboard costs: chart frame time, and CPU as a share of one core.

        vl-convert renders in threads of its own, so the chart's CPU is the process's
        (`process_cpu_share_of_one_core`, which includes anything else the kernel does
        meanwhile) rather than the render thread's.
        """
        end_s, end_cpu_s = self._ended or (time.monotonic(), time.process_time())
        wall_s = end_s - self._t0 if self._t0 else 0.0
        proc_cpu_s = end_cpu_s - self._proc_cpu0 if self._t0 else 0.0
        n = self.chart_frames
        return {
            "wall_s": round(wall_s, 3),
            "samples": self.samples_taken,
            "figure_frames": self.figure_frames,
            "chart_frames": n,
            "chart_ms_mean": round(self._chart_wall_s / n * 1000, 1) if n else None,
            "chart_ms_max": round(self._chart_wall_max_s * 1000, 1) if n else None,
            "sample_thread_cpu_s": round(self._sample_cpu_s, 4),
            "process_cpu_s": round(proc_cpu_s, 3),
            "process_cpu_share_of_one_core": round(proc_cpu_s / wall_s, 4) if wall_s > 0 else None,
            "ring_rows": len(self._ring),
            "ring_max_rows": self._ring.maxlen,
        }

    # -- sources -------------------------------------------------------------------------------
    def _open_host_views(self) -> list[ColumnSource]:
        if self._host_arg is True:
            from ..probe import hostviews as host
            self._owned_views = list(host.available_host_views(self.roots))
            return list(self._owned_views)
        if self._host_arg is False or self._host_arg is None:
            return []
        return list(self._host_arg)

    def _close_sources(self) -> None:
        if self._readers is not None:
            self._readers.close()
            self._readers = None
        for view in self._owned_views:
            try:
                view.close()
            except Exception:  # noqa: BLE001  closing one view must not keep the others open
                pass
        self._owned_views = []

    def _take_sample(self, k: int) -> None:
        assert self._readers is not None
        row = (round(time.monotonic() - self._t0, 3),) + self._readers.row(k)
        if not self._host_base:
            for c, v in zip(self.columns, row[1:]):
                if c in HOST_LABELS and v is not None:
                    self._host_base[c] = float(v)
        with self._lock:
            self._ring.append(row)
        self.samples_taken += 1
        self._new_sample.set()

    # -- the threads ---------------------------------------------------------------------------
    def _sample_loop(self) -> None:
        period_s = 1.0 / self.hz
        cpu0 = time.thread_time()
        k = 1  # sample 0 was taken by start()
        try:
            while not self._stop.wait(max(0.0, self._t0 + k * period_s - time.monotonic())):
                self._take_sample(k)
                # The next grid point still ahead: after a hold-up (the GIL during a chart frame,
                # a slow host view) ticks are skipped, never caught up in a burst of samples.
                k = max(k + 1, int((time.monotonic() - self._t0) / period_s) + 1)
                self._sample_cpu_s = time.thread_time() - cpu0
        except Exception as exc:  # noqa: BLE001  shown in the view; the render thread stops on it
            self.error = f"sampling stopped: {type(exc).__name__}: {exc}"
            self._new_sample.set()

    def _render_loop(self) -> None:
        chart_period_s = 1.0 / self.chart_hz
        next_chart = time.monotonic() + chart_period_s
        while not self._stop.is_set():
            self._new_sample.wait(1.0)
            self._new_sample.clear()
            if self._stop.is_set():
                break
            if self.error is not None:
                self.status.value = f"<span style='color:#c62828'><b>Dashboard stopped:</b> {html.escape(self.error)}</span>"
                return
            try:
                self._update_figures()
                now = time.monotonic()
                if now >= next_chart - 0.02:  # a frame is due (or nearly: samples wake this loop)
                    next_chart = max(next_chart + chart_period_s, now + chart_period_s / 2)
                    self._update_chart()
            except Exception as exc:  # noqa: BLE001  a frame that cannot be drawn says why, in the view
                self.error = f"drawing stopped: {type(exc).__name__}: {exc}"
                self.status.value = f"<span style='color:#c62828'><b>Dashboard stopped:</b> {html.escape(self.error)}</span>"
                return

    def _update_figures(self) -> None:
        self.figure_frames += 1
        self.figures.value = figures_html(self.latest(), self._host_base, len(self._ring), self.figure_frames,
                                          self.hz, self.window_s, self.presenter, self.container, self.limit_kib)

    def _update_chart(self) -> None:
        import vl_convert
        wall0 = time.perf_counter()
        with self._lock:
            rows, events = list(self._ring), list(self._events)
        spec = chart_spec(rows, self.columns, events, self.window_s, self.presenter, self._host_base, self.hz,
                          self.container, self.limit_kib)
        svg = vl_convert.vegalite_to_svg(spec)
        self.chart.value = svg.encode()
        wall_s = time.perf_counter() - wall0
        self.chart_frames += 1
        self._chart_wall_s += wall_s
        self._chart_wall_max_s = max(self._chart_wall_max_s, wall_s)


def _make_widgets():
    try:
        import ipywidgets as w
    except ImportError:
        raise DashboardError("the dashboard needs ipywidgets: pip install 'reclaimlab[labs]'") from None
    figures = w.HTML(value="")
    # An Image, not inline HTML: the SVG travels as a binary buffer (no JSON escaping), and as an
    # <img> its element ids cannot clash with other SVG on the page.
    chart = w.Image(value=b"", format="svg+xml", layout=w.Layout(max_width="100%"))
    status = w.HTML(value="")
    box = w.VBox([figures, chart, status], layout=w.Layout(border="1px solid #ddd", padding="6px"))
    box.add_class("reclaimlab-dashboard")
    return figures, chart, status, box


# --------------------------------------------------------------------------- one at a time

_current: Dashboard | None = None
_registry_lock = threading.Lock()


def show(hz: float = DEFAULT_HZ, window_s: float = DEFAULT_WINDOW_S, presenter: bool | None = None, *,
         chart_hz: float = DEFAULT_CHART_HZ, host: bool | Sequence[ColumnSource] = True,
         roots: sources.Roots | None = None, display: bool = True) -> Dashboard:
    """Start a live dashboard and display it; a running one (from an earlier show()) is stopped first.

    See Dashboard for the parameters. Returns the Dashboard: .mark(kind), .stop(), .data(), .cost().
    """
    global _current
    with _registry_lock:
        if _current is not None:
            _current.stop()
            _current = None
        dash = Dashboard(hz, window_s, presenter, chart_hz=chart_hz, host=host, roots=roots).start()
        _current = dash
    if display:
        dash.display()
    return dash


def current() -> Dashboard | None:
    """The running dashboard, if any."""
    return _current


def stop() -> dict[str, Any] | None:
    """Stop the running dashboard, if any; returns its cost()."""
    global _current
    with _registry_lock:
        dash, _current = _current, None
    return dash.stop() if dash is not None else None


atexit.register(stop)
