"""`setup()`: a lab's parameters checked, this guest probed and each experiment planned, as a LabContext."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..probe import consent
from ..experiments.registry import MODES  # the one place the modes are named
from ..recording.recording import Recording
from . import banner as _banner, output, params as _params, plan as _plan
from .placement import GUEST_CHOICES, Placement


# Where a lab's experiment runs in the kit's VM, the VM takes the steps the lab tells (lab 05 runs the
# VM's own defaults): lab 02 drops the caches level by level, as its local run does; lab 04's two live
# auto-reclaim watches are time-compressed as its local runs are (time_scale 0: the variant's), sampled at
# 1 Hz (the agent's reads are guest CPU: at 2 Hz a released gradual run here never passed its gate, 1.0 % busy
# in the baseline; the gate now leaves the sampler thread out, wsl/vm_autoreclaim.GATE_EXCLUDES), watch 60 s
# at most (released dropCache's window is 30 s at x0.05) and skip the maps (lab 04 draws none), so both fit
# in a minute or two.
# One boot per lab where it can: lab 04's runs share the context's VmSession (vm/session.py: a clean start in
# the same guest), and so do lab 05's reporting-on runs (setup(one_guest=True); its reporting-off runs boot
# their own: vm/session.py `reusable` says why). Labs 01 and 03 boot per experiment: lab 01's refault measures a first touch of memory the
# host has never backed, which a guest that has just run calloc-reclaim no longer has (the host keeps ~6 % of
# what it touched, and its free lists are warm); lab 03's order-5 and order-9 runs need different kernel
# command lines; lab 02 runs one experiment in the VM.
VM_STEPS: dict[str, dict[str, Any]] = {
    "page-cache": {"drop_levels": "1,2,3"},
    "auto-reclaim": {"time_scale": 0.0, "sample_hz": 1.0, "maps": False, "baseline_s": 3.0, "tail_s": 8.0,
                     "observe_s": 60.0, "size": "512MiB"},
}
# Sizes a lab's VM runs scale down from its local runs' (a notice says so in the banner): filling 1.5 GB of
# cache under TCG took 11-14 s a run (the shipped VM recordings), and lab 04 fills it four times.
VM_SCALED = ("auto-reclaim",)
# The start of the banner's reason where a lab shows a run it could run live from its recording instead
# (ctx.run's recorded_because): lab 04 runs only the chosen version live, to fit its time (issue 27).
RECORDED_BY_LAB = "shown from its recording by the lab, though it could run live: "
VM_SESSIONS = ("auto-reclaim",)   # experiments whose runs in one lab share one booted guest


@dataclass
class LabContext:
    """The validated parameters of one lab and what this guest can do. Made by `setup()`."""

    mode: str
    allow_system_changes: bool
    presenter: bool = False
    sample_hz: float | None = None
    sizes: dict[str, str] = field(default_factory=dict)       # parameter -> text as typed
    size_bytes: dict[str, int] = field(default_factory=dict)  # parameter -> bytes
    guest: Any = None                                          # reclaimlab.probe.guest.GuestInfo, or None
    guest_note: str | None = None                              # why `guest` is None
    plan: dict[str, tuple[str, str]] = field(default_factory=dict)  # experiment -> (live|recorded|refused, why)
    recordings: dict[str, str] = field(default_factory=dict)  # replay key -> recording folder (see setup)
    guest_choice: str = "auto"                                 # the lab's `guest` parameter: auto | local | vm
    placements: dict[str, Placement] = field(default_factory=dict)  # experiment -> where it runs (plan's source)
    mode_source: str = "the lab's mode parameter"               # where `mode` came from (see setup)
    vm_session: Any = None                                     # vm.session.VmSession: the lab's booted VM, if any
    one_guest: bool = False                                    # every VM run may share vm_session (lab 05), not
                                                               # only VM_SESSIONS'

    def close(self) -> None:
        """Stop the lab's kit's VM, if one is booted (also done at kernel exit: VmSession registers atexit)."""
        if self.vm_session is not None:
            self.vm_session.close()

    @property
    def allow_arg(self) -> bool | None:
        """What to pass on as allow_system_changes: True, or None to let the environment decide."""
        return True if self.allow_system_changes else None

    @property
    def changes_allowed(self) -> bool:
        return consent.changes_allowed(self.allow_arg)

    def run(self, name: str, *, show_banner: bool = True, recorded_because: str | None = None,
            **params: Any) -> Recording:
        """Run experiment `name` in this lab's mode and show the banner; returns the Recording.

        recorded_because: where the run would be live, show its recording instead and say this in the banner
        (after RECORDED_BY_LAB); where it would be recorded anyway, the plan's reason stands.

        `sample_hz` from the lab's parameters is passed on where the experiment takes it, and so are
        the lab's `recordings` (replayed where a key matches) and the guest setup() probed (nothing
        probes again). In live mode a guest that cannot run it raises ExperimentRefused with the reason.
        """
        from ..experiments import harness as experiments
        where = self.placements[name].place if name in self.placements else "local"
        if where == "vm":
            params = {**VM_STEPS.get(name, {}), **params}
        if self.sample_hz is not None and "sample_hz" not in params:
            try:
                if "sample_hz" in experiments.get(name).defaults:
                    params["sample_hz"] = self.sample_hz
            except experiments.ExperimentError:
                raise
            except Exception:  # the registry could not load: run() below says why
                pass
        planned = self.plan.get(name, ("", ""))[0]
        mode = self.mode
        if recorded_because and planned == "live" and self.mode != "recorded":
            mode, planned = "recorded", "recorded"
        else:
            recorded_because = None
        shares = where == "vm" and planned == "live" and (name in VM_SESSIONS or self.one_guest)
        if planned == "live" and self.mode != "recorded":
            from ..vm.session import reusable
            booted = shares and self.vm_session is not None and self.vm_session.alive and \
                reusable(name, params.get("reporting", True), self.vm_session.reporting)
            reporting = "" if "reporting" not in params else \
                f" (free page reporting {'on' if params['reporting'] else 'off'})"
            print(f"▶ {name}: running live " + (f"in the kit's own VM{reporting}, already booted by this lab, please wait…"
                                                if where == "vm" and booted else
                                                f"in the kit's own VM{reporting} (it boots first; under software "
                                                "emulation this takes a minute or two), please wait…"
                                                if where == "vm" else "on this machine, please wait…"), flush=True)
        session = None
        if shares:
            if self.vm_session is None:
                from ..vm.session import VmSession
                self.vm_session = VmSession()
            session = self.vm_session
        rec = experiments.run(name, mode=mode, guest=where, allow_system_changes=self.allow_arg, quiet=True,
                              recordings=self.recordings, guest_info=self.guest, vm_session=session, **params)
        if recorded_because and rec.is_recorded and not rec.why_shown.startswith("replaying"):
            rec.why_shown = RECORDED_BY_LAB + recorded_because
        placed = self.placements.get(name)
        if (placed is not None and placed.how == "recorded" and self.guest_choice == "vm" and self.mode != "recorded"
                and rec.is_recorded and not recorded_because and not rec.why_shown.startswith("replaying")):
            # guest='vm': the set-up table's reason (no VM version, or the VM cannot boot), not this machine's blocker
            rec.why_shown = placed.why
        if placed is not None and placed.how == "live" and not rec.is_recorded:
            rec.why_shown = placed.why  # the lab's reason for this place, which is what the banner says
            if where == "vm" and name in VM_SCALED:
                _scaled_notice(rec, experiments.get(name).defaults.get("size"))
        if show_banner:
            _banner.banner(rec, requested=params)
        return rec


def _scaled_notice(rec: Recording, local_size: Any) -> None:
    """Say in the banner that a VM run filled less than the local run does (VM_SCALED)."""
    from ..units import format_size, parse_size
    size = (rec.meta.get("results") or {}).get("size_bytes")
    if not isinstance(size, int) or not local_size or size >= parse_size(str(local_size)):
        return
    notices = rec.meta.get("notices")
    rec.meta["notices"] = notices = list(notices) if isinstance(notices, list) else [notices] if notices else []
    notices.append(f"size scaled down to {format_size(size)} in the kit's VM (a run on this machine uses "
                   f"{local_size}), so that the lab's runs fit in minutes under emulation")


def probe_guest() -> tuple[Any, str | None]:
    """(GuestInfo, None), or (None, why) where the probe is missing or failed: the status never stops a lab."""
    try:
        from ..experiments.verdicts import probe
        from ..vm import live_status
    except ImportError as exc:
        return None, f"the guest probe is not available in this version of reclaimlab ({exc})"
    try:
        return probe(vm_status=live_status), None
    except Exception as exc:  # the status display must never stop a lab
        return None, f"the guest probe failed: {type(exc).__name__}: {exc}"


MODE_ENV = "RECLAIMLAB_MODE"


def _mode_and_source(mode: Any, env: Any) -> tuple[str, str]:
    """(the lab's mode, where it came from): RECLAIMLAB_MODE in the environment, where set, overrides
    the lab's own `mode` (a deployment pins every lab), and the source says so."""
    pinned = env.get(MODE_ENV)
    if pinned:
        if not isinstance(pinned, str) or pinned not in MODES:
            raise _params.LabParameterError(f"{MODE_ENV}={pinned!r} in the environment is not a mode; set it to one "
                                            f"of {', '.join(MODES)}, or unset it to use the lab's mode={mode!r}")
        return pinned, f"{MODE_ENV}={pinned} in the environment (it overrides the lab's mode={mode!r})"
    return _params.check_choice("mode", mode, MODES), "the lab's mode parameter"


def setup(mode: str = "auto", allow_system_changes: bool = False, presenter: bool = False,
          sample_hz: float | None = None, experiments: Iterable[str] = (), guest: str = "auto", *, show: bool = True,
          recordings: dict[str, str] | None = None, one_guest: bool = False, **sizes: Any) -> LabContext:
    """Validate a lab's parameters, switch on offline charts, probe this guest, show the status.

    mode: "auto" (live where possible), "live" or "recorded". A deployment pins every lab's mode with
        RECLAIMLAB_MODE in the environment (Binder images and the browser check set "recorded"): it
        overrides this argument, and the context says so (`mode_source`, shown in the set-up status).
    allow_system_changes: True lets live runs turn system-wide knobs (drop_caches, compaction);
        False leaves it to RECLAIMLAB_ALLOW_SYSTEM_CHANGES. Shared machines are refused anyway.
    presenter: larger chart fonts for a projector.
    sample_hz: samples per second for live runs (None: the experiment's default).
    experiments: the experiments this lab runs, to say for each whether it will be live or recorded.
    guest: where live runs go: "auto" (this machine where it may and sees its host's side, else the kit's
        VM where QEMU and a guest kernel are here, else the recording), "local" (this machine only) or
        "vm" (the kit's VM only; sizes are scaled to the VM, with a notice).
    recordings: {experiment: recording folder} to replay instead of running, e.g. an instructor's own
        `reclaimlab record` from a WSL 2 laptop ({} or None: none). A key may be "vm:<experiment>" for
        the kit's VM and end with ":<parameter>=<value>" to pick one run, e.g. "auto-reclaim:policy=dropCache".
    one_guest: every run in the kit's VM may share one booted guest (lab 05), where it can start clean there.
    **sizes: size parameters such as size="3GB" (see reclaimlab.units); each must parse.
    Raises LabParameterError (a ValueError) naming the bad parameter and the valid values.
    """
    mode, mode_source = _mode_and_source(mode, os.environ)
    allow = _params.check_bool("allow_system_changes", allow_system_changes)
    presenter = _params.check_bool("presenter", presenter)
    hz = _params.check_hz(sample_hz)
    guest = _params.check_choice("guest", guest, GUEST_CHOICES)
    if isinstance(experiments, str):
        experiments = [experiments]
    size_text = {name: value for name, value in sizes.items()}
    size_bytes = {name: _params.check_size(name, value) for name, value in sizes.items()}

    from ..present import charts
    charts.use_offline_renderer(presenter)

    info, note = probe_guest()
    ctx = LabContext(mode=mode, allow_system_changes=allow, presenter=presenter, sample_hz=hz,
                     sizes={k: str(v) for k, v in size_text.items()}, size_bytes=size_bytes,
                     guest=info, guest_note=note, mode_source=mode_source, guest_choice=guest,
                     one_guest=_params.check_bool("one_guest", one_guest))
    ctx.recordings = _params.check_recordings(recordings)
    for name in experiments:
        replayed = _plan.replay_plan(name, ctx.recordings)
        ctx.placements[name] = (Placement(replayed[0], "vm" if guest == "vm" else "local", replayed[1]) if replayed else
                                _plan.place(name, mode, ctx.allow_arg, guest, info))
    ctx.plan = {name: (p.how, p.why) for name, p in ctx.placements.items()}
    if show:
        output.display_html(_banner.status_html(ctx))
    return ctx
