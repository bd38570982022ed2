"""Guest samples + the host's view of the QEMU process, merged into one Recording.

Every `S` line the agent streams becomes one row: the guest's columns (named as the local
sampler names them) and, read the moment the line arrives, QEMU's VmRSS and RssAnon. So each
row shows both sides of the same instant, like the seed's two windows side by side.

Times: t_s is the host's clock (seconds since start). The guest's own clock is kept in
`guest_t_s`; guest-side times (command start/end) are mapped to the host's clock with the
smallest (arrival - guest time) seen so far, i.e. the least-delayed line.

Maps: beside every buddyinfo snapshot (`snapshot(label)`) the sampler takes the guest's map of physical
memory (vm/guestmap.py, over the agent) and, right after it, the host's (vm/hostmap.py, QEMU's RAM
residency), stored as one recording.physmap.MapStep per step (physmap.json). The guest's read takes
~150 ms under TCG, during which its one vCPU streams no samples: `sampler_cost.physmap_max_gap_s` is the
longest gap between samples around a map read. Where a map cannot be taken, meta says why
(`physmap_unavailable`, `hostmap_unavailable`) and the run goes on without it.
"""
from __future__ import annotations

import os
import platform
import threading
import time
from typing import Any

from ..recording import schema
from ..recording.physmap import MapStep
from ..recording.recorder import Recorder, why_interrupted
from ..recording.recording import Recording
from ..sampling.sampler import MEMINFO_COLUMNS, VMSTAT_COLUMNS, max_gap_during
from . import guestmap, hostmap
from .errors import VmError
from .machine import Machine, read_rss_kib
from .protocol import Ack, Message, Note, Sample, Snapshot, reportable_free_kib

HOST_COLUMNS = ("host_vm_rss_kib", "host_vm_rss_anon_kib")


def sample_row(sample: Sample, page_reporting_order: int | None, page_kib: int = 4) -> dict[str, Any]:
    """The guest's columns of one sample (pure): local-sampler names, units in the names."""
    row: dict[str, Any] = {"guest_t_s": sample.t_ms / 1000.0}
    for key, column in MEMINFO_COLUMNS.items():
        if key in sample.values:
            row[column] = sample.values[key]
    for key, column in VMSTAT_COLUMNS.items():
        if key in sample.values:
            row[column] = sample.values[key]
    if sample.buddy and page_reporting_order is not None:
        row["reportable_free_kib"] = reportable_free_kib(sample.buddy, page_reporting_order, page_kib)
    return row


