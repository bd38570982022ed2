"""The live dashboard: samples the guest in a thread and streams new samples to its browser view.

    from reclaimlab.present import dashboard
    dash = dashboard.show()      # 4 samples/s, the last 120 s; presenter=None follows lab.setup
    dash.mark("free")            # an event marker on the chart, from any cell or thread
    dash.stop()                  # or call show() again: the new view replaces this one

What it shows: the guest's memory stacked (anonymous, page cache, reclaimable slab, free) over
the last `window_s` seconds, the host's side where this guest has a host view (memory reported
to the host since the start, or the VM process's footprint), the event markers, and the current
figures with units. In a container, the memory cgroup's own split up to its limit. What a sample
becomes on the screen (series, points, readouts, fonts) is dashboard_view.py's pure functions.

Why it is built this way:
- The browser draws; the kernel only streams numbers. The view is an anywidget
  (dashboard_widget.py) with a vendored uPlot: its JavaScript is package data sent once with the
  widget, and the anywidget wheel ships the frontend, so it renders offline in JupyterLab,
  Notebook 7 and VS Code. Per update the kernel sends one custom message holding only the new
  samples (plain numbers in the axis's unit) and any new markers, plus the newest sample's
  readouts already formatted when they changed: sizes are formatted in Python only
  (units.format_kib), never in dashboard.js. ci/bench-dashboard, three runs on a shared 2-vCPU
  Firecracker guest (Linux 6.18, 2026-11-26): the kernel spent 0.4-0.5 % of a core at 4 Hz
  (1.4-1.9 % at 20 Hz), ~185 bytes a message; a fourth run with the readouts in the messages
  (06:16 UTC) 0.48 % (1.37 %), 199 bytes a message at 4 Hz (217 at 20 Hz). The SVG frames this
  replaced (vl-convert in the kernel, 2 frames/s) took 12.6-16 % (17-20 % at 20 Hz) and ~95
  KiB/s to the browser. A 10 Hz sampler beside this dashboard kept its worst gap at 100-153 ms
  (101-130 ms with no dashboard); beside the SVG frames it reached 313 ms in one run of four.
- ipykernel 7 sends output written from a background thread to whichever cell is executing at
  that moment (or drops it), so the threads never print or display: they send widget messages,
  which reach the one view whatever cell runs meanwhile. Errors go to the view's status line.
- Two threads: the sampler keeps its own clock at `hz` (a slow send never delays a sample), the
  sender batches what is new at most `chart_hz` times a second.
- Bounded on both sides for an hour of presenting: the kernel keeps the window in a bounded
  Recorder (the one every producer uses; rows and markers in rings over `window_s`), the browser
  trims its copy to the window. A view that starts empty (a reload, a second view) asks the
  kernel for the window so far; `dash.recording()` turns the window into a Recording (chart it
  with `charts`, keep it with `recording.save`).
- jupyterlab-rise's slideshow view does not render ipywidgets 8 (jupyterlab-contrib/rise#119):
  there the output's text fallback shows; present the dashboard in a JupyterLab tab beside the
  slides (the kernel is the same).
- One dashboard at a time: show() stops the previous one (a module-level registry), so
  re-running the cell never stacks threads.
"""
from __future__ import annotations

import atexit
import html
import json
import math
import threading
import time
from typing import Any, Sequence

import pandas as pd

from . import charts
from . import dashboard_view as view
from ..probe import sources
from ..recording import provenance
from ..recording.recorder import Recorder
from ..recording.recording import Recording
from ..sampling.sampler import CANONICAL_ORDER, ColumnSource, SampleReaders, validate_hz

DEFAULT_HZ = 4.0
DEFAULT_WINDOW_S = 120.0
DEFAULT_CHART_HZ = 10.0  # messages to the browser per second at most; at 4 Hz each sample goes alone
MAX_DASHBOARD_HZ = 20.0  # the chart is ~700 px wide over 120 s: faster only floods the browser
MAX_WINDOW_S = 3600.0
MAX_EVENTS = 200         # markers kept; older ones have scrolled out of any sensible window
JOIN_TIMEOUT_S = 5.0


class DashboardError(RuntimeError):
    """The dashboard was used out of order, or could not start; str() says what to do."""


