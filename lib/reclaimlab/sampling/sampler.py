"""The sampler: a background thread recording the guest's memory N times a second.

    with Sampler(hz=10, extra_sources=host_views) as s:
        s.mark("touch"); ...; s.mark("free"); ...
    rec = s.recording            # or: s.start(); ...; rec = s.stop()

Every sample carries the real monotonic time it was taken (`t_s`, seconds since
start): a Python thread can be held up by the GIL for tens to hundreds of ms
(measured on the kit's dev guest, 2026-11), so samples are never assumed evenly spaced. The thread sleeps to
absolute deadlines (start + k/hz), so it does not drift; a deadline missed by more
than a period is skipped, not caught up in a burst.

Files are read through `fastread` (kept descriptors, os.pread, only the fields we
record). Columns a guest cannot provide are absent, never invented. cgroup
memory.stat is the costliest file after vmstat and only splits usage into file and
anon, so above CGROUP_STAT_MAX_HZ it is read on every k-th sample only (its columns
are empty in between); usage itself is read on every sample.
"""
from __future__ import annotations

import math
import os
import resource
import threading
import time
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

import pandas as pd

from ..probe import fastread, procfs, sources
from ..recording import provenance
from ..recording.recorder import Recorder
from ..recording.recording import Recording

MAX_HZ = 2000.0
"""Above this a Python thread's wake-ups alone use most of a core and the samples' spacing
is set by the scheduler, not the rate asked for; ci/bench shows what this machine sustains."""
MIN_HZ = 1 / 3600
"""One sample an hour: below it the wait between samples (1/hz) leaves the range of any timer (1e-300 Hz
is a wait of 1e300 s) and nothing is watched at all; every caller (watch, labs, dashboard) shares it."""
DEFAULT_HZ = 10.0
CGROUP_STAT_MAX_HZ = 10.0
STOP_LATENCY_S = 0.25  # the longest stop() waits for the thread to notice (at rates below 4 Hz)

MEMINFO_COLUMNS = {  # /proc/meminfo field -> column (the kernel reports KiB)
    "MemTotal": "mem_total_kib",
    "MemFree": "mem_free_kib",
    "MemAvailable": "mem_available_kib",
    "Buffers": "buffers_kib",
    "Cached": "cached_kib",
    "AnonPages": "anon_kib",
    "Shmem": "shmem_kib",
    "SReclaimable": "slab_reclaimable_kib",
    "SUnreclaim": "slab_unreclaimable_kib",
    "AnonHugePages": "anon_huge_kib",
    "Dirty": "dirty_kib",
    "Writeback": "writeback_kib",  # being written to disk: a drop skips it as it skips Dirty
    "Mapped": "mapped_kib",        # file pages some process maps (tmpfs/shm included): a drop skips them
}
VMSTAT_COLUMNS = {  # /proc/vmstat counter -> column: events since boot, or pages scanned since boot
    "compact_stall": "compact_stall_count",
    "compact_success": "compact_success_count",
    "compact_fail": "compact_fail_count",
    "compact_migrate_scanned": "compact_migrate_scanned_pages",
    "compact_free_scanned": "compact_free_scanned_pages",
    "compact_isolated": "compact_isolated_pages",   # pages taken to move plus free pages taken as targets
    "compact_daemon_wake": "compact_daemon_wake_count",
}
CGROUP_COLUMNS = ("cgroup_usage_bytes", "cgroup_file_bytes", "cgroup_anon_bytes")
CANONICAL_ORDER = ("t_s", *MEMINFO_COLUMNS.values(), *VMSTAT_COLUMNS.values(), *CGROUP_COLUMNS)


class ColumnSource(Protocol):
    """An extra column (a host view): `read()` returns at once, an int or None (no fresh value)."""

    column: str

    def read(self) -> int | None: ...


class SamplerError(RuntimeError):
    """The sampler was used out of order (mark before start, start twice, ...)."""


def validate_hz(hz: Any) -> float:
    """`hz` as a float, or ValueError saying what a valid rate is."""
    if isinstance(hz, bool) or not isinstance(hz, (int, float)):
        raise ValueError(f"sample rate {hz!r} is not a number; give samples per second, e.g. 10")
    rate = float(hz)
    if math.isnan(rate):
        raise ValueError(f"sample rate {hz!r} is not a number; give samples per second, e.g. 10")
    if rate <= 0:
        raise ValueError(f"sample rate {hz!r} must be above 0 samples per second (e.g. 10)")
    if rate < MIN_HZ:
        raise ValueError(f"sample rate {hz!r} is below the minimum of one sample an hour ({MIN_HZ:.3g} samples "
                         f"per second); give samples per second, e.g. 10")
    if rate > MAX_HZ:
        raise ValueError(f"sample rate {hz!r} is above the maximum of {MAX_HZ:g} samples per second; "
                         f"a Python thread cannot keep it (10 is plenty to watch memory move)")
    return rate


