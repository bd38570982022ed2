"""The harness: `run()` one experiment live on this guest or in the kit's VM, or load its recording.

    rec = run("calloc-reclaim", mode="auto", size="3GB")

`mode` is "live" (run here; refuse with the reason if this guest cannot),
"recorded" (load the shipped recording), or "auto" (live where possible, recorded
otherwise; the Recording's `why_shown` says which and why). Every path
yields the same Recording, so charts and questions never need to know which.
What each experiment is lives in the catalog (`reclaimlab.catalog`, declared once); `live.py` holds their live scripts.
"""
from __future__ import annotations

import contextlib
import sys
from typing import Any

from ..recording import datasets
from ..control import lock as guestlock
from ..probe import consent, sources
from ..vm import slots as vm_slots
from ..recording.recording import Recording

from .registry import (GUESTS, MODES, REGISTRY, Experiment, ExperimentBusy,  # noqa: F401 (re-exported)
                       ExperimentError, ExperimentInterrupted, ExperimentRefused)


def get(name: str) -> Experiment:
    _load_steps()
    try:
        return REGISTRY[name]
    except KeyError:
        raise ExperimentError(f"unknown experiment {name!r}; choose one of: {', '.join(names())}") from None


def names() -> list[str]:
    _load_steps()
    return list(REGISTRY)


def _load_steps() -> None:
    from . import live  # noqa: F401  (registers the experiments)


def _say(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, file=sys.stdout, flush=True)


MAX_STEP_S = 24 * 3600  # the longest wait an experiment's *_s parameter may ask for


