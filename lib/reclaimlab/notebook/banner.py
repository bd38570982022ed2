"""The boxes that say where numbers come from: the lab's set-up status, and each run's LIVE / RECORDED banner."""
from __future__ import annotations

from typing import Any

from ..paths import recordings_dir
from ..probe import consent
from ..probe.consent_source import consent_source
from ..recording.recording import Recording
from ..units import format_size
from . import output
from .output import box as _box, escape as _e
from .plan import LABELS


def _guest_value(info: Any, *names: str) -> Any:
    """First attribute or to_dict() key of the probe's result that is present and not empty."""
    data: dict[str, Any] = {}
    if info is not None and hasattr(info, "to_dict"):
        try:
            data = info.to_dict()
        except Exception:
            data = {}
    for name in names:
        value = getattr(info, name, None)
        if value in (None, "") and name in data:
            value = data[name]
        if value not in (None, ""):
            return value
    return None


def status_html(ctx: Any) -> str:
    """A LabContext's status: where this runs, live or recorded for each experiment and why, the switch."""
    rows = []
    if ctx.guest is not None:
        kind = _guest_value(ctx.guest, "kind", "guest_kind") or "unknown"
        hyp = _guest_value(ctx.guest, "hypervisor") or "none detected"
        kernel = _guest_value(ctx.guest, "kernel_release", "kernel") or "?"
        rows.append(("This machine", f"{kind} guest · hypervisor: {hyp} · kernel {kernel}"))
    else:
        rows.append(("This machine", f"not probed: {ctx.guest_note}"))
    rows.append(("Mode asked for", f"{ctx.mode}" + {"auto": " (live where this guest allows it, else a recording)",
                                                     "live": " (run here; refuse with the reason if impossible)",
                                                     "recorded": " (shipped recordings only)"}[ctx.mode]
                   + ("" if getattr(ctx, "mode_source", None) in (None, "the lab's mode parameter")
                      else f"; set by {ctx.mode_source}")))
    choice = getattr(ctx, "guest_choice", "auto")
    rows.append(("Guest asked for", choice + {"auto": " (this machine where it may and sees its host's side, else the "
                                                     "kit's VM, else a recording)",
                                             "local": " (this machine only)", "vm": " (the kit's own VM only)"}[choice]))
    for name, (how, why) in ctx.plan.items():
        label = LABELS.get(how, how.upper())
        placed = getattr(ctx, "placements", {}).get(name)
        if placed is not None and placed.place == "vm" and how == "live":
            label += " in the kit's VM"
        rows.append((f"Experiment {name}", f"<b>{label}</b>: {_e(why)}"))
    source = consent_source(ctx.allow_arg)
    switch = (f"ON ({source})" if source else
              f"OFF: live runs may allocate memory but never turn system-wide knobs. Turn it on with "
              f"allow_system_changes=True or {consent.ALLOW_ENV}=1, only on a machine that is yours")
    rows.append(("System-wide changes", switch))
    if ctx.sizes:
        rows.append(("Sizes", ", ".join(f"{k}={v!r} ({format_size(ctx.size_bytes[k])})"
                                        for k, v in ctx.sizes.items())))
    if ctx.sample_hz is not None:
        rows.append(("Sample rate (live runs)", f"{ctx.sample_hz:g} Hz"))
    if ctx.presenter:
        rows.append(("Presenter mode", "on: larger chart fonts"))
    body = "".join(f"<tr><th style='text-align:left;padding-right:12px;vertical-align:top'>{_e(k)}</th>"
                   f"<td style='text-align:left'>{v if k.startswith('Experiment') else _e(v)}</td></tr>"
                   for k, v in rows)
    kinds = {how for how, _ in ctx.plan.values()}
    kind = "refused" if "refused" in kinds else "live" if kinds == {"live"} else "recorded" if kinds else "info"
    if kinds == {"replayed"}:
        kind = "recorded"
    return _box(kind, f"<b>reclaimlab lab set-up</b><table style='margin-top:4px'>{body}</table>")


def consent_sentence(ctx: Any) -> str:
    """Whether system-wide changes are allowed in this lab, naming the setting that allowed them."""
    source = consent_source(ctx.allow_arg)
    if source:
        return f"System-wide changes are **allowed** in this session ({source})."
    return (f"System-wide changes are **not allowed** in this session (allow_system_changes=False, "
            f"and {consent.ALLOW_ENV} is not 1).")


def why_line(rec: Recording) -> str:
    """'Why live: …' / 'Why a recording: …', without repeating 'live:' that older runs put in their reason."""
    why = rec.why_shown.removeprefix("live: ") if not rec.is_recorded else rec.why_shown
    return f"Why {'a recording' if rec.is_recorded else 'live'}: {_e(why)}"


def is_shipped(rec: Recording) -> bool:
    """True for one of the kit's own recordings (data/recordings/), False for one a user chose to replay."""
    return rec.path is not None and rec.path.resolve().is_relative_to(recordings_dir().resolve())


def banner_html(rec: Recording, requested: dict[str, Any] | None = None) -> str:
    """LIVE on this machine, or RECORDED (machine kind, kernel, date), the parameters and any notices."""
    m = rec.meta
    where = (f"{_e(m.get('guest_kind', '?'))} guest · hypervisor {_e(m.get('hypervisor') or 'unknown')} · "
             f"kernel {_e(m.get('kernel_release', '?'))}")
    exp = _e(m.get("experiment", "?"))
    if rec.is_recorded:
        date = str(m.get("date_utc", "?"))[:16].replace("T", " ")
        replayed = not is_shipped(rec)
        # Whose run: the machine as its meta describes it (recordings hold no host or user names).
        head = (f"<b>{'REPLAYED' if replayed else 'RECORDED'}</b> · {exp} · recorded {_e(date)} UTC on a {where}"
                f" · reclaimlab {_e(m.get('tool_version', '?'))}, {_e(m.get('machine', '?'))}")
        if replayed:
            head += f"<br>Not the kit's shipped recording: the run in <code>{_e(rec.path)}</code>, chosen with the lab's <code>recordings</code> parameter."
        kind = "recorded"
    else:
        in_vm = m.get("guest_kind") == "kit-vm"
        head = f"<b>LIVE {'in the kit&#x27;s VM on this machine' if in_vm else 'on this machine'}</b> · {exp} · {where}"
        kind = "live"
    lines = [head]
    params = m.get("parameters") or {}
    if params:
        lines.append("Parameters of this run: " + ", ".join(f"{_e(k)}={_e(repr(v))}" for k, v in params.items()))
    if rec.is_recorded and requested:
        differ = {k: v for k, v in requested.items() if k in params and params[k] != v}
        if differ:
            lines.append("Your parameters (" + ", ".join(f"{_e(k)}={_e(repr(v))}" for k, v in differ.items())
                         + ") apply to live runs only; this recording keeps its own.")
    if rec.why_shown:
        lines.append(why_line(rec))
    if not rec.complete:
        lines.append("⚠ This run is <b>partial</b> (it was interrupted).")
    if rec.unverified:
        lines.append(f"⚠ <b>Unverified</b>: {_e(rec.unverified)} (loaded with require_manifest=False).")
    out = _box(kind, "<br>".join(lines))
    notices = m.get("notices") or []
    if isinstance(notices, str):
        notices = [notices]
    for notice in notices:
        out += _box("notice", f"<b>Notice:</b> {_e(notice)}")
    return out


def banner(rec: Recording, requested: dict[str, Any] | None = None) -> None:
    """Display the LIVE / RECORDED banner of `rec` (with its notices)."""
    output.display_html(banner_html(rec, requested))
