"""WSL's `autoMemoryReclaim` policies as a pure, time-compressible decision engine.

    policy = Policy(mode="gradual", variant="released", time_scale=0.01)   # 10 min -> 6 s
    actions = policy.decide(observation)        # pure: no I/O; returns what WSL would do now
    rows = simulate(policy, ...)                # the same decisions on a model guest, on paper

`autoreclaim_daemon.Daemon` runs a Policy against this guest (observes /proc, turns the knobs).

WSL runs this logic inside the guest, in mini_init's memory-reduction thread. Two versions are
reproduced, each from its source (a number that the issue text states differently is noted here):

`variant="released"`: microsoft/WSL, src/linux/init/main.cpp, `ConfigureMemoryReduction()` (commit
02cd979fe9a43c12fa76133feb75bf334b98fbce, lines ~268-446 of the stored text), with its helpers
`GetUserCpuTime()` (the first field of the aggregate `cpu` line of /proc/stat: user jiffies, nice
excluded) and `GetMemoryInUse()` (`sysinfo()` totalram - freeram, i.e. MemTotal - MemFree: page cache
counts as used).
  - Every 30 s (`SleepDuration`, after one initial 30 s sleep) read user CPU.
  - Idle = user CPU in the last 30 s under `ReclaimThreshold` (0.5 % of all CPUs' time) AND user CPU
    over the last L polls under (L+1) x that threshold; L = 20 polls (10 min) for dropCache, 6 (3 min)
    for gradual (`ReclaimWindow[20]`, `ReclaimWindowLength = 6`). A full window is needed first.
  - dropCache: once per idle period write "1" to /proc/sys/vm/drop_caches; a busy poll re-arms it.
  - gradual: while idle, every poll write 3 % of used memory (used - used*0.97) to
    /sys/fs/cgroup/memory.reclaim while used > 1 GiB (`MemoryLow`); stop once the target falls under
    1 GiB until used exceeds 1.1 GiB (`MemoryHigh`) again or a busy poll re-arms it. No
    `swappiness=0`, so this write may also swap anonymous memory where swap exists. Falls back to
    dropCache when memory.reclaim is not writable.
  - Compaction (every mode, `disabled` included, whenever page_reporting_order != 0): when user CPU
    since the last probe exceeds `IdleThreshold` = get_nprocs() jiffies (0.01 CPU-s per CPU at
    CLK_TCK 100), sleep 1 s; if user CPU in that second stayed under the same threshold (1 % of all
    CPUs), write "1" to /proc/sys/vm/compact_memory. So it compacts after activity, once quiet: it is
    NOT gated on the 3/10-minute window.

`variant="newer"`: the merged code, microsoft/WSL src/linux/init/util.cpp at commit
3e27a6a50177ce4e32e72f7b957aef5db5768062 (master, 2026-08-07): `StartMemoryReductionThread()` (line
3783) and `CpuIdleTracker` (line 3536), as merged in #41096 (49f841c) with the follow-up #41171
(88f76dd: drop_caches writes 3, the /proc/stat regex). #41104 (c40ea60) touches util.cpp only at line
3519 (CreateChildProcess' exec result), not this thread.
  - `Disabled`: no thread at all (line 3809); free page reporting still hands back what processes free.
  - Every 10 s (`c_pollInterval`, 3837; the loop sleeps first, 3870; the first reading is a baseline)
    read the aggregate cpu line: busy = user + nice + system + irq + softirq + steal, idle = idle +
    iowait (`ReadCpuBusyIdle`, 3658-3659).
  - `CpuIdleTracker::AddSample`: a ring of the last 12 intervals (`c_windowIntervals`, 3581, "2
    minutes"); IntervalIdle = this interval, WindowIdle = the ring is full and its SUM is idle; idle iff
    `Total == 0 || Busy * 1000 <= Total * 5` (`c_busyThresholdPerMille`, 3578/3582: <= 0.5 %).
  - Not WindowIdle: re-arm (droppedThisIdlePeriod = compactedThisIdlePeriod = false), nothing else
    (3907). WindowIdle but not IntervalIdle: skip this poll only, "a short burst blocks this tick but
    does not discard the preceding idle history" (3915).
  - gradual (`useReclaim`, unless `access(/sys/fs/cgroup/memory.reclaim, W_OK)` fails: then it falls
    back to drop_caches, 3831): cache = Active(file) + Inactive(file) + SReclaimable
    (`GetReclaimableCacheBytes`); if cache > 128 MiB (`c_floorBytes`, 3840) write
    `min(cache - 128 MiB, step)` + " swappiness=0" (3772) to the ROOT cgroup's memory.reclaim
    (`RECLAIM_PATH`, 3532, CGROUP_MOUNTPOINT "/sys/fs/cgroup" util.h:45); step = totalram / 32 (3849)
    clamped to 256 MiB..1 GiB (`c_minReclaimBytes`/`c_maxReclaimBytes`, 3843-3844). EAGAIN counts as
    success (3774).
  - dropCache: "3\n" to drop_caches (3949) once per idle period (set only when the write worked).
  - compact_memory "if (!compactedThisIdlePeriod || reclaimed)" (3961): once per idle period, and
    after every reclaim that worked.
  - After any memory operation that worked, /proc/stat is re-read so that work does not count as
    busy in the next interval (3971-3978).
  Page reporting order (not this thread): WslCoreVm.cpp:1452/1456 chooses 5 (128 KiB) on builds with
  the VID partition-teardown fix (Germanium; Cobalt UBR >= 2360, Iron >= 1970, Vibranium 22H2 >= 3393),
  else 9 (2 MiB); helpers.cpp:796 puts it on the kernel command line as
  `page_reporting.page_reporting_order` (#40374 2cfdd58, #40380 ce674a6).

The released idle test is user CPU only (nice, system and iowait do not count), its window is L polls
plus a per-poll test, and compaction is not "when idle" in the window's sense but "after activity, when
the next second is quiet", even with `disabled`.

Where memory.reclaim is missing, `Policy(memory_reclaim_available=False)` reproduces WSL's own fallback
(gradual behaves as dropCache); how the daemon stands in for memory.reclaim on this kit's cgroup v1
guest is in autoreclaim_daemon.py.

`variant="pressure"`: the PROPOSED gradual mode of the closed, unmerged series microsoft/WSL
#40777-#40780 (reclaim driven by PSI `some avg10` with a floor that adapts to file refaults), labelled
"proposed, not merged in WSL" wherever it appears; its source lines and the choices the model makes
are in pressure_policy.py. Mode `gradual` (or `disabled`) only.

Time compression: every period (poll, windows as poll counts, the compaction probe) is multiplied by
`time_scale`; CPU thresholds are shares of CPU time, so they need no scaling.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable, Union

from ..units import GIB, MIB
from . import pressure_policy as pp

AUTO_MEMORY_RECLAIM_MODES = ("disabled", "gradual", "dropCache")  # the .wslconfig values
VARIANTS = ("released", "newer")                 # the variants WSL ships (lab 04 iterates over these)
ALL_VARIANTS = VARIANTS + ("pressure",)          # pressure: proposed, NOT merged in WSL (#40778-#40779)

# --- released: microsoft/WSL src/linux/init/main.cpp ConfigureMemoryReduction() ---
RELEASED_POLL_S = 30.0                  # SleepDuration
RELEASED_IDLE_USER_SHARE = 0.005        # ReclaimThreshold: 0.5 % of all CPUs over one poll
RELEASED_WINDOW_POLLS = {"dropCache": 20, "gradual": 6}   # 10 min / 3 min
RELEASED_MEMORY_LOW_BYTES = GIB         # MemoryLow
RELEASED_MEMORY_HIGH_BYTES = int(1.1 * GIB)               # MemoryHigh
RELEASED_GRADUAL_KEEP = 0.97            # MemoryTargetSize = MemorySize * 0.97
RELEASED_COMPACT_ACTIVITY_CPU_S = 0.01  # IdleThreshold = nprocs jiffies at CLK_TCK 100, per CPU
RELEASED_COMPACT_PROBE_S = 1.0          # sleep_for(1 s) between the two readings
RELEASED_COMPACT_QUIET_USER_SHARE = 0.01  # nprocs jiffies in 1 s = 1 % of all CPUs

# --- newer: microsoft/WSL PR #41096 (+ benhillis/WSL util.cpp for the constants it leaves open) ---
NEWER_POLL_S = 10.0                     # c_pollInterval
NEWER_IDLE_BUSY_SHARE = 0.005           # c_busyThresholdPerMille = 5 (idle iff <= 0.5 %)
NEWER_WINDOW_POLLS = 12                 # CpuIdleTracker::c_windowIntervals ("2 minutes")
NEWER_FLOOR_BYTES = 128 * MIB           # "toward a 128 MB floor"
NEWER_STEP_MIN_BYTES = 256 * MIB        # "RAM-scaled 256 MB to 1 GB steps"
NEWER_STEP_MAX_BYTES = GIB
NEWER_STEP_RAM_DIVISOR = 32             # RAM/32 (clamped), per the issue; the PR says "RAM-scaled"

DROP_LEVEL = {"released": 1, "newer": 3, "pressure": 1}   # "1\n" in main.cpp; "3\n" in util.cpp since #41171; the series: "1\n"
DEFAULT_DROP_LEVEL = DROP_LEVEL["released"]
_EPS_S = 1e-9       # the released test is strict (main.cpp:382-383, integer jiffies); floats need a margin
PAGE_BYTES = 4096   # the model guest's page (refault counts are pages, as in /proc/vmstat)


# ----------------------------------------------------------------------------- observations

@dataclass(frozen=True)
class Observation:
    """What the policy sees at one poll. Fractions are shares of all CPUs' time over the last poll.

    `user_cpu_fraction` drives the released variant, `busy_cpu_fraction` (everything but idle and
    iowait) the newer one; None means "no interval yet" (the first reading). `mem_free_bytes` gives the
    released variant's used = total - free; `reclaimable_cache_bytes` (Active(file) + Inactive(file) +
    SReclaimable) the newer one's. `probe_user_cpu_fraction` is the released compaction probe (user CPU
    over the ~1 s after the poll); where absent, the poll's own fraction stands in.
    `psi_some_avg10` and `refault_file_pages` drive the pressure variant only (None = unavailable).
    """

    now_s: float
    mem_total_bytes: int
    mem_free_bytes: int
    user_cpu_fraction: float | None = None
    busy_cpu_fraction: float | None = None
    reclaimable_cache_bytes: int = 0
    cached_bytes: int = 0
    probe_user_cpu_fraction: float | None = None
    psi_some_avg10: float | None = None          # /proc/pressure/memory "some avg10" (percent); None: no PSI
    refault_file_pages: int | None = None        # /proc/vmstat workingset_refault_file (cumulative)

    @property
    def used_bytes(self) -> int:
        """WSL's released GetMemoryInUse(): totalram - freeram (page cache counts as used)."""
        return self.mem_total_bytes - self.mem_free_bytes


