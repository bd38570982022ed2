"""Reclaim by memory pressure: WSL's PROPOSED gradual mode (closed, NOT merged in WSL), as a pure model.

    policy = Policy("gradual", variant="pressure")          # autoreclaim_policy.Policy runs this
    actions = policy.decide(Observation(..., psi_some_avg10=0.2, refault_file_pages=123456))

PROPOSED, NOT MERGED IN WSL. Source: the stacked pull requests microsoft/WSL #40777 (helpers rework),
#40778 (drive gradual by PSI), #40779 (adaptive floor from refaults) and #40780 (make gradual the
default), all closed unmerged in 2026; the merged rewrite #41096 (49f841c) kept a CPU-idle gate instead.
Read at the head of #40779, commit 4e60f356b1f8855099b4e394a668675bf7607ff2 (2026-06-11),
src/linux/init/util.cpp; #40780's head 20a38ef79 carries the same RunGradualTick and constants.

What one 10 s poll does in gradual mode (util.cpp lines at 4e60f356b):
  - reads PSI `some avg10` from /proc/pressure/memory (`GetMemoryPressureAvg10`, 3771; -1 when PSI is
    missing) and the cumulative `workingset_refault_file` of /proc/vmstat (`GetFileRefaults`, 3817);
    the refault delta since the last poll is the brake: `RefaultBrake = delta >= 10000 pages`
    (`c_refaultBackoffPages`, 3891, "~40 MB at 4 KB pages"). `RunGradualTick`, 4029.
  - PSI available (4083-4103):
      avg10 >= 5.0 (`c_pressureBackoffMin`, 3887) or the refault brake -> `RaiseFloorToProtect` (3939):
        floor = min(floor_max, max(2 x floor, cache + 128 MiB)), calm streak = 0, no reclaim;
      1.0 <= avg10 < 5.0 (`c_pressureReclaimMax`, 3886) -> dead zone: calm streak = 0, no reclaim;
      avg10 < 1.0 -> calm: `DecayFloorAfterCalm` (3959: after 6 calm polls, `c_floorDecayAfterCalmTicks`,
        the floor drops 64 MiB per poll toward 128 MiB) and reclaim may run.
    This path has NO CPU gate: it acts while the VM is busy.
  - PSI missing (4058-4081): refault brake as above; else reclaim only in a CPU-idle interval
    (busy <= 0.5 %, the same per-interval test as #41096, 4336), decaying the floor; a busy interval
    zeroes the calm streak.
  - reclaim (4106-4130): excess = cache - floor, cache = Active(file) + Inactive(file) + SReclaimable;
    only if excess > 128 MiB (`c_gradualHysteresisBytes`, 3904): write excess (CPU-idle interval) or
    min(excess, 256 MiB) (`c_gradualStepBusyBytes`, 3908, busy interval) to the ROOT cgroup's
    memory.reclaim (`RequestCgroupReclaim`, 3978: the plain number, NO `swappiness=0`; EAGAIN counts as
    success, 4020); then the refault baseline is re-read after the write (4124-4128) so the next delta
    is charged to this reclaim.
  - floor: starts at 128 MiB (`c_floorBaseBytes`, 3898), capped at 3/4 of RAM (3900-3901, set at 4304;
    4 GiB where RAM is unknown, 3899).
  - compaction (`RunCompactionTick`, 4181): after a reclaim that worked, or when free memory grew by
    256 MiB (`c_compactFreeGrowthBytes`, 3911) since the last compaction (the mark follows free memory
    down, and moves up only when a compaction worked).
  - the thread runs at SCHED_IDLE (4280); gradual falls back to dropCache when memory.reclaim is not
    writable (4288), as in #41096.

Choices where the series is silent or where a pure model must choose (said here, and in docs/wsl-pressure.md):
  - time compression: the refault threshold is a count per 10 s poll; with `time_scale` it is scaled
    with the poll (a rate of 1000 pages/s), so a compressed run brakes at the same refault RATE.
    Calm streaks count polls, as in the source.
  - a refault counter that goes backwards (a reset) gives delta 0 and a new baseline (the C code would
    compute a negative delta, which also never brakes).
  - the series' dropCache mode (30 idle polls, re-drop after 256 MiB cache growth) is not modelled:
    `variant="pressure"` supports `gradual` (and `disabled`); dropCache under it is an error.
  - `memory_reclaim_available=False`: the series falls back to dropCache (4288), which is not modelled,
    so this is refused too.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..units import GIB, MIB

# --- microsoft/WSL PR #40779 head 4e60f356b, src/linux/init/util.cpp (CLOSED, NOT MERGED) ---
PRESSURE_POLL_S = 10.0                      # c_pollInterval (3872)
PRESSURE_IDLE_BUSY_SHARE = 0.005            # c_busyThresholdPerMille = 5, inclusive (3876, 4336)
PRESSURE_RECLAIM_BELOW_AVG10 = 1.0          # c_pressureReclaimMax (3886)
PRESSURE_BACKOFF_AT_AVG10 = 5.0             # c_pressureBackoffMin (3887)
PRESSURE_REFAULT_BACKOFF_PAGES = 10_000     # c_refaultBackoffPages (3891), per 10 s poll
PRESSURE_FLOOR_BASE_BYTES = 128 * MIB       # c_floorBaseBytes (3898)
PRESSURE_FLOOR_MAX_FALLBACK_BYTES = 4 * GIB  # c_floorMaxFallbackBytes (3899)
PRESSURE_FLOOR_MAX_RAM_SHARE = 3 / 4        # c_floorMaxRamNumerator / c_floorMaxRamDenominator (3900-3901)
PRESSURE_FLOOR_DECAY_BYTES = 64 * MIB       # c_floorDecayBytes (3902)
PRESSURE_FLOOR_DECAY_AFTER_CALM_POLLS = 6   # c_floorDecayAfterCalmTicks (3903, "60s")
PRESSURE_HYSTERESIS_BYTES = 128 * MIB       # c_gradualHysteresisBytes (3904)
PRESSURE_BUSY_STEP_BYTES = 256 * MIB        # c_gradualStepBusyBytes (3908)
PRESSURE_COMPACT_FREE_GROWTH_BYTES = 256 * MIB  # c_compactFreeGrowthBytes (3911)

LABEL = "proposed, not merged in WSL (microsoft/WSL #40778-#40779, closed)"


@dataclass(frozen=True)
class PressureParams:
    """The series' tunables (defaults = the source's constants). Validated on creation.

    Shares and thresholds use the source's units: PSI avg10 in percent (0-100), refaults in pages
    per 10 s poll (scaled with time_scale by the policy), sizes in bytes.
    """

    reclaim_below_avg10: float = PRESSURE_RECLAIM_BELOW_AVG10
    backoff_at_avg10: float = PRESSURE_BACKOFF_AT_AVG10
    refault_backoff_pages: int = PRESSURE_REFAULT_BACKOFF_PAGES
    floor_base_bytes: int = PRESSURE_FLOOR_BASE_BYTES
    floor_max_ram_share: float = PRESSURE_FLOOR_MAX_RAM_SHARE
    floor_max_fallback_bytes: int = PRESSURE_FLOOR_MAX_FALLBACK_BYTES
    floor_decay_bytes: int = PRESSURE_FLOOR_DECAY_BYTES
    floor_decay_after_calm_polls: int = PRESSURE_FLOOR_DECAY_AFTER_CALM_POLLS
    hysteresis_bytes: int = PRESSURE_HYSTERESIS_BYTES
    busy_step_bytes: int = PRESSURE_BUSY_STEP_BYTES
    compact_free_growth_bytes: int = PRESSURE_COMPACT_FREE_GROWTH_BYTES

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"PressureParams.{name} = {getattr(self, name)!r}: {why}")
        for name in ("reclaim_below_avg10", "backoff_at_avg10"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not (0 < v <= 100):
                raise bad(name, "expected a PSI avg10 percentage above 0 and at most 100")
        if self.reclaim_below_avg10 > self.backoff_at_avg10:
            raise ValueError(f"PressureParams: reclaim_below_avg10 ({self.reclaim_below_avg10}) must not exceed "
                             f"backoff_at_avg10 ({self.backoff_at_avg10}); the band between them is the dead zone "
                             "(the source uses 1.0 and 5.0)")
        for name in ("refault_backoff_pages", "floor_decay_after_calm_polls"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise bad(name, "expected a whole number of at least 1")
        for name in ("floor_base_bytes", "floor_max_fallback_bytes", "floor_decay_bytes", "busy_step_bytes",
                     "compact_free_growth_bytes"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise bad(name, "expected a positive number of bytes")
        if not isinstance(self.hysteresis_bytes, int) or self.hysteresis_bytes < 0:
            raise bad("hysteresis_bytes", "expected a number of bytes, 0 or more")
        if not isinstance(self.floor_max_ram_share, (int, float)) or not (0 < self.floor_max_ram_share <= 1):
            raise bad("floor_max_ram_share", "expected a share of RAM above 0 and at most 1 (the source uses 3/4)")
        if self.floor_max_fallback_bytes < self.floor_base_bytes:
            raise bad("floor_max_fallback_bytes", f"must be at least floor_base_bytes ({self.floor_base_bytes})")

    def floor_max_bytes(self, mem_total_bytes: int | None) -> int:
        """The floor's cap: max(base, RAM x 3/4) (util.cpp 4304), or the 4 GiB fallback without RAM."""
        if not mem_total_bytes or mem_total_bytes <= 0:
            return self.floor_max_fallback_bytes
        return max(self.floor_base_bytes, int(mem_total_bytes * self.floor_max_ram_share))