def resolve_params(exp: Experiment, params: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(params) - set(exp.defaults))
    if unknown:
        raise ExperimentError(f"{exp.name}: unknown parameter(s) {', '.join(unknown)}; "
                              f"valid: {', '.join(f'{k} (default {v!r})' for k, v in exp.defaults.items())}")
    merged = {**exp.defaults, **params}
    for key, value in params.items():
        default = exp.defaults[key]
        if key == "size":
            from ..units import parse_size
            parse_size(value)  # SizeError (a ValueError) names the input and shows valid sizes
        elif key == "sample_hz":
            from ..sampling.sampler import validate_hz
            validate_hz(value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ExperimentError(f"{exp.name}: {key} must be True or False, not {value!r}")
        elif isinstance(default, (int, float)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 \
                    or value == float("inf"):
                raise ExperimentError(f"{exp.name}: {key} must be a number >= 0 (default {default}), not {value!r}")
            if key.endswith("_s") and value > MAX_STEP_S:  # a wait of 1e308 s overflows time.sleep mid-run
                raise ExperimentError(f"{exp.name}: {key}={value!r} is more than a day ({MAX_STEP_S:,} s); "
                                      f"give seconds (default {default})")
        elif isinstance(default, str) and exp.choices.get(key) and value not in exp.choices[key]:
            raise ExperimentError(f"{exp.name}: {key} must be one of {', '.join(exp.choices[key])}, not {value!r}")
    return merged


def live_blocker(exp: Experiment, guest: str, allow_system_changes: bool | None,
                 roots: sources.Roots | None = None, guest_info: Any = None) -> str | None:
    """Why `exp` cannot run live here (None: it can).

    guest_info: this guest's probe.guest.GuestInfo when the caller has it (a lab's setup() probes
    once and passes it down); None: the probe is asked here."""
    roots = roots or sources.Roots.from_env()
    if guest == "vm":
        from ..probe.guest import kernel_release, wsl1_refusal
        from ..probe.hostviews import wsl1_reason
        if wsl1_reason(kernel_release(roots), sources.read_optional(roots.proc / "version")):
            return wsl1_refusal()
        from ..vm import availability
        return availability()
    if guest_info is None:
        from ..probe.guest import probe
        guest_info = probe(roots)
    if exp.runner is None:
        return f"{exp.name} is declared but has no live script (catalog.attach_runner gives it one)"
    from .verdicts import support
    judged = support(exp, guest_info)  # from its declared needs: a test's own experiment is judged too
    if not judged.live:
        return judged.reason
    if exp.knobs:
        shared = consent.shared_reason(roots)
        if shared:
            return shared + "; system-wide knobs stay off on shared machines"
        if not consent.changes_allowed(allow_system_changes):
            return f"it turns system-wide knobs ({', '.join(exp.knobs)}) and {consent.not_allowed()}"
    return None


def _check_timeout(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise ExperimentError(f"lock_timeout_s must be a number of seconds >= 0 (how long a live run waits for "
                              f"another one on this guest to end; default {guestlock.DEFAULT_TIMEOUT_S:g}), "
                              f"not {value!r}")
    return float(value)


def _say_always(message: str) -> None:
    print(message, file=sys.stdout, flush=True)  # even when quiet: a silent wait looks like a hang


def _guest_lock(exp: Experiment, guest: str, timeout_s: float) -> tuple[contextlib.ExitStack, str | None]:
    """Take this guest's live-experiment lock (guestlock); (the held lock, None) or (nothing held, why not)."""
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(guestlock.hold(exp.name, guest=guest, timeout_s=timeout_s, say=_say_always))
    except guestlock.GuestBusy as exc:
        return stack, str(exc)
    return stack, None


# Selectors a "vm:" key may use besides the VM experiment's own timings (see _run_vm).
VM_SELECTORS = ("reporting", "page_reporting_order", "then_order", "size", "mem")


def _selector_keys(exp: Experiment, guest: str) -> list[str]:
    if guest == "vm" and exp.name == "auto-reclaim":
        # WSL's policies run against the kit's VM (wsl/vm_autoreclaim.py): its own parameters, recorded only
        from ..wsl.vm_autoreclaim import DEFAULTS as VM_AUTORECLAIM_DEFAULTS
        return sorted(VM_AUTORECLAIM_DEFAULTS)
    if guest == "vm":
        from ..vm.experiments import DEFAULTS as VM_DEFAULTS
        if exp.name not in VM_DEFAULTS:
            raise ExperimentError(f"{exp.name} has no version for the kit's VM, so 'vm:{exp.name}' replays nothing; "
                                  f"VM experiments: {', '.join(VM_DEFAULTS)}")
        return sorted({*VM_DEFAULTS[exp.name], *VM_SELECTORS})
    return sorted(exp.defaults)


def parse_replay_key(key: str) -> tuple[str, str, dict[str, str]]:
    """(guest, experiment, {parameter: value as typed}) of a `recordings` key such as
    "vm:refault:reporting=off"; ExperimentError names an unknown experiment or parameter and the valid ones."""
    parts = str(key).split(":")
    guest = "local"
    if parts[0] == "vm":
        guest, parts = "vm", parts[1:]
    exp = get(parts[0] if parts else "")
    known = _selector_keys(exp, guest)
    selectors = {}
    for selector in parts[1:]:
        k, eq, v = selector.partition("=")
        if not eq or k not in known:
            where = " in the kit's VM" if guest == "vm" else ""
            raise ExperimentError(f"{key!r}: {selector!r} is not <parameter>=<value> with a parameter of "
                                  f"{exp.name}{where}; its parameters: {', '.join(known)}")
        selectors[k] = v
    return guest, exp.name, selectors


def _same(key: str, actual: Any, wanted: str) -> bool:
    """Whether a parameter's value is the one a selector names as text (on/off for booleans, sizes by bytes)."""
    text = wanted.strip().lower()
    if isinstance(actual, bool):
        return text in (("true", "on", "yes", "1") if actual else ("false", "off", "no", "0"))
    if key in ("size", "mem"):
        from ..units import parse_size
        try:
            return parse_size(actual) == parse_size(wanted)
        except (ValueError, TypeError):
            return False
    if isinstance(actual, (int, float)):
        try:
            return float(text) == float(actual)
        except ValueError:
            return False
    return str(actual).lower() == text


def replay_key_matches(key: str, name: str, guest: str, params: dict[str, Any]) -> bool:
    parts = key.split(":")
    key_guest = "local"
    if parts[0] == "vm":
        key_guest, parts = "vm", parts[1:]
    if not parts or parts[0] != name or key_guest != guest:
        return False
    for selector in parts[1:]:
        k, _, v = selector.partition("=")
        if k not in params or not _same(k, params[k], v):
            return False
    return True


def replay_problem(key: str, rec: Recording) -> str | None:
    """Why `rec` is not what the `recordings` key asks for (None: it is): a "vm:" key takes a run of the
    kit's VM and any other key a run on a guest the notebook ran on; every selector must match its parameters."""
    guest, name, selectors = parse_replay_key(key)
    meta = rec.meta
    params = meta.get("parameters") or {}
    in_vm = meta.get("guest_kind") == datasets.VM_GUEST_KIND
    if guest == "vm" and not in_vm:
        return (f"it was recorded on a {meta.get('guest_kind')!r} guest, not in the kit's VM: a 'vm:' key takes a run "
                f"of the kit's VM (`reclaimlab record {name} --guest vm`), whose host-side columns lab 05 reads; "
                f"give this one as {name!r}")
    if guest == "local" and in_vm:
        return f"it was recorded in the kit's VM (guest_kind 'kit-vm'); give it as 'vm:{name}'"
    for k, wanted in selectors.items():
        actual = params.get(k, params.get("size_bytes") if k == "size" else meta.get(k))
        if actual is None:
            return f"its parameters have no {k}, so nothing says it is the run with {k}={wanted}"
        if not _same(k, actual, wanted):
            return f"it was recorded with {k}={actual!r}, but the key asks for {k}={wanted}"
    return None


def replay_for(name: str, guest: str, params: dict[str, Any], replay: dict[str, Any] | None = None) -> Any:
    """The folder to replay for this run (the most specific matching key) in `replay`, a lab's
    `recordings` table (key -> folder, where a key is "<experiment>", optionally prefixed "vm:" for the
    kit's VM and followed by ":<parameter>=<value>" selectors, e.g. "auto-reclaim:policy=dropCache"), or None."""
    table = replay or {}
    keys = [k for k in table if replay_key_matches(k, name, guest, params)]
    return table[max(keys, key=lambda k: k.count(":"))] if keys else None


def replay(exp: "Experiment", folder: Any, quiet: bool, key: str | None = None) -> Recording:
    """Load a recording someone chose (e.g. an instructor's own `reclaimlab record`) for experiment `exp`;
    with the `recordings` key it was given for, it must also be what the key asks for (replay_problem)."""
    from pathlib import Path

    from ..recording.recording import RecordingError, load
    rec = load(Path(folder).expanduser(), why_shown=f"replaying a recording you chose ({Path(folder).name})")
    made = rec.meta.get("experiment")
    if made != exp.name:
        raise RecordingError(f"{folder}: is a recording of {made!r}, not of {exp.name!r}; "
                             f"give a {exp.name} recording for {exp.name!r}")
    problem = replay_problem(key, rec) if key is not None else None
    if problem:
        raise RecordingError(f"{folder}: is not what {key!r} asks for: {problem}")
    _say(f"▶ {exp.name}: REPLAYING {folder}.\n  {rec.describe_source()}", quiet)
    return rec


def run(name: str, mode: str = "auto", *, guest: str = "local", allow_system_changes: bool | None = None,
        quiet: bool = False, recording: Any = None, lock_timeout_s: float = guestlock.DEFAULT_TIMEOUT_S,
        recordings: dict[str, Any] | None = None, guest_info: Any = None, vm_session: Any = None,
        **params: Any) -> Recording:
    """Run experiment `name` and return its Recording (see the module docstring for modes).

    A live run holds this guest's lock (guestlock): while another live experiment runs here it
    waits up to `lock_timeout_s`, then live mode raises ExperimentBusy and auto mode shows the
    recording. Recorded mode never waits.

    recording: a recording folder to replay instead (any mode); without it, the folder of the most
    specific key of `recordings` (a lab's `recordings` parameter, `ctx.recordings`) that matches this run.
    guest_info: this guest's probe.guest.GuestInfo (a LabContext's `guest`), so that nothing probes again:
    it decides whether the run can be live and goes into the recording's meta; None: probed here.
    vm_session: a vm.session.VmSession whose booted guest a VM run may reuse (a lab's, one boot per lab).
    """
    exp = get(name)
    if mode not in MODES:
        raise ExperimentError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    if guest not in GUESTS:
        raise ExperimentError(f"guest {guest!r} is not one of {', '.join(GUESTS)}")
    lock_timeout_s = _check_timeout(lock_timeout_s)
    defaults = {"reporting": True} if guest == "vm" else exp.defaults
    folder = recording if recording is not None else replay_for(name, guest, {**defaults, **params}, recordings)
    if folder is not None:
        return replay(exp, folder, quiet)
    if guest == "vm" and name == "auto-reclaim":
        return _run_vm_autoreclaim(exp, mode, quiet, params, lock_timeout_s, vm_session)
    if guest == "vm":
        return _run_vm(exp, mode, quiet, params, lock_timeout_s, vm_session)
    params = resolve_params(exp, params)
    selectors = {k: params[k] for k in exp.variant_keys}
    if mode == "recorded":
        return _recorded(exp, selectors, "recorded mode was asked for", quiet)
    if guest_info is None:
        from ..probe.guest import probe
        guest_info = probe()  # once: for the verdict below and the recording's meta
    blocker = live_blocker(exp, "local", allow_system_changes, guest_info=guest_info)
    if blocker:
        if mode == "live":
            raise ExperimentRefused(f"{name} cannot run live here: {blocker}. Use mode='auto' or 'recorded' "
                                    f"to see a recording instead.")
        return _recorded(exp, selectors, f"live is not possible here: {blocker}", quiet)
    if mode == "live" and "size" in params:
        # Refuse an unsafe size before anything starts (auto mode scales it down inside the run).
        from ..units import parse_size
        from .sizing import plan_allocation
        plan_allocation(parse_size(params["size"]), "live")
    lock, busy = _guest_lock(exp, "local", lock_timeout_s)
    if busy:
        if mode == "live":
            raise ExperimentBusy(busy)
        return _recorded(exp, selectors, f"live was not possible: {busy}", quiet)
    with lock:
        _say(f"▶ {name}: running LIVE on this machine", quiet)
        rec = exp.runner(params=params, mode=mode, guest=guest, allow=allow_system_changes, quiet=quiet,
                         guest_info=guest_info)
    return rec  # why_shown: the live reason experiments.live.LiveRun gave its Recorder


def _vm_recording_instead(exp: Experiment, selectors: dict, mode: str, quiet: bool) -> Recording | None:
    """The recording a kit-VM run shows instead (recorded mode, or the VM cannot run here and mode is auto),
    or None to go on live; in live mode a VM that cannot run is refused with the reason."""
    if mode == "recorded":
        return _recorded(exp, selectors, "recorded mode was asked for", quiet, guest_kind="kit-vm")
    blocker = live_blocker(exp, "vm", None)
    if blocker:
        if mode == "live":
            raise ExperimentRefused(f"{exp.name} cannot run in the kit's VM here: {blocker}")
        return _recorded(exp, selectors, f"the kit's VM cannot run here: {blocker}", quiet, guest_kind="kit-vm")
    return None


def _pop_order(exp: Experiment, params: dict[str, Any], key: str) -> int | None:
    """params[key] (removed) as a buddy order or None ("5" from a CLI --param reads as 5); ExperimentError else."""
    from ..vm.machine import check_page_reporting_order
    value = params.pop(key, None)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    try:
        return check_page_reporting_order(value)
    except ValueError as exc:
        text = str(exc) if key == "page_reporting_order" else \
            f"{key}: {str(exc).replace('page_reporting_order ', '', 1)}"
        raise ExperimentError(f"{exp.name}: {text}") from None


def _run_vm(exp: Experiment, mode: str, quiet: bool, params: dict[str, Any], lock_timeout_s: float,
            session: Any = None) -> Recording:
    """The same experiment inside the kit's own QEMU guest (the notebook is then its host).

    `session` (a VmSession) lends its booted guest where the run can start clean in it (vm/session.py:
    `reusable`); a run that cannot boots its own, after the session's guest is stopped (one guest at a
    time: on Binder two do not fit the memory limit, and each holds one of the machine's VM slots).

    It takes the same lock as a local run: the VM's counters are its own, but its RAM is
    allocated in this guest and handed back through it (moving this guest's MemFree and
    reported_kib that a local run measures), and both size themselves to this guest's
    MemAvailable at their start, so two at once could together exceed it."""
    from ..vm.experiments import DEFAULTS as VM_DEFAULTS

    if exp.name not in VM_DEFAULTS:
        raise ExperimentError(f"{exp.name} has no version for the kit's VM; VM experiments: {', '.join(VM_DEFAULTS)}")
    params = dict(params)
    reporting = params.pop("reporting", True)
    if not isinstance(reporting, bool):
        raise ExperimentError(f"{exp.name}: reporting must be True or False, not {reporting!r}")
    # page_reporting_order: on the guest's kernel command line, as WSL sets it (None: the kernel's own)
    order = _pop_order(exp, params, "page_reporting_order")
    # then_order (compaction): the same fragmentation watched again after this order is written at runtime
    then_order = _pop_order(exp, params, "then_order")
    if then_order is not None and (exp.name != "compaction" or not reporting):
        raise ExperimentError(f"{exp.name}: then_order is for compaction with free page reporting on (one "
                              f"fragmentation watched at two orders); drop it or run compaction")
    size, mem = params.pop("size", None), params.pop("mem", None)
    from ..units import parse_size
    size_bytes = None if size is None else parse_size(size)
    mem_bytes = None if mem is None else parse_size(mem)
    vm_exp = Experiment(exp.name, exp.summary, VM_DEFAULTS[exp.name])
    params = resolve_params(vm_exp, params)
    # None picks the recordings made without an order on the command line (the kernel's own, 9 here)
    selectors = {"reporting": reporting, "page_reporting_order": order}
    if exp.name == "compaction":   # a one-order request must not be shown the run that switched orders
        selectors["then_order"] = then_order
    shown = _vm_recording_instead(exp, selectors, mode, quiet)
    if shown is not None:
        return shown
    from ..vm import run_vm_experiment
    from ..vm.errors import VmError
    lock, busy = _guest_lock(exp, "vm", lock_timeout_s)
    if busy:
        if mode == "live":
            raise ExperimentBusy(busy)
        return _recorded(exp, selectors, f"the kit's VM did not run: {busy}", quiet, guest_kind="kit-vm")
    from ..vm.session import OrderNotWritable, reusable
    reuse = session is not None and reusable(exp.name, reporting, session.reporting)
    with lock:
        _say(f"▶ {exp.name}: running LIVE in the kit's own VM (free page reporting {'on' if reporting else 'off'})",
             quiet)
        try:
            if reuse:
                fresh = not session.alive
                try:
                    machine, size, notices = session.machine(size_bytes, lock_timeout_s, _say_always,
                                                             mem_bytes=mem_bytes, page_reporting_order=order)
                except OrderNotWritable:   # this guest's kernel fixes the order at boot: on the command line then
                    session.close()
                    reuse = False
            if reuse:
                waited = session.slot.waited_s if fresh and session.slot else None
                rec = run_vm_experiment(exp.name, size_bytes=size, machine=machine, quiet=quiet,
                                        page_reporting_order=order, notices=notices,
                                        clean_start=None if session.runs == 1 else session.last_fresh,
                                        then_order=then_order, **params)
            else:
                if session is not None:
                    session.close()   # one guest at a time: this run boots its own
                with vm_slots.hold(lock_timeout_s, _say_always) as slot:
                    waited = slot.waited_s
                    rec = run_vm_experiment(exp.name, reporting=reporting, size_bytes=size_bytes, mem_bytes=mem_bytes,
                                            quiet=quiet, page_reporting_order=order, then_order=then_order,
                                            **params)
            _slot_notice(rec, waited)
        except vm_slots.VmSlotsFull as exc:
            if mode == "live":
                raise ExperimentBusy(str(exc)) from None
            return _recorded(exp, selectors, f"the kit's VM did not run: {exc}, so this is its recording", quiet,
                             guest_kind="kit-vm")
        except ExperimentError:
            raise  # a wrong parameter: say so in every mode
        except (VmError, ValueError) as exc:  # the VM failed to boot or run, or this machine lacks the memory
            if reuse:
                session.close()   # a failed run leaves no clean guest to reuse
            if mode == "live":
                raise
            failed = exc
        except KeyboardInterrupt as exc:
            if reuse:
                session.close()
            if isinstance(exc, ExperimentInterrupted):
                raise
            raise ExperimentInterrupted(f"{exp.name} in the kit's VM was interrupted: the VM was stopped; what was "
                                        f"sampled so far is kept, marked partial",
                                        getattr(exc, "recording", None)) from None
        else:
            return rec  # why_shown: the live reason vm.sampler gave its Recorder
    # auto mode: the recording, saying why the VM did not run (outside the lock: loading needs no guest)
    return _recorded(exp, selectors, f"the kit's VM could not run here ({failed})", quiet, guest_kind="kit-vm")


SLOT_NOTICE_S = 1.0   # a wait for a VM slot shorter than this is not worth a sentence


def _slot_notice(rec: Recording, waited_s: float | None) -> None:
    """Say in the banner how long this run waited for one of the machine's VM slots (vm/slots.py)."""
    if waited_s is not None and waited_s >= SLOT_NOTICE_S:
        notices = rec.meta.get("notices")
        rec.meta["notices"] = notices = list(notices) if isinstance(notices, list) else [notices] if notices else []
        notices.append(f"this run waited {waited_s:.0f} s for its turn: the machine runs only as many kit's "
                           f"VMs at once as its cores and free memory hold")


def _run_vm_autoreclaim(exp: Experiment, mode: str, quiet: bool, params: dict[str, Any], lock_timeout_s: float,
                        session: Any) -> Recording:
    """WSL's policy against the kit's VM (wsl/vm_autoreclaim.py), the CPU gate on: the VM is idle when its guest
    is. time_scale 0 takes the local run's compression for the variant (live.DEFAULT_TIME_SCALE), so a lab's
    runs fit in minutes; `session` (a VmSession) lends its booted guest, else the run boots its own."""
    from ..wsl.vm_autoreclaim import DEFAULTS as VM_AR_DEFAULTS, run_vm_autoreclaim
    from .live import DEFAULT_TIME_SCALE

    p = {**VM_AR_DEFAULTS, **params}
    unknown = sorted(set(p) - set(VM_AR_DEFAULTS))
    if unknown:
        raise ExperimentError(f"{exp.name} in the kit's VM: unknown parameter(s) {', '.join(unknown)}; valid: "
                              f"{', '.join(f'{k} (default {v!r})' for k, v in VM_AR_DEFAULTS.items())}")
    for key in ("policy", "variant"):
        if p[key] not in exp.choices.get(key, (p[key],)):
            raise ExperimentError(f"{exp.name}: {key} must be one of {', '.join(exp.choices[key])}, not {p[key]!r}")
    p["time_scale"] = float(p["time_scale"]) or DEFAULT_TIME_SCALE.get(p["variant"], 1.0)
    selectors = {"policy": p["policy"], "variant": p["variant"]}
    shown = _vm_recording_instead(exp, selectors, mode, quiet)
    if shown is not None:
        return shown
    from ..units import parse_size
    from ..vm.errors import VmError
    size = parse_size(p["size"]) if isinstance(p["size"], str) else int(p["size"])
    lock, busy = _guest_lock(exp, "vm", lock_timeout_s)
    if busy:
        if mode == "live":
            raise ExperimentBusy(busy)
        return _recorded(exp, selectors, f"the kit's VM did not run: {busy}", quiet, guest_kind="kit-vm")
    with lock:
        _say(f"▶ {exp.name}: running LIVE in the kit's own VM ({p['policy']} · {p['variant']})", quiet)
        try:
            rest = {k: v for k, v in p.items() if k not in ("policy", "variant", "size")}
            if session is not None:
                fresh = not session.alive
                machine, size, notices = session.machine(size, lock_timeout_s, _say_always)
                waited = session.slot.waited_s if fresh and session.slot else None
                rec = run_vm_autoreclaim(p["policy"], p["variant"], machine=machine, notices=notices, quiet=quiet,
                                         size=size, **rest)
            else:
                with vm_slots.hold(lock_timeout_s, _say_always) as slot:
                    waited = slot.waited_s
                    rec = run_vm_autoreclaim(p["policy"], p["variant"], quiet=quiet, size=size, **rest)
            _slot_notice(rec, waited)
            return rec
        except vm_slots.VmSlotsFull as exc:
            if mode == "live":
                raise ExperimentBusy(str(exc)) from None
            return _recorded(exp, selectors, f"the kit's VM did not run: {exc}, so this is its recording", quiet,
                             guest_kind="kit-vm")
        except BaseException as exc:
            if session is not None:
                session.close()   # an interrupted or failed run leaves no clean guest to reuse
            if isinstance(exc, KeyboardInterrupt):
                if isinstance(exc, ExperimentInterrupted):
                    raise
                raise ExperimentInterrupted(f"{exp.name} in the kit's VM was interrupted: the VM was stopped; what "
                                            f"was sampled so far is kept, marked partial",
                                            getattr(exc, "recording", None)) from None
            if mode == "live" or not isinstance(exc, (VmError, ValueError, RuntimeError)):
                raise
            failed = exc
    return _recorded(exp, selectors, f"the kit's VM could not run here ({failed})", quiet, guest_kind="kit-vm")


def _recorded(exp: Experiment, selectors: dict[str, Any], reason: str, quiet: bool,
              guest_kind: str | None = None) -> Recording:
    rec = datasets.find(exp.name, selectors, guest_kind=guest_kind, why_shown=reason, defaults=exp.defaults)
    _say(f"▶ {exp.name}: showing a RECORDING ({reason}).\n  {rec.describe_source()}", quiet)
    return rec