def _cgroup_stat_names(stat: Mapping[str, int]) -> dict[str, str]:
    """memory.stat key -> column for the file/anon split (the keys: procfs.cgroup_file_anon_keys)."""
    file_key, anon_key = procfs.cgroup_file_anon_keys(stat)
    return {k: col for k, col in ((file_key, "cgroup_file_bytes"), (anon_key, "cgroup_anon_bytes")) if k}


class SampleReaders:
    """Every source one sample reads, opened once; `row(k)` is sample k's values (without t_s).

    The sampler's thread uses it; ci/bench times `row()` against bare reads of `files()`.
    """

    def __init__(self, roots: sources.Roots, extra: Sequence[ColumnSource], cgroup: bool, hz: float):
        self._closers: list = []
        try:
            self.meminfo = fastread.meminfo_reader(roots.proc / "meminfo", MEMINFO_COLUMNS)
            self._closers.append(self.meminfo)
            if not self.meminfo.columns:
                raise sources.SourceError(f"{roots.proc / 'meminfo'}: none of the fields the sampler records "
                                          f"({', '.join(MEMINFO_COLUMNS)}) is there")
            # The optional sources: where one is missing or unreadable its columns are absent
            # (and meta["sources_skipped"] says why); only meminfo is required.
            self.skipped: list[str] = []
            self.vmstat = self.usage = self.stat = None
            self.vmstat = self._optional(lambda: fastread.flat_reader(roots.proc / "vmstat", VMSTAT_COLUMNS))
            self.cgroup: sources.MemoryCgroup | None = sources.memory_cgroup(roots) if cgroup else None
            if self.cgroup is not None:
                cg = self.cgroup
                self.usage = self._optional(lambda: fastread.KeptFile(cg.usage_file))
                names = self._optional(lambda: _cgroup_stat_names(cg.stat())) if self.usage else None
                if names:
                    self.stat = self._optional(lambda: fastread.flat_reader(cg.stat_file, names))
        except BaseException:
            self.close()
            raise
        self.extra = list(extra)
        self.stat_every = max(1, math.ceil(hz / CGROUP_STAT_MAX_HZ - 1e-9))
        self._stat_none = (None,) * len(self.stat.columns) if self.stat else ()
        self.columns = (self.meminfo.columns
                        + (self.vmstat.columns if self.vmstat else ())
                        + (("cgroup_usage_bytes",) if self.usage else ())
                        + (self.stat.columns if self.stat else ())
                        + tuple(s.column for s in self.extra))
        self.extra_errors: dict[str, str] = {}

    def _optional(self, open_source: Callable[[], Any]) -> Any:
        try:
            source = open_source()
        except (sources.SourceError, procfs.ProcParseError) as exc:
            self.skipped.append(str(exc))
            return None
        if hasattr(source, "close"):
            self._closers.append(source)
        return source

    def files(self) -> list[tuple[str, int | None]]:
        """(path, bytes a read asks for: None = all) of every file a full sample reads."""
        out = [(str(r.path), r.prefix_bytes) for r in (self.meminfo, self.vmstat, self.stat) if r is not None]
        if self.usage is not None:
            out.append((str(self.usage.path), None))
        return out

    def row(self, k: int) -> tuple[int | None, ...]:
        """Sample number k's values, in `columns` order."""
        values = self.meminfo.read()
        if self.vmstat is not None:
            values += self.vmstat.read()
        if self.usage is not None:
            values += (fastread.read_number(self.usage),)
        if self.stat is not None:
            values += self.stat.read() if k % self.stat_every == 0 else self._stat_none
        if self.extra:
            values += tuple(self._extra(s) for s in self.extra)
        return values

    def _extra(self, source: ColumnSource) -> int | None:
        try:
            return source.read()
        except Exception as exc:  # a host view must not end the sampling; its column stays empty
            self.extra_errors.setdefault(source.column, f"{type(exc).__name__}: {exc}")
            return None

    def close(self) -> None:
        for c in self._closers:
            c.close()
        self._closers = []