# ----------------------------------------------------------------------------- actions

@dataclass(frozen=True)
class Reclaim:
    """Write `bytes` to cgroup v2 memory.reclaim (with `swappiness=0` where `file_only`)."""

    bytes: int
    file_only: bool = False
    reason: str = ""
    kind = "reclaim"

    def detail(self) -> str:
        return f"{self.bytes} bytes" + (" swappiness=0" if self.file_only else "")


@dataclass(frozen=True)
class DropCaches:
    """Write `level` (1 page cache, 2 slab, 3 both) to /proc/sys/vm/drop_caches."""

    level: int = DEFAULT_DROP_LEVEL
    reason: str = ""
    kind = "drop_caches"

    def detail(self) -> str:
        return str(self.level)


@dataclass(frozen=True)
class Compact:
    """Write 1 to /proc/sys/vm/compact_memory.

    `after_reclaim`: due only because the action before it reclaimed (newer variant, already compacted
    this idle period); the driver skips it when that reclaim failed, as WSL's `|| reclaimed` does.
    """

    reason: str = ""
    after_reclaim: bool = False
    kind = "compact_memory"

    def detail(self) -> str:
        return self.reason


Action = Union[Reclaim, DropCaches, Compact]


@dataclass(frozen=True)
class Tick:
    """What one decide() call concluded, besides the actions (for charts, events and tests)."""

    now_s: float
    idle: bool            # the idle window is satisfied at this poll
    entered_idle: bool    # ... and was not at the previous poll
    actions: tuple[Action, ...]


