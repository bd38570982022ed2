"""The one Recorder: rows, events, buddyinfo snapshots, results and notices in; a Recording out.

    rec = Recorder("refault", params, "live", 10.0, guest_facts)   # the probe's facts, passed in
    rec.rows.append(row); rec.event("touch", "cold", t_s); rec.results["x_s"] = 1.2
    recording = rec.finish(columns, interrupted=None, sampler_cost=...)

Every producer uses it: the local sampler (sampling.sampler), the kit's VM stream
(vm.sampler) and, through them, the experiment scripts (experiments.live, vm.experiments),
which write their results and notices into it; the live dashboard keeps a bounded one
(`max_rows`, `max_events`: its window) and `snapshot()`s it whenever asked for what it showed. The Recording's meta is built once, in
`finish()`, by `provenance.build_meta` from the guest's facts given at the start and the
run's facts given at the end (as pyperf's results carry their own metadata); nothing
patches it afterwards.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

import pandas as pd

from . import provenance
from .recording import BUDDY_COLUMNS, EVENT_COLUMNS, Recording

Time = Union[float, Callable[[], float]]  # a t_s, or a clock read under the lock (so events stay in order)


def why_interrupted(exc_type: type[BaseException], exc: BaseException | None = None) -> str:
    """What ended a run early, as its recording's meta says it (`interrupted`)."""
    if issubclass(exc_type, KeyboardInterrupt):
        return "interrupted (KeyboardInterrupt)"
    return f"{exc_type.__name__}: {exc}"


class Recorder:
    """Collects one run; `finish()` returns its Recording (once)."""

    def __init__(self, experiment: str, parameters: Mapping[str, Any] | None, mode: str, sample_hz: float,
                 guest_facts: Mapping[str, Any], *, max_rows: int | None = None, max_events: int | None = None):
        """max_rows / max_events: keep only the newest ones (a ring), for a view that runs for hours."""
        self.experiment = experiment
        self.parameters = dict(parameters or {})
        self.mode = mode
        self.sample_hz = float(sample_hz)
        self.guest_facts = dict(guest_facts)
        self.date_utc = provenance.utc_now_iso()  # the start of the run
        self.rows: list | deque = deque(maxlen=max_rows) if max_rows else []  # tuples (with `columns`) or dicts
        self.results: dict[str, Any] = {}         # meta["results"]: step durations, measured effects
        self.notices: list[str] = []              # meta["notices"]: sentences a banner shows
        self._events: list | deque = deque(maxlen=max_events) if max_events else []  # (t_s, kind, detail)
        self._buddy: list[tuple[float, str, str, int, int]] = []
        self._physmaps: list = []                 # recording.physmap.MapStep, in the order taken
        self._lock = threading.Lock()
        self.recording: Recording | None = None

    def event(self, kind: str, detail: str, t_s: Time) -> float:
        """Note an event; events keep the order they were noted in (a later one never sorts earlier)."""
        with self._lock:
            t = round(t_s() if callable(t_s) else float(t_s), 6)  # µs, as stored
            if self._events:
                t = max(t, self._events[-1][0])
            self._events.append((t, kind, str(detail)))
        return t

    def buddyinfo(self, label: str, zones: Iterable[tuple[str, Sequence[int]]], t_s: Time) -> float:
        """Note a /proc/buddyinfo snapshot: (zone name, free blocks per order) for each zone."""
        with self._lock:
            t = round(t_s() if callable(t_s) else float(t_s), 6)
            self._buddy.extend((t, str(label), zone, order, int(n))
                               for zone, counts in zones for order, n in enumerate(counts))
        return t

    def physmap(self, step: Any) -> None:
        """Note a map of physical memory (a recording.physmap.MapStep)."""
        with self._lock:
            self._physmaps.append(step)

    def finish(self, columns: Sequence[str] | None = None, order: Sequence[str] = (),
               interrupted: str | None = None, **run_facts: Any) -> Recording:
        """The Recording: samples from `rows` (tuples in `columns` order, or dicts when columns is None),
        the columns in `order` first; meta built once from the guest's and the run's facts."""
        if self.recording is None:
            self.recording = self._build(columns, order, interrupted, run_facts, self.results, self.notices)
        return self.recording

    def snapshot(self, columns: Sequence[str] | None = None, order: Sequence[str] = (), *,
                 since_t_s: float | None = None, **run_facts: Any) -> Recording:
        """A Recording of what is held now while the run goes on (a bounded recorder: its window);
        since_t_s: only the rows, events and snapshots from then on (a window by time, not by count)."""
        return self._build(columns, order, None, run_facts, dict(self.results), list(self.notices), since_t_s)

    def _build(self, columns: Sequence[str] | None, order: Sequence[str], interrupted: str | None,
               run_facts: Mapping[str, Any], results: dict[str, Any], notices: list[str],
               since_t_s: float | None = None) -> Recording:
        samples = self._samples(columns, order)
        with self._lock:
            events = pd.DataFrame(list(self._events), columns=EVENT_COLUMNS)
            buddy = pd.DataFrame(self._buddy, columns=BUDDY_COLUMNS)
            maps = list(self._physmaps)
        events["t_s"] = events["t_s"].astype(float)
        buddy["t_s"] = buddy["t_s"].astype(float)
        if since_t_s is not None:
            samples = samples[samples["t_s"] >= since_t_s].reset_index(drop=True)
            events = events[events["t_s"] >= since_t_s].reset_index(drop=True)
            buddy = buddy[buddy["t_s"] >= since_t_s].reset_index(drop=True)
            maps = [m for m in maps if m.t_s >= since_t_s]
        duration_s = round(float(samples["t_s"].max()), 3) if len(samples) else None
        meta = provenance.build_meta(
            self.experiment, self.parameters, self.mode, self.sample_hz, guest_facts=self.guest_facts,
            date_utc=self.date_utc,
            run_facts={"complete": interrupted is None, "duration_s": duration_s, **run_facts,
                       "results": results, "notices": notices,
                       **({"interrupted": interrupted} if interrupted is not None else {})})
        return Recording(samples=samples, events=events, meta=meta, buddyinfo=buddy, physmaps=maps,
                         why_shown=str(meta.get("mode_reason", "")))

    def held_events(self) -> list[tuple[float, str, str]]:
        """The events held now, oldest first: (t_s, kind, detail)."""
        with self._lock:
            return list(self._events)

    def _samples(self, columns: Sequence[str] | None, order: Sequence[str]) -> pd.DataFrame:
        rows = list(self.rows)
        if columns is not None:
            samples = pd.DataFrame.from_records(rows, columns=list(columns))
        elif rows:
            samples = pd.DataFrame.from_records(rows)
        else:
            samples = pd.DataFrame({"t_s": pd.Series(dtype="float64")})
        front = [c for c in order if c in samples.columns]
        samples = samples[front + [c for c in samples.columns if c not in front]]
        for c in samples.columns:  # all-empty columns (a host view that never answered) stay numeric
            if samples[c].dtype == object:
                samples[c] = pd.to_numeric(samples[c])
        samples["t_s"] = samples["t_s"].astype(float).round(6)  # µs: finer would only be noise in the CSV
        return samples