class Sampler:
    """Records the guest's memory in a daemon thread; `stop()` gives the Recording.

    hz: samples per second (0 < hz <= MAX_HZ). roots: where /proc and /sys are
    (default: Roots.from_env()). extra_sources: more columns, e.g. host views; the
    caller owns (and closes) them. cgroup: record this process's memory cgroup where
    one exists. buddyinfo: snapshot /proc/buddyinfo at start and stop (labels
    "start", "stop"); `snapshot_buddyinfo(label)` adds more at any time. physmap: beside every buddyinfo
    snapshot also take a map of physical memory (`snapshot_physmap(label)`, which adds one alone), with the
    pages of process `ours_pid` (the workload, set by the experiment) where it is set; where the page flags
    cannot be read (not root) no map is taken and meta["physmap_unavailable"] says why.
    experiment / parameters / guest_info go into the Recording's meta (see provenance);
    results / notices: the run's own dict and list, which its Recorder puts into meta as they are at stop().
    """

    def __init__(self, hz: float = DEFAULT_HZ, roots: sources.Roots | None = None,
                 extra_sources: Iterable[ColumnSource] = (), cgroup: bool = True, buddyinfo: bool = False,
                 *, physmap: bool = False, experiment: str = "sampler", parameters: Mapping[str, Any] | None = None,
                 guest_info: Any = None, results: dict[str, Any] | None = None,
                 notices: list[str] | None = None):
        self.hz = validate_hz(hz)
        self.roots = roots or sources.Roots.from_env()
        self.extra_sources = list(extra_sources)
        columns = [getattr(s, "column", None) for s in self.extra_sources]
        for s, c in zip(self.extra_sources, columns):
            if not isinstance(c, str) or not c or not callable(getattr(s, "read", None)):
                raise TypeError(f"extra source {s!r} needs a non-empty .column and a .read() method")
        if len(set(columns)) != len(columns):
            raise ValueError(f"extra sources repeat a column: {columns}")
        self.cgroup = cgroup
        self.buddyinfo = buddyinfo
        self.physmap = physmap
        self.ours_pid: int | None = None           # the workload's process: its pages are "ours" in the maps
        self._physmap_why_not: str | None = None   # set once a map could not be read; no more are tried
        self._physmap_spans: list[tuple[float, float]] = []   # (start, end) t_s of each map read
        self.experiment = experiment
        self.parameters = dict(parameters or {})
        self.guest_info = guest_info
        self._results = results if results is not None else {}
        self._notices = notices if notices is not None else []
        self.recording: Recording | None = None   # set by stop()
        self.recorder: Recorder | None = None     # made by start(), with this guest's facts

        self._readers: SampleReaders | None = None
        self._rows: list[tuple] = []
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._first_sample = threading.Event()
        self._error: BaseException | None = None
        self._t0 = 0.0
        self._cpu_s = 0.0
        self._missed_ticks = 0

    # -- life cycle ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def columns(self) -> tuple[str, ...]:
        """The sample columns (t_s first), known once started."""
        if self._readers is None:
            raise SamplerError("the columns are known once the sampler has started")
        return ("t_s",) + self._readers.columns

    def start(self) -> "Sampler":
        """Open the sources and start sampling; returns once the first sample is taken."""
        if self._thread is not None:
            raise SamplerError("this sampler was already started; make a new Sampler for a new recording")
        self.recorder = Recorder(self.experiment, self.parameters, "live", self.hz,
                                 provenance.local_guest_facts(self.roots, self.guest_info))
        self.recorder.results, self.recorder.notices = self._results, self._notices
        self._rows = self.recorder.rows
        self._readers = SampleReaders(self.roots, self.extra_sources, self.cgroup, self.hz)
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="reclaimlab-sampler", daemon=True)
        self._thread.start()
        self._first_sample.wait(5.0)
        if self._error is not None:  # the very first sample failed: say why now, not at stop()
            self._thread.join()
            self._readers.close()
            raise self._error
        if self.buddyinfo:
            self.snapshot_buddyinfo("start")
        return self

    def stop(self, interrupted: str | None = None, **run_facts: Any) -> Recording:
        """Stop sampling and return the Recording (the same one on a second call).

        interrupted: why the run ended early (the Recording is then marked complete=False).
        run_facts: more of what the run found, for meta (e.g. stopped_by; schema.META names them).
        """
        if self.recording is not None:
            return self.recording
        if self._thread is None:
            raise SamplerError("stop() before start(): nothing was sampled")
        if self.buddyinfo and self._error is None:
            try:
                self.snapshot_buddyinfo("stop")
            except sources.SourceError:
                pass
        self._stopping = True
        self._thread.join()
        assert self._readers is not None
        self._readers.close()
        if self._error is not None and interrupted is None:
            interrupted = f"the sampler stopped early: {self._error}"
        self.recording = self._build(interrupted, run_facts)
        return self.recording

    def __enter__(self) -> "Sampler":
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        reason = None
        if exc_type is not None:
            reason = "KeyboardInterrupt (Ctrl-C)" if issubclass(exc_type, KeyboardInterrupt) \
                else f"{exc_type.__name__}: {exc}"
        self.stop(interrupted=reason)

    # -- marks and snapshots (any thread) ------------------------------------------------------
    def _now_s(self) -> float:
        if self._thread is None:
            raise SamplerError("start the sampler before marking events")
        if self.recording is not None:
            raise SamplerError("the sampler has stopped; marks after stop() would be lost")
        return round(time.monotonic() - self._t0, 6)  # µs, as stored

    def mark(self, kind: str, detail: str = "") -> float:
        """Note an event (alloc, touch, free, drop_caches, ...) now; returns its t_s."""
        if not isinstance(kind, str) or not kind.strip():
            raise ValueError(f"event kind {kind!r} must be a non-empty word such as 'free'")
        self._now_s()  # refuses a mark before start or after stop
        assert self.recorder is not None
        return self.recorder.event(kind, detail, self._now_s)  # time read under its lock: events in order

    def snapshot_buddyinfo(self, label: str) -> float:
        """Record /proc/buddyinfo now under `label` (e.g. "fragmented"), and beside it the free pages on
        the per-CPU lists, which buddyinfo does not count (results["per_cpu_free_kib"][label]); returns its t_s."""
        zones = sources.buddyinfo(self.roots)
        per_cpu_kib = sources.per_cpu_free_kib(self.roots)
        self._now_s()  # refuses a snapshot before start or after stop
        assert self.recorder is not None
        if per_cpu_kib is not None:
            self.recorder.results.setdefault("per_cpu_free_kib", {})[label] = per_cpu_kib
        t_s = self.recorder.buddyinfo(label, [(buddy_zone_name(z), z.free_blocks) for z in zones], self._now_s)
        if self.physmap:
            self.snapshot_physmap(label)
        return t_s

    def snapshot_physmap(self, label: str) -> float | None:
        """Take a map of physical memory now under `label`, our workload's pages (ours_pid) located in it;
        returns its t_s, or None where the page flags cannot be read (the first reason is kept for meta)."""
        from ..probe import pagemap
        from ..probe import physmap as probe_physmap
        from ..recording.physmap import MapStep

        self._now_s()  # refuses a snapshot before start or after stop
        if self._physmap_why_not is not None:
            return None
        assert self.recorder is not None
        t0 = time.monotonic()
        ours = pagemap.process_pfns(self.ours_pid) if self.ours_pid is not None else None
        try:
            snap = probe_physmap.read_snapshot(self.roots, ours_pfns=ours)
        except probe_physmap.MapUnavailable as exc:
            self._physmap_why_not = str(exc)
            return None
        t1 = time.monotonic()
        start_s, end_s = round(t0 - self._t0, 6), round(t1 - self._t0, 6)
        self._physmap_spans.append((start_s, end_s))
        self.recorder.physmap(MapStep(label, start_s, round(t1 - t0, 4), snap,
                                      None if ours is None else int(len(ours))))
        return start_s

    def latest(self) -> dict[str, float | int | None] | None:
        """The newest sample as {column: value} (t_s included), or None before the first."""
        rows = self._rows
        if not rows or self._readers is None:
            return None
        return dict(zip(self.columns, rows[-1]))

    def first(self) -> dict[str, float | int | None] | None:
        rows = self._rows
        if not rows or self._readers is None:
            return None
        return dict(zip(self.columns, rows[0]))

    @property
    def sample_count(self) -> int:
        return len(self._rows)

    def read_once(self) -> tuple[int | None, ...]:
        """One full sample now, in the caller's thread (values in `columns[1:]` order); for ci/bench."""
        if self._readers is None:
            raise SamplerError("start the sampler first")
        return self._readers.row(0)

    # -- the thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        readers = self._readers
        assert readers is not None
        rows, append, row = self._rows, self._rows.append, readers.row
        monotonic, sleep = time.monotonic, time.sleep
        period_s, t0 = 1.0 / self.hz, self._t0
        cpu0 = time.thread_time()
        k = 0  # index of the next deadline: t0 + k * period_s
        try:
            while True:
                now = monotonic()
                append((now - t0,) + row(len(rows)))
                if k == 0:
                    self._first_sample.set()
                if self._stopping:
                    break  # that was the final sample, taken at stop time
                k += 1
                now = monotonic()
                behind = now - (t0 + k * period_s)
                if behind > period_s:  # a whole period late (GIL, scheduler): skip, stay on the grid
                    skip = int(behind / period_s)
                    k += skip
                    self._missed_ticks += skip
                # One sleep per sample: each wake-up costs ~60 µs of CPU here (ci/bench), more than
                # a sample's reads. Only periods above STOP_LATENCY_S are sliced, so stop() is prompt.
                while not self._stopping:
                    left = t0 + k * period_s - monotonic()
                    if left <= 0:
                        break
                    sleep(left if left <= STOP_LATENCY_S else STOP_LATENCY_S)
        except BaseException as exc:  # noqa: BLE001  recorded, and stop() marks the recording partial
            self._error = exc
        finally:
            self._cpu_s = time.thread_time() - cpu0
            self._first_sample.set()

    # -- the Recording -------------------------------------------------------------------------
    def _build(self, interrupted: str | None, run_facts: Mapping[str, Any]) -> Recording:
        assert self._readers is not None and self.recorder is not None
        columns = list(self.columns)
        t_s = pd.Series([row[0] for row in self._rows], dtype="float64").round(6)
        facts: dict[str, Any] = {"sampler_cost": self._cost(t_s)}
        if self._readers.stat is not None and self._readers.stat_every > 1:
            facts["cgroup_stat_every_n_samples"] = self._readers.stat_every
        if self._readers.skipped:
            facts["sources_skipped"] = list(self._readers.skipped)
        if self._readers.extra_errors:
            facts["source_errors"] = dict(self._readers.extra_errors)
        if self.physmap and self._physmap_why_not is not None:
            facts["physmap_unavailable"] = self._physmap_why_not
        return self.recorder.finish(columns, order=CANONICAL_ORDER, interrupted=interrupted, **facts, **run_facts)

    def _cost(self, t_s: pd.Series) -> dict[str, Any]:
        n = len(t_s)
        wall_s = float(t_s.iloc[-1]) if n else 0.0
        gaps = t_s.diff().dropna()
        return {
            "samples": n,
            "wall_s": round(wall_s, 4),
            "achieved_hz": round((n - 1) / wall_s, 3) if n > 1 and wall_s > 0 else None,
            "max_gap_s": round(float(gaps.max()), 4) if len(gaps) else None,
            "missed_ticks": self._missed_ticks,
            "thread_cpu_s": round(self._cpu_s, 6),
            "cpu_share_of_one_core": round(self._cpu_s / wall_s, 6) if wall_s > 0 else None,
            "cpu_us_per_sample": round(self._cpu_s / n * 1e6, 2) if n else None,
            "process_rss_bytes": _process_rss_bytes(),
            "process_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            **self._physmap_cost(t_s),
        }

    def _physmap_cost(self, t_s: pd.Series) -> dict[str, Any]:
        """What the maps cost the samples: the longest gap between samples around any map read."""
        if not self._physmap_spans:
            return {}
        return {"physmap_snapshots": len(self._physmap_spans),
                "physmap_read_s_max": round(max(b - a for a, b in self._physmap_spans), 4),
                "physmap_max_gap_s": max_gap_during(t_s, self._physmap_spans)}


def _process_rss_bytes() -> int | None:
    """This process's resident memory now (the sampler's rows live in it)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def max_gap_during(t_s: pd.Series, spans: Sequence[tuple[float, float]]) -> float | None:
    """The longest gap between consecutive samples that overlaps any of these (start, end) spans: what
    the work done in those spans cost the sampler (one period where it cost nothing)."""
    t = t_s.to_numpy(dtype="float64")
    if len(t) < 2:
        return None
    lo, hi = t[:-1], t[1:]
    worst = None
    for a, b in spans:
        overlap = (hi >= a) & (lo <= b)
        if overlap.any():
            gap = float((hi - lo)[overlap].max())
            worst = gap if worst is None else max(worst, gap)
    return None if worst is None else round(worst, 4)


def buddy_zone_name(zone: procfs.BuddyZone) -> str:
    """The zone as buddyinfo.csv names it: "Node 0 Normal"."""
    return f"Node {zone.node} {zone.zone}"