def host_loadavg_1min() -> float | None:
    """The host's 1-minute load average (/proc/loadavg), None where unreadable."""
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class VmSampler:
    """Subscribes to a booted Machine; `stop()` returns the Recording."""

    def __init__(self, machine: Machine, hz: float = 10.0, experiment: str = "vm",
                 parameters: dict[str, Any] | None = None, maps: bool = True, map_block_order: int = 9,
                 page_reporting_order: int | None = None):
        if machine.hello is None:
            raise ValueError("boot the Machine before sampling it")
        self.machine = machine
        self.hz = float(hz)
        self.experiment = experiment
        self.parameters = dict(parameters or {})
        hello = machine.hello.fields
        order = hello.get("page_reporting_order", "none")
        # the boot's order, unless the caller read it since (a reused guest whose session wrote it at runtime)
        self.page_reporting_order = page_reporting_order if page_reporting_order is not None else \
            int(order) if order.isdigit() else None
        self.page_kib = int(hello.get("page_size", "4096")) // 1024
        # The guest's facts are the VM's own (its hello line, the Machine): the Recorder builds meta from them.
        self.recorder = Recorder(experiment, self.parameters, "live", self.hz, self._guest_facts())
        self.results = self.recorder.results  # step durations and effects (meta["results"])
        self.notices = self.recorder.notices  # sentences a banner shows (meta["notices"])
        self.notes: list[str] = []
        self._rows: list[dict[str, Any]] = self.recorder.rows
        self._lock = threading.Lock()
        self._offset_s: float | None = None  # host clock - guest clock, least-delayed line
        self._t0 = 0.0
        self.recording: Recording | None = None
        self.maps = maps                     # take the guest's and the host's map beside every buddyinfo snapshot
        self.map_block_order = map_block_order
        self._map_why_not: str | None = None    # the guest's map could not be taken: no more are tried
        self._host_why_not: str | None = None   # the host's map could not be taken (the guest's still are)
        self._map_spans: list[tuple[float, float]] = []   # (start, end) t_s of each pair of map reads
        self._load_start: float | None = None   # the host's 1-minute load at start: TCG's figures slow on a busy host

    def start(self) -> "VmSampler":
        rate = max(1, min(50, round(self.hz)))
        self.machine.command("rate", rate)
        self.hz = self.recorder.sample_hz = float(rate)
        self._load_start = host_loadavg_1min()
        self._t0 = time.monotonic()
        self.machine.subscribe(self._on_message)
        self._wait_rows(1, 5.0)
        return self

    def _wait_rows(self, n: int, timeout_s: float) -> None:
        end = time.monotonic() + timeout_s
        while len(self._rows) < n and time.monotonic() < end and self.machine.alive:
            time.sleep(0.02)

    def _on_message(self, arrived_s: float, msg: Message) -> None:
        if isinstance(msg, (Sample, Snapshot, Note)):
            offset = arrived_s - msg.t_ms / 1000.0
            if self._offset_s is None or offset < self._offset_s:
                self._offset_s = offset
        if isinstance(msg, Sample):
            rss, anon = read_rss_kib(self.machine.pid)
            row = {"t_s": arrived_s - self._t0, **sample_row(msg, self.page_reporting_order, self.page_kib),
                   "host_vm_rss_kib": rss, "host_vm_rss_anon_kib": anon}
            with self._lock:
                self._rows.append(row)
        elif isinstance(msg, Snapshot):
            self.recorder.buddyinfo(msg.label, msg.zones.items(), self.guest_to_t_s(msg.t_ms))
        elif isinstance(msg, Note):
            self.notes.append(msg.text)

    def guest_to_t_s(self, guest_ms: int) -> float:
        """A guest time as this recording's t_s."""
        offset = self._offset_s if self._offset_s is not None else self._t0
        return guest_ms / 1000.0 + offset - self._t0

    # -- what experiments call -------------------------------------------------------------------
    def now_s(self) -> float:
        return time.monotonic() - self._t0

    def mark(self, kind: str, detail: str = "", t_s: float | None = None) -> float:
        """Note an event at t_s (default now). Events keep the order they happened in: the clock
        mapping can shift by a few ms as better estimates arrive, never reordering them."""
        return self.recorder.event(kind, detail, self.now_s if t_s is None else t_s)

    def step(self, kind: str, detail: str, verb: str, *args: object, timeout_s: float = 300.0) -> Ack:
        """Run an agent command as an event at the guest's start time; its duration goes into results."""
        ack = self.machine.command(verb, *args, timeout_s=timeout_s)
        self.mark(kind, detail, self.guest_to_t_s(ack.t_start_ms))
        key = f"{kind}_{detail}_s" if detail.isidentifier() or detail.isdigit() else f"{kind}_s"
        # One name per result, local or VM (e.g. the agent's "compact" is compact_memory_s).
        key = schema.ALIASES.get(self.experiment, {}).get(key, key)
        self.results[key] = round(ack.duration_s, 3)
        return ack

    def snapshot(self, label: str) -> None:
        """Buddyinfo under `label` (a B line), then the guest's and the host's maps beside it."""
        self.machine.command("snapshot", label)
        if self.maps:
            self.snapshot_maps(label)

    @property
    def maps_why_not(self) -> str | None:
        """Why no more maps are taken (the guest's, else the host's), or None."""
        return self._map_why_not or self._host_why_not

    def snapshot_maps(self, label: str, ours: bool = False) -> MapStep | None:
        """The guest's map now and the host's right after it, as one MapStep (None where the guest's
        cannot be taken: the first reason goes into meta as physmap_unavailable). ours: the agent's
        alloc buffer's frames are the map's "ours" (it must hold one)."""
        if self._map_why_not is not None:
            return None
        start_s = self.now_s()
        try:
            guest, read_s = guestmap.read_guest_map(self.machine, self.map_block_order, ours=ours)
        except VmError as exc:
            self._map_why_not = f"the guest's map: {exc}"
            return None
        host, host_read_s = None, None
        if self._host_why_not is None:
            t0 = time.perf_counter()
            try:
                host = hostmap.read_host_map(self.machine.pid, self.machine.mem_mib << 20, self.map_block_order)
                host_read_s = round(time.perf_counter() - t0, 4)
            except hostmap.HostMapError as exc:
                self._host_why_not = str(exc)
        self._map_spans.append((round(start_s, 6), round(self.now_s(), 6)))
        step = MapStep(label, round(start_s, 6), round(read_s, 4), guest, None, host, host_read_s)
        self.recorder.physmap(step)
        return step

    def latest(self) -> dict[str, Any] | None:
        with self._lock:
            return dict(self._rows[-1]) if self._rows else None

    def host_rss_kib(self) -> int | None:
        return read_rss_kib(self.machine.pid)[0]

    # -- the Recording ---------------------------------------------------------------------------
    def stop(self, interrupted: str | None = None) -> Recording:
        if self.recording is not None:
            return self.recording
        self.machine.unsubscribe(self._on_message)
        with self._lock:
            facts: dict[str, Any] = {"mode_reason": "live: the kit's VM runs here",
                                     "sampler_cost": self._cost(),
                                     "host_load": {"cpus": os.cpu_count(), "loadavg_1min_start": self._load_start,
                                                   "loadavg_1min_end": host_loadavg_1min()}}
            if self.maps and self._map_why_not is not None:
                facts["physmap_unavailable"] = self._map_why_not
            if self.maps and self._map_why_not is None and self._host_why_not is not None:
                facts["hostmap_unavailable"] = self._host_why_not
            if self.notes:
                facts["guest_notes"] = list(self.notes)
            self.recording = self.recorder.finish(order=("t_s", "guest_t_s"), interrupted=interrupted, **facts)
        return self.recording

    def stop_after(self, exc: BaseException) -> Recording:
        """Stop because `exc` ended the run: the recording says why and rides on the exception
        (`exc.recording`), so the caller can keep what was measured."""
        exc.recording = self.stop(interrupted=why_interrupted(type(exc), exc))  # type: ignore[attr-defined]
        return exc.recording  # type: ignore[attr-defined]

    def _cost(self) -> dict[str, Any]:
        """Samples that arrived, their longest gap, and what the maps cost them (held under the lock)."""
        import pandas as pd
        t_s = pd.Series([r["t_s"] for r in self._rows], dtype="float64")
        gaps = t_s.diff().dropna()
        cost: dict[str, Any] = {"samples": len(t_s), "max_gap_s": round(float(gaps.max()), 4) if len(gaps) else None}
        if self._map_spans:
            cost.update(physmap_snapshots=len(self._map_spans),
                        physmap_read_s_max=round(max(b - a for a, b in self._map_spans), 4),
                        physmap_max_gap_s=max_gap_during(t_s, self._map_spans))
        return cost

    def _guest_facts(self) -> dict[str, Any]:
        """What the kit's VM is, for meta: from its hello line and the Machine that booted it."""
        m = self.machine
        hello = m.hello.fields if m.hello else {}
        assert m.accel is not None
        return {
            "kernel_release": hello.get("kernel", m.image.kernel_release),
            "guest_kernel_source": m.image.kernel_source or None,
            "guest_kind": "kit-vm",
            "hypervisor": m.accel.hypervisor,
            "accel_reason": m.accel.reason,
            "free_page_reporting": "on" if m.reporting else "off",
            "page_reporting_order": self.page_reporting_order,
            "page_size_bytes": self.page_kib * 1024,
            "guest_thp": hello.get("thp"),
            "guest_disk": hello.get("disk") == "yes",
            "guest_mem_mib": m.mem_mib,
            "guest_cpus": 1,
            "boot_s": round(m.boot_s, 3) if m.boot_s is not None else None,
            "host_view": "QEMU process VmRSS / RssAnon from /proc/<pid>/status",
            "host_kernel_release": platform.release(),
        }