# ----------------------------------------------------------------------------- pure helpers

def newer_step_bytes(mem_total_bytes: int) -> int:
    """One gradual step of the newer variant: RAM/32 clamped to 256 MiB..1 GiB."""
    return min(max(mem_total_bytes // NEWER_STEP_RAM_DIVISOR, NEWER_STEP_MIN_BYTES), NEWER_STEP_MAX_BYTES)


def released_gradual_bytes(used_bytes: int) -> int:
    """What the released gradual mode writes: used - used*0.97, truncated like size_t()."""
    return int(used_bytes - used_bytes * RELEASED_GRADUAL_KEEP)


def _check_fraction(name: str, value: float | None) -> None:
    if value is not None and not (0.0 <= value <= 1.0 + 1e-9):
        raise ValueError(f"Observation.{name} = {value!r}: expected a share of CPU time between 0 and 1")


# ----------------------------------------------------------------------------- the policy

class Policy:
    """One `autoMemoryReclaim` setting as a deterministic state machine: decide(obs) -> actions.

    mode: "disabled" | "gradual" | "dropCache" (the .wslconfig values; "dropcache" is accepted too).
    variant: "released" | "newer" (see the module docstring for the source of each).
    time_scale: multiplies every period; 0.01 turns the released 10-minute window into 6 s.
    drop_level: what a DropCaches action writes (default: the variant's, 1 released, 3 newer).
    memory_reclaim_available: False reproduces WSL's fallback (gradual behaves as dropCache).
    page_reporting_order: the released thread compacts only when this is non-zero (WSL sends 9 on x64).
    idle_share: override the 0.5 % idle threshold (e.g. where the lab's own sampler is noisier); 1 turns
        the CPU gate off (every interval counts as idle), for a shared machine where others' work never
        lets busy CPU fall near 0.5 %: then the windows' timing alone decides, and callers must say so.
    """

    def __init__(self, mode: str = "gradual", variant: str = "released", time_scale: float = 1.0, *,
                 drop_level: int | None = None, memory_reclaim_available: bool = True,
                 page_reporting_order: int = 9, idle_share: float | None = None,
                 pressure: "pp.PressureParams | None" = None):
        if isinstance(mode, str) and mode.lower() == "dropcache":
            mode = "dropCache"
        if mode not in AUTO_MEMORY_RECLAIM_MODES:
            raise ValueError(f"mode {mode!r} is not one of {', '.join(AUTO_MEMORY_RECLAIM_MODES)} "
                             f"(the .wslconfig autoMemoryReclaim values)")
        if variant not in ALL_VARIANTS:
            raise ValueError(f"variant {variant!r} is not one of {', '.join(ALL_VARIANTS)}")
        if variant == "pressure":
            if mode == "dropCache":
                raise ValueError("variant 'pressure' (proposed, not merged in WSL) models the series' gradual mode "
                                 "only; use mode='gradual' (or variant='newer' for dropCache)")
            if not memory_reclaim_available:
                raise ValueError("variant 'pressure' needs memory.reclaim: the series falls back to dropCache "
                                 "without it, which the kit does not model; use variant='newer' to show that fallback")
            if pressure is not None and not isinstance(pressure, pp.PressureParams):
                raise ValueError(f"pressure={pressure!r}: expected a pressure_policy.PressureParams")
        elif pressure is not None:
            raise ValueError(f"pressure parameters apply to variant 'pressure' only, not {variant!r}")
        if not (isinstance(time_scale, (int, float)) and time_scale > 0):
            raise ValueError(f"time_scale {time_scale!r} must be a positive number (1.0 = WSL's real timing)")
        if drop_level is None and variant in DROP_LEVEL:
            drop_level = DROP_LEVEL[variant]
        if drop_level not in (1, 2, 3):
            raise ValueError(f"drop_level {drop_level!r} must be 1, 2 or 3")
        if idle_share is not None and not (0 < idle_share <= 1):
            raise ValueError(f"idle_share {idle_share!r} must be a share of CPU time above 0 and at most 1 "
                             "(1 turns the CPU gate off: only the windows' timing decides)")
        self.mode = mode
        self.variant = variant
        self.time_scale = float(time_scale)
        self.drop_level = drop_level
        self.memory_reclaim_available = memory_reclaim_available
        self.page_reporting_order = page_reporting_order
        self.pressure_params = (pressure or pp.PressureParams()) if variant == "pressure" else None
        default_share = {"released": RELEASED_IDLE_USER_SHARE, "newer": NEWER_IDLE_BUSY_SHARE,
                         "pressure": pp.PRESSURE_IDLE_BUSY_SHARE}[variant]
        self.idle_share = default_share if idle_share is None else float(idle_share)
        # WSL falls back to drop_caches when memory.reclaim is not writable (both variants).
        self.effective_mode = "dropCache" if (mode == "gradual" and not memory_reclaim_available) else mode
        self.reset()

    # -- timing (all scaled) --
    @property
    def poll_interval_s(self) -> float:
        base = {"released": RELEASED_POLL_S, "newer": NEWER_POLL_S, "pressure": pp.PRESSURE_POLL_S}[self.variant]
        return base * self.time_scale

    @property
    def window_polls(self) -> int:
        """How many consecutive quiet polls make 'idle' (0 where the mode has no idle window)."""
        if self.effective_mode == "disabled":
            return 0
        if self.variant == "released":
            return RELEASED_WINDOW_POLLS[self.effective_mode]
        if self.variant == "pressure":
            return 1   # no window: one interval decides the step size (and, without PSI, the gate)
        return NEWER_WINDOW_POLLS

    @property
    def idle_window_s(self) -> float:
        return self.window_polls * self.poll_interval_s

    @property
    def compact_probe_s(self) -> float:
        """The released compaction probe (1 s); 0 where the variant has none.

        Not time-compressed: it is a measurement window, not a wait. /proc/stat counts in 10 ms
        jiffies, so a 50 ms probe reads 0 % almost always and would call every poll "quiet". It is
        capped at two thirds of a poll so the probe still fits inside a compressed poll.
        """
        if not self._released_compacts:
            return 0.0
        return min(RELEASED_COMPACT_PROBE_S, self.poll_interval_s * 2 / 3)

    @property
    def exclude_own_work(self) -> bool:
        """Newer variant: the driver re-reads CPU after acting so its own work is not counted.

        The pressure series does not (its thread runs at SCHED_IDLE instead, util.cpp 4280)."""
        return self.variant == "newer"

    @property
    def runs_thread(self) -> bool:
        """Whether WSL would run the reduction thread at all for this setting."""
        if self.variant == "released":
            return self.mode != "disabled" or self.page_reporting_order != 0
        return self.mode != "disabled"   # newer (util.cpp 3809) and pressure (4e60f356b, 4266)

    @property
    def _released_compacts(self) -> bool:
        return self.variant == "released" and self.page_reporting_order != 0

    def describe(self) -> str:
        """One paragraph in plain words, with this policy's (scaled) numbers."""
        s = self.time_scale
        scaled = "" if s == 1 else f" (time-compressed x{s:g})"
        if self.variant == "pressure":
            if self.mode == "disabled":
                return f"pressure variant ({pp.LABEL}){scaled}: disabled, no reduction thread at all"
            q = self.pressure_params
            parts = [f"pressure variant, {pp.LABEL}{scaled}: poll every {self.poll_interval_s:g} s",
                     f"PSI some avg10 under {q.reclaim_below_avg10:g} % -> memory.reclaim of the cache above an "
                     f"adaptive floor (from {q.floor_base_bytes // MIB} MiB), by at most {q.busy_step_bytes // MIB} MiB "
                     "in a busy interval and all of it in an idle one, with NO CPU-idle gate",
                     f"avg10 at or above {q.backoff_at_avg10:g} % or {q.refault_backoff_pages} file refaults per "
                     "10 s -> no reclaim, floor raised to protect the cache in use",
                     f"after {q.floor_decay_after_calm_polls} calm polls the floor falls "
                     f"{q.floor_decay_bytes // MIB} MiB per poll",
                     "without PSI: reclaim only in CPU-idle intervals (busy <= 0.5 %)"]
            return "; ".join(parts) + "."
        if self.variant == "released":
            parts = [f"released WSL logic{scaled}: poll every {self.poll_interval_s:g} s"]
            if self.effective_mode != "disabled":
                parts.append(f"idle = user CPU under {self.idle_share:.1%} over the last poll and over "
                             f"the last {self.window_polls} polls ({self.idle_window_s:g} s)")
            if self.effective_mode == "dropCache":
                parts.append(f"then drop_caches={self.drop_level} once per idle period")
            elif self.effective_mode == "gradual":
                parts.append("then every idle poll memory.reclaim 3 % of used (MemTotal - MemFree) "
                             "while used > 1 GiB")
            if self._released_compacts:
                parts.append(f"compact_memory after activity when the next {self.compact_probe_s:g} s "
                             "is quiet (user CPU < 1 %), in every mode")
        else:
            if self.mode == "disabled":
                return f"newer WSL logic{scaled}: disabled, no reduction thread at all"
            parts = [f"newer WSL logic{scaled}: poll every {self.poll_interval_s:g} s",
                     f"idle = busy CPU <= {self.idle_share:.1%} summed over the last {self.window_polls} polls "
                     f"({self.idle_window_s:g} s) and in the current poll (a burst skips the poll, the window "
                     "stays)", "compact_memory once per idle period and after each reclaim"]
            if self.effective_mode == "dropCache":
                parts.append(f"drop_caches={self.drop_level} once per idle period")
            else:
                parts.append("memory.reclaim (swappiness=0) of min(cache above 128 MiB, RAM/32 clamped "
                             "to 256 MiB..1 GiB) every idle poll")
        if self.effective_mode != self.mode:
            parts.append("gradual fell back to dropCache: memory.reclaim is not available")
        return "; ".join(parts) + "."

    # -- state --
    def reset(self) -> None:
        self._polls = 0
        self._last_now_s: float | None = None
        self._idle = False
        self.last_tick: Tick | None = None
        # released
        self._user_cpu_s: deque[float] = deque()     # cumulative user CPU-share-seconds per poll
        self._user_cum_s = 0.0
        self._reclaim_idling = False                  # ReclaimIdling
        self._activity_since_probe_s = float("inf")   # Stop = 0 at start: the first poll probes
        # newer
        self._window: deque[tuple[float, float]] = deque()   # (busy, total) CPU-seconds per interval
        self._interval_idle = False
        self._dropped_this_idle = False
        self._compacted_this_idle = False
        # pressure (proposed, not merged)
        q = self.pressure_params
        self._pressure = pp.PressureState(floor_bytes=q.floor_base_bytes) if q is not None else None
        self._pressure_free_at_poll: int | None = None
        self.last_pressure: pp.PressureTick | None = None

    @property
    def floor_bytes(self) -> int | None:
        """The pressure variant's adaptive floor now (None for the other variants)."""
        return self._pressure.floor_bytes if self._pressure is not None else None

    @property
    def idle(self) -> bool:
        return self._idle

    def decide(self, obs: Observation) -> list[Action]:
        """The actions WSL's thread would take at this poll (in order). Updates the policy's state."""
        _check_fraction("user_cpu_fraction", obs.user_cpu_fraction)
        _check_fraction("busy_cpu_fraction", obs.busy_cpu_fraction)
        _check_fraction("probe_user_cpu_fraction", obs.probe_user_cpu_fraction)
        if obs.psi_some_avg10 is not None and not (0.0 <= obs.psi_some_avg10 <= 100.0):
            raise ValueError(f"Observation.psi_some_avg10 = {obs.psi_some_avg10!r}: expected a percentage "
                             "between 0 and 100 (the avg10 field of /proc/pressure/memory's 'some' line)")
        if obs.refault_file_pages is not None and obs.refault_file_pages < 0:
            raise ValueError(f"Observation.refault_file_pages = {obs.refault_file_pages!r}: expected the "
                             "cumulative workingset_refault_file counter (0 or more)")
        if obs.reclaimable_cache_bytes < 0:
            raise ValueError(f"Observation.reclaimable_cache_bytes = {obs.reclaimable_cache_bytes!r}: expected 0 or more")
        if obs.mem_total_bytes <= 0 or obs.mem_free_bytes < 0:
            raise ValueError(f"Observation memory sizes look wrong: total {obs.mem_total_bytes}, free {obs.mem_free_bytes}")
        dt_s = self.poll_interval_s if self._last_now_s is None else max(0.0, obs.now_s - self._last_now_s)
        self._last_now_s = obs.now_s
        self._polls += 1
        was_idle = self._idle
        if self.variant == "released":
            actions = self._decide_released(obs, dt_s)
        elif self.variant == "pressure":
            actions = self._decide_pressure(obs, dt_s)
        else:
            actions = self._decide_newer(obs, dt_s)
        self.last_tick = Tick(obs.now_s, self._idle, self._idle and not was_idle, tuple(actions))
        return actions

    # -- released --
    def _decide_released(self, obs: Observation, dt_s: float) -> list[Action]:
        actions: list[Action] = []
        user = obs.user_cpu_fraction
        used_cpu_s = (user if user is not None else 1.0) * dt_s   # no reading yet: count as busy
        self._user_cum_s += used_cpu_s
        if self.effective_mode != "disabled":
            actions += self._released_reclaim(obs, user is not None)
        if self._released_compacts:
            self._activity_since_probe_s += used_cpu_s
            if self._activity_since_probe_s > RELEASED_COMPACT_ACTIVITY_CPU_S * self.time_scale:
                self._activity_since_probe_s = 0.0   # Stop = GetUserCpuTime() after the probe
                probe = obs.probe_user_cpu_fraction if obs.probe_user_cpu_fraction is not None else user
                if probe is not None and probe < RELEASED_COMPACT_QUIET_USER_SHARE:
                    actions.append(Compact(reason="quiet after activity"))
        return actions

    def _released_reclaim(self, obs: Observation, have_reading: bool) -> list[Action]:
        window = self.window_polls
        threshold_s = self.idle_share * self.poll_interval_s      # ReclaimThreshold, as CPU-share-seconds
        history = self._user_cpu_s
        gate_off = self.idle_share >= 1
        idle = (have_reading and len(history) >= window
                and (gate_off or (self._user_cum_s - history[-window] < threshold_s * (window + 1) - _EPS_S
                                  and self._user_cum_s - history[-1] < threshold_s - _EPS_S)))
        history.append(self._user_cum_s)
        while len(history) > window:
            history.popleft()
        self._idle = idle
        if not idle:
            self._reclaim_idling = False
            return []
        if self.effective_mode == "dropCache":
            if self._reclaim_idling:
                return []
            self._reclaim_idling = True
            return [DropCaches(self.drop_level, reason=f"idle for {self.idle_window_s:g} s")]
        used = obs.used_bytes
        if used > RELEASED_MEMORY_HIGH_BYTES:
            self._reclaim_idling = False
        if self._reclaim_idling or used <= RELEASED_MEMORY_LOW_BYTES:
            return []
        if used * RELEASED_GRADUAL_KEEP < RELEASED_MEMORY_LOW_BYTES:
            self._reclaim_idling = True
        return [Reclaim(released_gradual_bytes(used), file_only=False, reason="3 % of used memory")]

    # -- newer --
    def _decide_newer(self, obs: Observation, dt_s: float) -> list[Action]:
        # util.cpp StartMemoryReductionThread (3e27a6a): the first reading is only a baseline, and a
        # counter that went backwards resets the window and re-arms ("resample if it does"); both reach
        # the policy as a missing fraction.
        if self.mode == "disabled":
            return []
        if obs.busy_cpu_fraction is None:
            self._window.clear()
            self._idle = False
            self._dropped_this_idle = False
            self._compacted_this_idle = False
            return []
        # CpuIdleTracker::AddSample: busy and total jiffies of this interval into a 12-interval ring.
        self._window.append((obs.busy_cpu_fraction * dt_s, dt_s))
        while len(self._window) > self.window_polls:
            self._window.popleft()
        interval_idle = self._is_idle(obs.busy_cpu_fraction * dt_s, dt_s)
        window_idle = (len(self._window) == self.window_polls
                       and self._is_idle(sum(b for b, _ in self._window), sum(t for _, t in self._window)))
        self._interval_idle = interval_idle
        self._idle = window_idle
        if not window_idle:   # a non-idle window re-arms the once-per-period actions
            self._dropped_this_idle = False
            self._compacted_this_idle = False
            return []
        if not interval_idle:
            # "A short burst blocks this tick but does not discard the preceding idle history."
            return []
        actions: list[Action] = []
        if self.effective_mode == "gradual":
            cache = obs.reclaimable_cache_bytes
            if cache > NEWER_FLOOR_BYTES:
                step = newer_step_bytes(obs.mem_total_bytes)
                actions.append(Reclaim(min(cache - NEWER_FLOOR_BYTES, step), file_only=True,
                                       reason="cache above the 128 MiB floor"))
        elif not self._dropped_this_idle:
            self._dropped_this_idle = True   # undone by outcome() if the write fails
            actions.append(DropCaches(self.drop_level, reason=f"idle for {self.idle_window_s:g} s"))
        # "if (!compactedThisIdlePeriod || reclaimed)": after a reclaim the compaction depends on it
        # having worked (EAGAIN counts as worked), which the driver knows, hence `after_reclaim`.
        if actions or not self._compacted_this_idle:
            after = bool(actions) and self._compacted_this_idle
            self._compacted_this_idle = True
            actions.append(Compact(reason="after reclaim" if actions else "entering idle", after_reclaim=after))
        return actions

    # -- pressure (proposed, not merged in WSL: PR #40779 head 4e60f356b, util.cpp) --
    def _decide_pressure(self, obs: Observation, dt_s: float) -> list[Action]:
        if self.mode == "disabled":
            return []
        q, st = self.pressure_params, self._pressure
        if st.floor_max_bytes is None:   # set once from RAM when the thread starts (4301-4305)
            st.floor_max_bytes = q.floor_max_bytes(obs.mem_total_bytes)
        if obs.busy_cpu_fraction is None:
            # The first reading is a baseline for CPU and refaults (4322-4329).
            if obs.refault_file_pages is not None:
                st.previous_refaults = obs.refault_file_pages
            self._idle = False
            self.last_pressure = None
            return []
        interval_idle = self._is_idle(obs.busy_cpu_fraction * dt_s, dt_s)   # 4336
        self._idle = interval_idle
        tick = pp.gradual_tick(st, q, psi_some_avg10=obs.psi_some_avg10,
                               refault_file_pages=obs.refault_file_pages,
                               cache_bytes=obs.reclaimable_cache_bytes, interval_idle=interval_idle,
                               time_scale=self.time_scale)
        self.last_pressure = tick
        actions: list[Action] = []
        if tick.reclaim_bytes > 0:
            actions.append(Reclaim(tick.reclaim_bytes, file_only=False,
                                   reason=f"{tick.zone}: cache above the {st.floor_bytes // MIB} MiB floor "
                                          f"({pp.LABEL})"))
        self._pressure_free_at_poll = obs.mem_free_bytes
        if pp.compaction_due(st, q, obs.mem_free_bytes):
            actions.append(Compact(reason="free memory grew by 256 MiB"))
        elif actions:
            actions.append(Compact(reason="after reclaim", after_reclaim=True))
        return actions

    def note_refaults_after_reclaim(self, refault_file_pages: int | None) -> None:
        """Pressure variant: the refault counter read right after a reclaim write (util.cpp 4124-4128),
        so the next poll's delta is charged to this reclaim. A no-op for the other variants or None."""
        if self._pressure is not None and refault_file_pages is not None and refault_file_pages >= 0:
            self._pressure.previous_refaults = refault_file_pages

    def _is_idle(self, busy: float, total: float) -> bool:
        """CpuIdleTracker::IsIdle: Total == 0 || Busy * 1000 <= Total * 5 (0.5 %, inclusive)."""
        return total <= 0 or busy <= total * self.idle_share + 1e-12

    def outcome(self, action: Action, ok: bool) -> None:
        """Tell the policy whether an action's write worked (the driver calls this after each apply).

        WSL sets droppedThisIdlePeriod / compactedThisIdlePeriod only when the write returned 0, so a
        failed drop or compaction is tried again at the next idle poll.
        """
        if self.variant == "pressure":
            if ok and isinstance(action, Compact):
                pp.compacted(self._pressure, self._pressure_free_at_poll)
            return
        if self.variant != "newer" or ok:
            return
        if isinstance(action, DropCaches):
            self._dropped_this_idle = False
        elif isinstance(action, Compact) and not action.after_reclaim:
            self._compacted_this_idle = False


# ----------------------------------------------------------------------------- a paper model

def simulate(policy: Policy, *, duration_s: float, busy_until_s: float, mem_total_bytes: int,
             anon_bytes: int, cache_bytes: int, pinned_cache_bytes: int = 64 * MIB,
             busy_share: float = 0.20, idle_share: float = 0.001, working_set_bytes: int = 0,
             psi_some_avg10: "float | None | Callable[[float], float | None]" = 0.0) -> list[dict]:
    """Run `policy` on a model guest (no I/O): busy until `busy_until_s`, then idle.

    The model: reclaimable cache (file pages + reclaimable slab) is `cache_bytes`, of which
    `pinned_cache_bytes` never goes (mapped, in use); anonymous memory stays (no swap). A Reclaim
    frees up to its bytes of cache; DropCaches frees all unpinned cache; Compact frees nothing.
    Returns one dict per poll: t_s, cache_bytes, used_bytes (MemTotal - MemFree), idle, actions.
    It illustrates the decisions; a real kernel frees less than asked and keeps more cache.

    For the pressure variant: `working_set_bytes` of the cache is in use; whatever a reclaim takes
    below it is read back during the next poll (the cache grows back, and each page counts as one file
    refault in the cumulative counter the policy sees). `psi_some_avg10` is the PSI the policy sees at
    each poll (a number, None for "no PSI", or a function of t_s). Rows then also carry floor_bytes,
    zone and refault_delta_pages.
    """
    if anon_bytes + cache_bytes > mem_total_bytes:
        raise ValueError("anon_bytes + cache_bytes exceed mem_total_bytes")
    if not (0 <= working_set_bytes <= cache_bytes):
        raise ValueError("working_set_bytes must be between 0 and cache_bytes (the cache the workload uses)")
    policy.reset()
    rows = []
    cache = cache_bytes
    refaults = 0
    t = 0.0
    while t <= duration_s + 1e-9:
        # the share of the interval that ends now: busy if any of it fell before busy_until_s
        share = busy_share if t - policy.poll_interval_s < busy_until_s else idle_share
        if cache < working_set_bytes:       # the workload reads its evicted pages back: refaults
            refaults += (working_set_bytes - cache) // PAGE_BYTES
            cache = working_set_bytes
        free = mem_total_bytes - anon_bytes - cache
        psi = psi_some_avg10(t) if callable(psi_some_avg10) else psi_some_avg10
        obs = Observation(now_s=t, mem_total_bytes=mem_total_bytes, mem_free_bytes=free,
                          user_cpu_fraction=share if t > 0 else None,
                          busy_cpu_fraction=share if t > 0 else None,
                          reclaimable_cache_bytes=cache, cached_bytes=cache, probe_user_cpu_fraction=share,
                          psi_some_avg10=psi, refault_file_pages=refaults)
        actions = policy.decide(obs)
        for action in actions:
            if isinstance(action, Reclaim):
                cache -= min(action.bytes, max(0, cache - pinned_cache_bytes))
                policy.note_refaults_after_reclaim(refaults)
            elif isinstance(action, DropCaches) and action.level in (1, 3):
                cache = min(cache, pinned_cache_bytes)
            policy.outcome(action, True)       # on paper every write works
        row = {"t_s": t, "cache_bytes": cache, "used_bytes": anon_bytes + cache,
               "idle": policy.idle, "actions": " + ".join(a.kind for a in actions)}
        if policy.variant == "pressure":
            tick = policy.last_pressure
            row.update(floor_bytes=policy.floor_bytes, zone=tick.zone if tick else "baseline",
                       refault_delta_pages=tick.refault_delta_pages if tick else 0)
        rows.append(row)
        t += policy.poll_interval_s
    return rows