@dataclass
class PressureState:
    """What the series carries across polls (MemoryReclaimState's gradual and compaction fields)."""

    floor_bytes: int
    floor_max_bytes: int | None = None       # set from the first observation's MemTotal
    previous_refaults: int | None = None
    calm_streak: int = 0
    free_at_last_compaction: int = 0
    # for charts and tests: what the last poll saw and concluded
    last_refault_delta: int = 0
    last_zone: str = ""                       # "calm" | "dead zone" | "backoff" | "no psi: idle" | ...


@dataclass(frozen=True)
class PressureTick:
    """One poll's reasoning, kept on Policy.last_pressure for charts, events and tests."""

    zone: str
    psi_some_avg10: float | None
    refault_delta_pages: int
    refault_brake: bool
    interval_idle: bool
    floor_bytes: int
    reclaim_bytes: int


def refault_brake_pages(params: PressureParams, time_scale: float) -> float:
    """Refaults per (scaled) poll that brake: 10000 per 10 s poll, i.e. the same rate when compressed."""
    return params.refault_backoff_pages * time_scale


def raise_floor_to_protect(state: PressureState, params: PressureParams, cache_bytes: int | None) -> None:
    """RaiseFloorToProtect (3939): jump to protect what is cached now (+ hysteresis), at least double."""
    protect = state.floor_bytes * 2 if cache_bytes is None else cache_bytes + params.hysteresis_bytes
    cap = state.floor_max_bytes if state.floor_max_bytes is not None else params.floor_max_fallback_bytes
    state.floor_bytes = min(cap, max(state.floor_bytes * 2, protect))
    state.calm_streak = 0