def _check_positive(name: str, value: Any, limit: float, hint: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value <= 0:
        raise ValueError(f"{name}={value!r} must be a number above 0 ({hint})")
    if value > limit:
        raise ValueError(f"{name}={value!r} is above the maximum of {limit:g} ({hint})")
    return float(value)



# --------------------------------------------------------------------------- the dashboard


def _container_view(roots: sources.Roots) -> tuple[bool, float | None]:
    """(in a container with a memory cgroup, its limit in KiB or None)."""
    from ..probe import consent
    if consent.container_reason(roots) is None:
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
    """Samples in one thread, sends new samples to its view from another; see the module doc.

    hz: samples per second. window_s: seconds the chart shows and both sides keep. presenter:
    larger fonts (None: charts.presenter_fonts(), the chart renderer's option lab.setup set). chart_hz: messages
    (and so redraws) per second at most; samples in between travel together. host: True opens
    this guest's host views (and closes them at stop), False none, or a list of views the caller
    owns. roots: where /proc and /sys are (tests use captured trees).
    """

    def __init__(self, hz: float = DEFAULT_HZ, window_s: float = DEFAULT_WINDOW_S, presenter: bool | None = None,
                 *, chart_hz: float = DEFAULT_CHART_HZ, host: bool | Sequence[ColumnSource] = True,
                 roots: sources.Roots | None = None):
        self.hz = validate_hz(hz)
        if self.hz > MAX_DASHBOARD_HZ:
            raise ValueError(f"hz={hz!r} is above the dashboard's maximum of {MAX_DASHBOARD_HZ:g}: every sample is a "
                             f"message to the browser (to record faster, use reclaimlab.sampling.sampler.Sampler)")
        self.window_s = _check_positive("window_s", window_s, MAX_WINDOW_S, "seconds the chart shows, e.g. 120")
        self.chart_hz = min(_check_positive("chart_hz", chart_hz, MAX_DASHBOARD_HZ,
                                            "updates of the view per second, e.g. 10"), self.hz)
        self.presenter = bool(charts.presenter_fonts() if presenter is None else presenter)
        self.roots = roots or sources.Roots.from_env()
        self._host_arg = host
        self._host_views: list[ColumnSource] = []
        self._owned_views: list[Any] = []
        self._readers: SampleReaders | None = None
        self.columns: tuple[str, ...] = ()
        # Bounded: the window's samples (plus a few for jitter) and the last markers, in a Recorder
        # made by start() with this guest's facts.
        self._max_rows = int(math.ceil(self.window_s * self.hz)) + 4
        self.recorder: Recorder | None = None
        self._lock = threading.Lock()          # guards the recorder's rows, the markers and the counters below
        self._new_data = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._t0 = 0.0
        self._proc_cpu0 = 0.0
        self._ended: tuple[float, float] | None = None  # (monotonic, process CPU) at stop(): cost() stops counting
        self.samples_taken = 0
        self.events_marked = 0
        self._samples_sent = 0
        self._events_sent = 0
        self._figures_sent: list[str] = []   # the readouts the view has: a message repeats none
        self.messages_sent = 0
        self.message_bytes_total = 0
        self.message_bytes_max = 0
        self._sample_cpu_s = 0.0
        self._send_cpu_s = 0.0
        self._host_base: dict[str, float] = {}
        self.error: str | None = None
        self.stopped = False
        self.container, self.limit_kib = False, None   # set at start(): in a container, show the cgroup
        self.unit = "GiB"                              # the chart's unit, set at start() from the total
        self.widget: Any = None                        # the view, made at start()

    # -- life cycle ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def start(self) -> "Dashboard":
        """Open the sources, take the first sample, make the view, start both threads.

        The first sample is taken here, in the caller's thread, so a failure (a missing /proc
        file, no anywidget) is an exception in the cell rather than a blank view.
        """
        if self._threads or self.stopped:
            raise DashboardError("this dashboard was already started; call dashboard.show() for a new one")
        self._host_views = self._open_host_views()
        try:
            self.container, self.limit_kib = _container_view(self.roots)
            self.recorder = Recorder("dashboard", {"hz": self.hz, "window_s": self.window_s}, "live", self.hz,
                                     provenance.local_guest_facts(self.roots),
                                     max_rows=self._max_rows, max_events=MAX_EVENTS)
            self._readers = SampleReaders(self.roots, self._host_views, cgroup=self.container, hz=self.hz)
            self.columns = self._readers.columns
            self._t0 = time.monotonic()
            self._proc_cpu0 = time.process_time()
            self._take_sample(0)
            self.unit = view.axis_unit(self._total_kib())
            self.widget = self._make_widget()
        except BaseException:
            self._close_sources()
            self.stopped = True
            raise
        self._threads = [threading.Thread(target=self._sample_loop, name="reclaimlab-dashboard-sampler", daemon=True),
                         threading.Thread(target=self._send_loop, name="reclaimlab-dashboard-sender", daemon=True)]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> dict[str, Any]:
        """Stop both threads (joined), close the sources, say so in the view; returns cost(). Safe twice.

        The view stays, showing the window it had; closing the widget stops the dashboard too.
        """
        if self.stopped:
            return self.cost()
        self._stop.set()
        self._new_data.set()  # wake the sender now
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(JOIN_TIMEOUT_S)
        alive = [t.name for t in self._threads if t.is_alive() and t is not threading.current_thread()]
        self._ended = (time.monotonic(), time.process_time())
        self._close_sources()
        self.stopped = True
        cost = self.cost()
        last = self.latest()
        if self.widget is not None and self.widget.comm is not None and self.error is None:
            try:
                if not alive:
                    self._send_new()  # the sender may not have sent the final samples
                self.widget.status = (f"<span style='color:#666'>Stopped at t = {last['t_s']:.1f} s "
                                      f"(dashboard.show() starts a new one).</span>" if last else "Stopped.")
            except Exception:  # noqa: BLE001  at interpreter exit (atexit) the kernel's channels may be gone
                pass
        if alive:
            raise DashboardError(f"threads did not stop within {JOIN_TIMEOUT_S:g} s: {', '.join(alive)}")
        return cost

    def display(self) -> None:
        """Show the view (again) in the current cell; every view of it keeps updating."""
        from IPython.display import display
        bundle = self.widget._repr_mimebundle_() or {}
        bundle = dict(bundle[0] if isinstance(bundle, tuple) else bundle)  # anywidget: (data, metadata)
        # Where widgets do not render (RISE's slideshow, a notebook read without its kernel) this
        # line is what shows: the figures at the time the cell ran.
        bundle["text/plain"] = ("reclaimlab live dashboard (a widget: it updates in JupyterLab, Notebook 7 or "
                                "VS Code while its kernel runs); at start " +
                                view.text_summary(self.latest(), self._host_base, self.container, self.limit_kib))
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
        assert self.recorder is not None
        with self._lock:
            t_s = self.recorder.event(kind.strip(), str(detail), round(time.monotonic() - self._t0, 3))
            self.events_marked += 1
        self._new_data.set()
        return t_s

    def latest(self) -> dict[str, Any] | None:
        """The newest sample as {column: value} (t_s first), or None before the first."""
        with self._lock:
            row = self._ring[-1] if self._ring else None
        return None if row is None else dict(zip(("t_s", *self.columns), row))

    def data(self) -> pd.DataFrame:
        """The samples in the window: the last window_s seconds of them, t_s first."""
        with self._lock:
            rows, start_s = list(self._ring), self._window_start_s()
        if start_s is not None:
            rows = [r for r in rows if r[0] >= start_s]
        return pd.DataFrame.from_records(rows, columns=["t_s", *self.columns])

    def events(self) -> pd.DataFrame:
        """The markers in the window (at most MAX_EVENTS of them): t_s, kind, detail."""
        with self._lock:
            events, start_s = self._events, self._window_start_s()
        if start_s is not None:
            events = [e for e in events if e[0] >= start_s]
        return pd.DataFrame(events, columns=["t_s", "kind", "detail"])

    def recording(self) -> Recording:
        """The window so far (at most window_s of samples, the markers in it) as a Recording, to chart
        with `charts` or keep with `recording.save`; meta says it is the dashboard's, at hz and window_s."""
        if self.recorder is None:
            raise DashboardError("this dashboard has not started: dashboard.show() starts one")
        with self._lock:
            return self.recorder.snapshot(("t_s", *self.columns), order=CANONICAL_ORDER,
                                          since_t_s=self._window_start_s(), window_s=self.window_s)

    def _window_start_s(self) -> float | None:
        """Where the window begins: window_s before the newest sample (None before the first). The ring
        is bounded by count (window_s * hz rows and a few), so when sampling falls behind hz on a busy
        guest it holds more than window_s; this cut keeps what is shown to window_s, as the browser does."""
        return self._ring[-1][0] - self.window_s if self._ring else None

    @property
    def _ring(self) -> Sequence[tuple]:
        """The window's samples, oldest first (the recorder's bounded rows)."""
        return self.recorder.rows if self.recorder is not None else ()

    @property
    def _events(self) -> list[tuple[float, str, str]]:
        return self.recorder.held_events() if self.recorder is not None else []

    def summary(self) -> str:
        """The current figures as a line of text (the view shows them with colours)."""
        return view.text_summary(self.latest(), self._host_base, self.container, self.limit_kib)

    def cost(self) -> dict[str, Any]:
        """What the dashboard costs the kernel: its threads' CPU, the messages it sent, and the
        whole process's CPU share meanwhile (which includes anything else the kernel did)."""
        end_s, end_cpu_s = self._ended or (time.monotonic(), time.process_time())
        wall_s = end_s - self._t0 if self._t0 else 0.0
        proc_cpu_s = end_cpu_s - self._proc_cpu0 if self._t0 else 0.0
        n = self.messages_sent
        return {
            "wall_s": round(wall_s, 3),
            "samples": self.samples_taken,
            "messages": n,
            "message_bytes_mean": round(self.message_bytes_total / n) if n else None,
            "message_bytes_max": self.message_bytes_max if n else None,
            "sample_thread_cpu_s": round(self._sample_cpu_s, 4),
            "send_thread_cpu_s": round(self._send_cpu_s, 4),
            "process_cpu_s": round(proc_cpu_s, 3),
            "process_cpu_share_of_one_core": round(proc_cpu_s / wall_s, 4) if wall_s > 0 else None,
            "ring_rows": len(self._ring),
            "ring_max_rows": self._max_rows,
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
        for owned in self._owned_views:
            try:
                owned.close()
            except Exception:  # noqa: BLE001  closing one view must not keep the others open
                pass
        self._owned_views = []

    def _take_sample(self, k: int) -> None:
        assert self._readers is not None
        row = (round(time.monotonic() - self._t0, 3),) + self._readers.row(k)
        if not self._host_base:
            for c, v in zip(self.columns, row[1:]):
                if c in view.HOST_LABELS and v is not None:
                    self._host_base[c] = float(v)
        assert self.recorder is not None
        with self._lock:
            self.recorder.rows.append(row)
            self.samples_taken += 1
        self._new_data.set()

    # -- the view and its messages -------------------------------------------------------------
    def _make_widget(self) -> Any:
        try:
            from .dashboard_widget import DashboardWidget
        except ImportError as exc:
            raise DashboardError(f"the dashboard needs anywidget and ipywidgets ({exc}): "
                                 f"pip install 'reclaimlab[labs]'") from None
        total_kib = self._total_kib()
        w = DashboardWidget(
            on_backlog=self._backlog, on_close=self._closed_by_view,
            title=f"{'Your container' if self.container else 'The guest'}'s memory, last {self.window_s:g} s",
            x_title="time since the dashboard started (s)",
            y_title=f"{'your container' if self.container else 'guest'} memory ({self.unit})",
            series=view.series(self.columns, self.container), fonts=view.fonts(self.presenter),
            width=860 if self.presenter else 680, height=400 if self.presenter else 300,
            hz=self.hz, window_s=self.window_s, y_max=view.in_unit(total_kib, self.unit) if total_kib else None,
            max_rows=self._max_rows, max_events=MAX_EVENTS)
        w.add_class("reclaimlab-dashboard")
        return w

    def _closed_by_view(self) -> None:
        global _current
        with _registry_lock:
            if _current is self:
                _current = None
        self.stop()

    def _total_kib(self) -> float | None:
        """What the chart's height stands for: the container's limit, or the guest's MemTotal."""
        if self.container:
            return self.limit_kib
        return (self.latest() or {}).get("mem_total_kib")

    def _rows_out(self, rows: Sequence[tuple]) -> dict[str, list]:
        """The rows as the browser draws them, and the newest one's readouts already formatted
        (the view shows only the newest figures: one set per message keeps it short)."""
        names = ("t_s", *self.columns)
        dicts = [dict(zip(names, r)) for r in rows]
        return {"rows": [view.point(d, self._host_base, self.unit, self.container, self.limit_kib) for d in dicts],
                "figures": view.readouts(dicts[-1], self._host_base, self.container, self.limit_kib) if dicts else []}

    def _events_out(self, events: Sequence[tuple[float, str, str]]) -> list[list]:
        return [[t, kind + (f" {detail}" if detail and len(detail) < 18 else "")] for t, kind, detail in events]

    def _backlog(self) -> dict[str, Any]:
        """The window so far, for a view that starts empty."""
        with self._lock:
            rows, events, n = list(self._ring), self._events, self.samples_taken
        return {"kind": "backlog", **self._rows_out(rows), "events": self._events_out(events), "samples": n}

    def _send_new(self) -> None:
        """Send the samples and markers not sent yet (the ring's newest; older ones have scrolled out)."""
        with self._lock:
            new_rows = min(self.samples_taken - self._samples_sent, len(self._ring))
            rows = list(self._ring)[len(self._ring) - new_rows:] if new_rows else []
            held = self._events  # a copy of the recorder's markers: taken once
            new_events = min(self.events_marked - self._events_sent, len(held))
            events = held[len(held) - new_events:] if new_events else []
            n = self.samples_taken
            self._samples_sent, self._events_sent = n, self.events_marked
        if events:
            self._send({"kind": "events", "events": self._events_out(events)})
        if rows:
            out = self._rows_out(rows)
            if out["figures"] == self._figures_sent:
                del out["figures"]  # unchanged readouts stay as the view shows them
            else:
                self._figures_sent = out["figures"]
            self._send({"kind": "points", **out, "samples": n})

    def _send(self, content: dict[str, Any]) -> None:
        self.widget.send(content)
        size = len(json.dumps(content, separators=(",", ":")))
        self.messages_sent += 1
        self.message_bytes_total += size
        self.message_bytes_max = max(self.message_bytes_max, size)

    # -- the threads ---------------------------------------------------------------------------
    def _sample_loop(self) -> None:
        period_s = 1.0 / self.hz
        cpu0 = time.thread_time()
        k = 1  # sample 0 was taken by start()
        try:
            while not self._stop.wait(max(0.0, self._t0 + k * period_s - time.monotonic())):
                self._take_sample(k)
                # The next grid point still ahead: after a hold-up (the GIL, a slow host view)
                # ticks are skipped, never caught up in a burst of samples.
                k = max(k + 1, int((time.monotonic() - self._t0) / period_s) + 1)
                self._sample_cpu_s = time.thread_time() - cpu0
        except Exception as exc:  # noqa: BLE001  shown in the view by the sender
            self.error = f"sampling stopped: {type(exc).__name__}: {exc}"
            self._new_data.set()

    def _send_loop(self) -> None:
        min_gap_s = 1.0 / self.chart_hz
        cpu0 = time.thread_time()
        while not self._stop.is_set():
            self._new_data.wait(1.0)
            if self._stop.is_set():
                break
            self._new_data.clear()
            sent_at = time.monotonic()
            try:
                self._send_new()
            except Exception as exc:  # noqa: BLE001  a view that cannot be updated says why, in itself
                self.error = f"updating the view stopped: {type(exc).__name__}: {exc}"
            self._send_cpu_s = time.thread_time() - cpu0
            if self.error is not None:
                self._show_error()
                return
            # At most chart_hz messages a second: samples arriving meanwhile travel together.
            self._stop.wait(max(0.0, sent_at + min_gap_s - time.monotonic()))

    def _show_error(self) -> None:
        try:
            self.widget.status = (f"<span style='color:#c62828'><b>Dashboard stopped:</b> "
                                  f"{html.escape(self.error or '')}</span>")
        except Exception:  # noqa: BLE001  no view to tell: cost() and .error still say it
            pass


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