def decay_floor_after_calm(state: PressureState, params: PressureParams) -> None:
    """DecayFloorAfterCalm (3959): after 6 calm polls, 64 MiB per poll back toward the base."""
    state.calm_streak += 1
    if state.calm_streak >= params.floor_decay_after_calm_polls and state.floor_bytes > params.floor_base_bytes:
        state.floor_bytes = max(params.floor_base_bytes, state.floor_bytes - params.floor_decay_bytes)


def gradual_tick(state: PressureState, params: PressureParams, *, psi_some_avg10: float | None,
                 refault_file_pages: int | None, cache_bytes: int | None, interval_idle: bool,
                 time_scale: float = 1.0) -> PressureTick:
    """RunGradualTick (4029) up to the write: how many bytes to ask memory.reclaim for (0 = none).

    Pure: updates `state`, returns the reasoning. `psi_some_avg10` None = PSI unavailable;
    `refault_file_pages` None = the counter is unavailable (no brake); `cache_bytes` None = meminfo
    unreadable (no reclaim; the floor doubles on a brake).
    """
    if refault_file_pages is not None and state.previous_refaults is not None:
        delta = max(0, refault_file_pages - state.previous_refaults)
    else:
        delta = 0
    if refault_file_pages is not None:
        state.previous_refaults = refault_file_pages
    brake = delta >= refault_brake_pages(params, time_scale)
    if psi_some_avg10 is None:
        if brake:
            raise_floor_to_protect(state, params, cache_bytes)
            zone, may = "no psi: refault brake", False
        elif interval_idle:
            decay_floor_after_calm(state, params)
            zone, may = "no psi: cpu idle", True
        else:
            state.calm_streak = 0
            zone, may = "no psi: cpu busy", False
    elif psi_some_avg10 >= params.backoff_at_avg10 or brake:
        raise_floor_to_protect(state, params, cache_bytes)
        zone, may = ("backoff: refaults" if brake and psi_some_avg10 < params.backoff_at_avg10
                     else "backoff: pressure"), False
    elif psi_some_avg10 >= params.reclaim_below_avg10:
        state.calm_streak = 0
        zone, may = "dead zone", False
    else:
        decay_floor_after_calm(state, params)
        zone, may = "calm", True
    reclaim = 0
    if may and cache_bytes is not None:
        excess = cache_bytes - state.floor_bytes
        if excess > params.hysteresis_bytes:
            reclaim = excess if interval_idle else min(excess, params.busy_step_bytes)
    state.last_refault_delta = delta
    state.last_zone = zone
    return PressureTick(zone, psi_some_avg10, delta, brake, interval_idle, state.floor_bytes, reclaim)


def compaction_due(state: PressureState, params: PressureParams, free_bytes: int | None) -> bool:
    """RunCompactionTick's free-growth test (4181): free grew by 256 MiB since the last compaction.

    Also follows free memory down (the mark only falls here; a compaction that worked raises it,
    see `compacted`).
    """
    if free_bytes is None:
        return False
    due = free_bytes > state.free_at_last_compaction + params.compact_free_growth_bytes
    if free_bytes < state.free_at_last_compaction:
        state.free_at_last_compaction = free_bytes
    return due


def compacted(state: PressureState, free_bytes: int | None) -> None:
    """A compaction worked: the free-memory mark moves to what was free at the poll."""
    if free_bytes is not None:
        state.free_at_last_compaction = free_bytes
