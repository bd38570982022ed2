"""What a lab notebook needs: parameter checks, the status of this guest, banners,
prediction prompts, self-check questions and small tables of measured numbers.

A lab uses it like this::

    from reclaimlab.present import analysis, charts
    from reclaimlab.notebook import lab
    ctx = lab.setup(mode=mode, allow_system_changes=allow_system_changes, presenter=presenter,
                    sample_hz=sample_hz, experiments=["calloc-reclaim"], size=size)
    lab.predict("What will AnonPages do right after calloc?", ["rise by the size", "barely move"])
    rec = ctx.run("calloc-reclaim", size=size)       # shows the LIVE / RECORDED banner
    t_free = lab.when(rec, "free")
    lab.explain(f"AnonPages fell by {analysis.gib(-analysis.change(rec, 'anon_kib', t_free, lab.next_event(rec, t_free)))}")
    lab.question("...", ["a", "b"], answer_index=1, explanation="...")

The API (stable; other labs build on it):

    setup(mode, allow_system_changes, presenter, sample_hz, experiments, *, show, **sizes) -> LabContext
        validates (LabParameterError, a ValueError naming the parameter and the valid values),
        switches on offline SVG charts, probes the guest, shows the status
    LabContext.run(name, **params) -> Recording     run in the lab's mode, show the banner
    banner(rec)                                      LIVE / RECORDED, provenance, parameters, notices
    predict(prompt, choices=None) -> Prediction      a prediction before a run (letter buttons or a text box)
    echo(prediction, claim, right, why_wrong)        after the run: the prediction against the claim's verdict
    question(prompt, options, answer_index, explanation)   a self-check with immediate feedback
    explain(markdown)                                text built with numbers from the recording
    table(rows, header, caption)                     a small HTML table
    show_guest(ctx)                                  the doctor's findings and what can run live
    when(rec, kind, detail=None, nth=0)              the time of an event (KeyError naming what exists)
    next_event(rec, t_s), bursts(rec, column, t0_s, t1_s, gap_s), has(rec, column)
    check_answer, banner_html, predict_html, question_html, table_html, status_html,
    guest_rows, live_rows, env_summary               the pure parts, for tests and other front ends

The display helpers display their output and return None, so a cell never shows it twice.

Widgets are few and plain (RadioButtons, Textarea, Button, Output in a VBox): the answers are
printed as HTML with letters and the buttons pick a letter, so an executed copy (papermill)
reads well without a kernel too. Never sudo, never a prompt for a password: the switch for
system-wide changes is `allow_system_changes=True` or RECLAIMLAB_ALLOW_SYSTEM_CHANGES=1.
"""
from __future__ import annotations

import html
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..probe import consent as policy
from ..experiments.registry import MODES  # the one place the modes are named
from ..recording.recording import Recording
from ..present import claims
from ..present.analysis import bursts, has, next_event, when  # noqa: F401 (labs call lab.when etc.)

__all__ = ["LabContext", "LabParameterError", "setup", "banner", "banner_html", "predict", "predict_html",
           "question", "question_html", "check_answer", "Prediction", "echo", "echo_bundle", "table", "table_html", "show_guest", "guest_rows",
           "live_rows", "status_html", "explain", "when", "next_event", "bursts", "has", "env_summary"]

MAX_SAMPLE_HZ = 1000.0


class LabParameterError(ValueError):
    """A lab parameter is invalid; the message names the parameter and what is valid."""


# --------------------------------------------------------------------------- setup


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

    @property
    def allow_arg(self) -> bool | None:
        """What to pass on as allow_system_changes: True, or None to let the environment decide."""
        return True if self.allow_system_changes else None

    @property
    def changes_allowed(self) -> bool:
        return policy.changes_allowed(self.allow_arg)

    def run(self, name: str, *, show_banner: bool = True, **params: Any) -> Recording:
        """Run experiment `name` in this lab's mode and show the banner; returns the Recording.

        `sample_hz` from the lab's parameters is passed on where the experiment takes it.
        In live mode a guest that cannot run it raises ExperimentRefused with the reason.
        """
        from ..experiments import harness as experiments
        if self.sample_hz is not None and "sample_hz" not in params:
            try:
                if "sample_hz" in experiments.get(name).defaults:
                    params["sample_hz"] = self.sample_hz
            except experiments.ExperimentError:
                raise
            except Exception:  # the registry could not load: run() below says why
                pass
        planned = self.plan.get(name, ("", ""))[0]
        if planned == "live" and self.mode != "recorded":
            print(f"▶ {name}: running live on this machine, please wait…", flush=True)
        folder = experiments.replay_for(name, "local", {**experiments.get(name).defaults, **params}, self.recordings)
        rec = experiments.run(name, mode=self.mode, allow_system_changes=self.allow_arg, quiet=True,
                              recording=folder, **params)
        if show_banner:
            banner(rec, requested=params)
        return rec


def _check_choice(name: str, value: Any, valid: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in valid:
        raise LabParameterError(f"parameter {name}={value!r} is not valid; use one of: "
                                f"{', '.join(repr(v) for v in valid)}")
    return value


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise LabParameterError(f"parameter {name}={value!r} is not valid; use True or False (without quotes)")
    return value


def _check_hz(value: Any) -> float | None:
    if value is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not 0 < value <= MAX_SAMPLE_HZ:
        raise LabParameterError(f"parameter sample_hz={value!r} is not valid; use a number of samples per "
                                f"second above 0 and at most {MAX_SAMPLE_HZ:g}, e.g. 10")
    return float(value)


def _check_size(name: str, value: Any) -> int:
    from ..units import parse_size
    try:
        return parse_size(value)
    except ValueError as exc:
        # SizeError's text already says why and lists valid examples.
        raise LabParameterError(f"parameter {name}: {exc}") from None


def _check_recordings(value: Any) -> dict[str, str]:
    """The `recordings` parameter: {experiment: folder}; every folder must load as that experiment."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise LabParameterError(f"parameter recordings={value!r} is not valid; use a dict of experiment name to "
                                f"recording folder, e.g. {{\"page-cache\": \"~/my-runs/page-cache\"}}, or {{}}")
    from ..experiments import harness as experiments
    from ..recording.recording import RecordingError
    out = {}
    for key, folder in value.items():
        name = str(key).split(":")[1 if str(key).startswith("vm:") else 0]
        if name not in experiments.names():
            raise LabParameterError(f"parameter recordings: {key!r} is not an experiment; use one of: "
                                    f"{', '.join(experiments.names())} (optionally 'vm:' before it, "
                                    f"':parameter=value' after it)")
        try:
            experiments.replay(experiments.get(name), folder, quiet=True)
        except (RecordingError, OSError, TypeError) as exc:
            raise LabParameterError(f"parameter recordings[{key!r}]: {exc}") from None
        out[str(key)] = str(folder)
    return out


def _probe() -> tuple[Any, str | None]:
    try:
        from ..probe.guest import probe
        from ..vm import live_status
    except ImportError as exc:
        return None, f"the guest probe is not available in this version of reclaimlab ({exc})"
    try:
        return probe(vm_status=live_status), None
    except Exception as exc:  # the status display must never stop a lab
        return None, f"the guest probe failed: {type(exc).__name__}: {exc}"


def _replay_plan(name: str, recordings: dict[str, str]) -> tuple[str, str] | None:
    replayed = [f"{k} → {v}" for k, v in recordings.items() if k.split(":")[1 if k.startswith("vm:") else 0] == name]
    return ("replayed", "you chose a recording to replay: " + "; ".join(replayed)) if replayed else None


def _plan(name: str, mode: str, allow: bool | None) -> tuple[str, str]:
    if mode == "recorded":
        return "recorded", "you chose mode='recorded'"
    try:
        from ..experiments import harness as experiments
        blocker = experiments.live_blocker(experiments.get(name), "local", allow)
    except Exception as exc:
        blocker = f"this guest could not be checked ({type(exc).__name__}: {exc})"
    if blocker is None:
        return "live", "this guest can run it" + (" (you chose mode='live')" if mode == "live" else "")
    if mode == "live":
        return "refused", f"mode='live' but {blocker}"
    return "recorded", blocker


def setup(mode: str = "auto", allow_system_changes: bool = False, presenter: bool = False,
          sample_hz: float | None = None, experiments: Iterable[str] = (), *, show: bool = True,
          recordings: dict[str, str] | None = None, **sizes: Any) -> LabContext:
    """Validate a lab's parameters, switch on offline charts, probe this guest, show the status.

    mode: "auto" (live where possible), "live" or "recorded".
    allow_system_changes: True lets live runs turn system-wide knobs (drop_caches, compaction);
        False leaves it to RECLAIMLAB_ALLOW_SYSTEM_CHANGES. Shared machines are refused anyway.
    presenter: larger chart fonts for a projector.
    sample_hz: samples per second for live runs (None: the experiment's default).
    experiments: the experiments this lab runs, to say for each whether it will be live or recorded.
    recordings: {experiment: recording folder} to replay instead of running, e.g. an instructor's own
        `reclaimlab record` from a WSL 2 laptop ({} or None: none). A key may be "vm:<experiment>" for
        the kit's VM and end with ":<parameter>=<value>" to pick one run, e.g. "auto-reclaim:policy=dropCache".
    **sizes: size parameters such as size="3GB" (see reclaimlab.units); each must parse.
    Raises LabParameterError (a ValueError) naming the bad parameter and the valid values.
    """
    # A deployment can pin every lab's mode (the browser check and Binder images set RECLAIMLAB_MODE).
    mode = os.environ.get("RECLAIMLAB_MODE") or mode
    mode = _check_choice("mode", mode, MODES)
    allow = _check_bool("allow_system_changes", allow_system_changes)
    presenter = _check_bool("presenter", presenter)
    hz = _check_hz(sample_hz)
    if isinstance(experiments, str):
        experiments = [experiments]
    size_text = {name: value for name, value in sizes.items()}
    size_bytes = {name: _check_size(name, value) for name, value in sizes.items()}

    from ..present import charts
    charts.use_offline_renderer(presenter)

    info, note = _probe()
    ctx = LabContext(mode=mode, allow_system_changes=allow, presenter=presenter, sample_hz=hz,
                     sizes={k: str(v) for k, v in size_text.items()}, size_bytes=size_bytes,
                     guest=info, guest_note=note)
    ctx.recordings = _check_recordings(recordings)
    from ..experiments import harness as registry
    registry.REPLAY.clear()
    registry.REPLAY.update(ctx.recordings)  # also for labs that call experiments.run directly
    ctx.plan = {name: _replay_plan(name, ctx.recordings) or _plan(name, mode, ctx.allow_arg) for name in experiments}
    if show:
        _display_html(status_html(ctx))
    return ctx


# Which experiments each lab runs (lab 05 runs them in the kit's own VM).
LAB_EXPERIMENTS: dict[str, tuple[str, ...]] = {
    "01 · calloc and reclaim": ("calloc-reclaim", "refault"),
    "02 · page cache": ("page-cache",),
    "03 · compaction": ("compaction",),
    "04 · WSL autoMemoryReclaim": ("auto-reclaim",),
    "05 · be the host": ("vm",),
}


def lab_rows(ctx: LabContext) -> list[tuple[str, str, str]]:
    """(lab, LIVE / RECORDED / REPLAYED per experiment, why) on this machine, from the probe (ctx.plan)."""
    rows = []
    for name, exps in LAB_EXPERIMENTS.items():
        parts, whys = [], []
        for exp in exps:
            if exp == "vm":
                how, why = _vm_plan(ctx.mode)
                exp = "the kit's VM"
            else:
                how, why = ctx.plan.get(exp) or _replay_plan(exp, ctx.recordings) or _plan(exp, ctx.mode, ctx.allow_arg)
            label = {"live": "LIVE", "recorded": "RECORDED", "refused": "REFUSED", "replayed": "REPLAYED"}.get(how, how)
            parts.append(f"{exp}: {label}")
            whys.append(why)
        rows.append((name, "; ".join(parts), "; ".join(dict.fromkeys(whys))))
    return rows


def _vm_plan(mode: str) -> tuple[str, str]:
    if mode == "recorded":
        return "recorded", "you chose mode='recorded'"
    try:
        from ..vm import availability
        blocker = availability()
    except Exception as exc:
        blocker = f"the kit's VM could not be checked ({type(exc).__name__}: {exc})"
    return ("live", "the kit's VM can boot here") if blocker is None else ("recorded", blocker)


# --------------------------------------------------------------------------- HTML helpers

_BOX = ("border-left:6px solid {color};background:{bg};padding:8px 12px;margin:6px 0;"
        "border-radius:3px;color:#111;line-height:1.45")
_COLORS = {
    "live": ("#2e7d32", "#e8f5e9"),
    "recorded": ("#1565c0", "#e3f2fd"),
    "refused": ("#c62828", "#ffebee"),
    "notice": ("#ef6c00", "#fff3e0"),
    "predict": ("#6a1b9a", "#f3e5f5"),
    "question": ("#00695c", "#e0f2f1"),
    "info": ("#546e7a", "#eceff1"),
}


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _box(kind: str, inner: str) -> str:
    color, bg = _COLORS[kind]
    return f'<div class="reclaimlab-{kind}" style="{_BOX.format(color=color, bg=bg)}">{inner}</div>'


def _display_html(text: str) -> None:
    try:
        from IPython.display import HTML, display
    except ImportError:  # plain Python: print a readable text version
        import re
        print(html.unescape(re.sub(r"<[^>]+>", " ", text)))
        return
    display(HTML(text))


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


def status_html(ctx: LabContext) -> str:
    """The lab's status: where this runs, live or recorded for each experiment and why, the switch."""
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
                                                     "recorded": " (shipped recordings only)"}[ctx.mode]))
    for name, (how, why) in ctx.plan.items():
        label = {"live": "LIVE", "recorded": "RECORDED", "refused": "REFUSED", "replayed": "REPLAYED"}.get(how, how.upper())
        rows.append((f"Experiment {name}", f"<b>{label}</b>: {_e(why)}"))
    env_on = policy.changes_allowed(None)
    if ctx.allow_system_changes:
        switch = "ON (allow_system_changes=True)"
    elif env_on:
        switch = f"ON ({policy.ALLOW_ENV}=1 in the environment)"
    else:
        switch = (f"OFF: live runs may allocate memory but never turn system-wide knobs. Turn it on with "
                  f"allow_system_changes=True or {policy.ALLOW_ENV}=1, only on a machine that is yours")
    rows.append(("System-wide changes", switch))
    if ctx.sizes:
        from ..units import format_size
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


# --------------------------------------------------------------------------- banner


def banner_html(rec: Recording, requested: dict[str, Any] | None = None) -> str:
    """LIVE on this machine, or RECORDED (machine kind, kernel, date), the parameters and any notices."""
    m = rec.meta
    where = (f"{_e(m.get('guest_kind', '?'))} guest · hypervisor {_e(m.get('hypervisor') or 'unknown')} · "
             f"kernel {_e(m.get('kernel_release', '?'))}")
    exp = _e(m.get("experiment", "?"))
    if rec.is_recorded:
        date = str(m.get("date_utc", "?"))[:16].replace("T", " ")
        replayed = str(m.get("mode_reason", "")).startswith("replaying")
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
    if m.get("mode_reason"):
        lines.append(f"Why {'a recording' if rec.is_recorded else 'live'}: {_e(m['mode_reason'])}")
    if not rec.complete:
        lines.append("⚠ This run is <b>partial</b> (it was interrupted).")
    out = _box(kind, "<br>".join(lines))
    notices = m.get("notices") or []
    if isinstance(notices, str):
        notices = [notices]
    for notice in notices:
        out += _box("notice", f"<b>Notice:</b> {_e(notice)}")
    return out


def banner(rec: Recording, requested: dict[str, Any] | None = None) -> None:
    """Display the LIVE / RECORDED banner of `rec` (with its notices)."""
    _display_html(banner_html(rec, requested))


# --------------------------------------------------------------------------- predictions and questions


def _widgets():
    try:
        import ipywidgets
        return ipywidgets
    except ImportError:
        return None


_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _choice_list(choices: Sequence[str]) -> str:
    items = "".join(f"<li>({_LETTERS[i]}) {_e(c)}</li>" for i, c in enumerate(choices))
    return f"<ul style='list-style:none;margin:4px 0;padding-left:8px'>{items}</ul>"


def _letter_buttons(w: Any, n: int) -> Any:
    # The answers are printed above (readable without a kernel too); the buttons pick a letter.
    return w.RadioButtons(options=[(f"({_LETTERS[i]})", i) for i in range(n)], value=None,
                          layout=w.Layout(width="auto"))


def predict_html(prompt: str, choices: Sequence[str] | None = None) -> str:
    inner = f"<b>Predict first.</b> {_e(prompt)}"
    if choices:
        inner += _choice_list(choices)
    inner += ("<i>Pick or write your answer before you run the next cell; it is not graded, and after the run "
              "the lab sets it against what the run shows.</i>")
    return _box("predict", inner)


def predict(prompt: str, choices: Sequence[str] | None = None) -> "Prediction":
    """A prediction prompt before a run: the prompt as HTML, then letter buttons (with choices) or a text box.

    Returns a `Prediction` to hand to `echo()` after the run (`p = lab.predict(...)`). As a cell's last
    expression it shows nothing more: the prompt is already on the page.
    """
    _display_html(predict_html(prompt, choices))
    handle = Prediction(prompt, tuple(choices or ()))
    w = _widgets()
    if w is None:
        return handle
    from IPython.display import display
    if choices:
        handle.widget = _letter_buttons(w, len(choices))
    else:
        handle.widget = w.Textarea(placeholder="My prediction…", layout=w.Layout(width="90%", height="4em"))
    display(handle.widget)
    return handle


def _validate_question(options: Sequence[str], answer_index: int) -> None:
    if isinstance(options, str) or len(options) < 2:
        raise ValueError("question(): options must be a list of at least two answers")
    if not isinstance(answer_index, int) or not 0 <= answer_index < len(options):
        raise ValueError(f"question(): answer_index must be 0..{len(options) - 1}, got {answer_index!r}")


def check_answer(options: Sequence[str], answer_index: int, chosen: str | int | None,
                 explanation: str) -> tuple[bool | None, str]:
    """The feedback for a chosen answer (an option's text or index): (correct, HTML).

    correct is None when nothing was chosen yet.
    """
    if chosen is None:
        return None, "Pick an answer first."
    index = chosen if isinstance(chosen, int) else list(options).index(chosen)
    if index == answer_index:
        return True, f"<span style='color:#2e7d32'><b>✔ Correct.</b></span> {_e(explanation)}"
    return False, (f"<span style='color:#c62828'><b>✘ Not quite</b></span>: ({_LETTERS[index]}) "
                   f"“{_e(options[index])}” is not it. Look at the chart and the numbers again, and try another answer.")


def question_html(prompt: str, options: Sequence[str]) -> str:
    return _box("question", f"<b>Check yourself.</b> {_e(prompt)}{_choice_list(options)}")


def question(prompt: str, options: Sequence[str], answer_index: int, explanation: str) -> None:
    """A self-check: the question and its answers as HTML, letter buttons and a Check button with
    immediate feedback (the explanation comes with a correct answer).

    Without ipywidgets the question is shown alone; the solution cell below has the answer.
    """
    _validate_question(options, answer_index)
    _display_html(question_html(prompt, options))
    w = _widgets()
    if w is None:
        print("(ipywidgets is not installed: the answer is in the collapsed solution cell below.)")
        return
    from IPython.display import HTML, display
    radio = _letter_buttons(w, len(options))
    button = w.Button(description="Check", button_style="info")
    out = w.Output()

    def on_click(_button: Any) -> None:
        _correct, feedback = check_answer(options, answer_index, radio.value, explanation)
        out.clear_output()
        with out:
            display(HTML(feedback))

    button.on_click(on_click)
    display(w.VBox([radio, button, out]))


# --------------------------------------------------------------------------- closing the loop


@dataclass(eq=False)
class Prediction:
    """What `predict()` asked and what the learner picked: the widget's value, or `choose()`'s.

    `value` is the chosen option's index (choices) or the text written (no choices); None if nothing
    was chosen (no widgets, an executed copy, or the learner skipped it).
    """

    prompt: str
    choices: tuple[str, ...] = ()
    widget: Any = None
    chosen: int | str | None = None

    def choose(self, answer: int | str) -> "Prediction":
        """Record a prediction in code: an option's letter ("b"), its index (1), or, without choices, text."""
        self.chosen = _option_index(answer, self.choices) if self.choices else str(answer)
        if self.widget is not None:
            self.widget.value = self.chosen
        return self

    @property
    def value(self) -> int | str | None:
        if self.widget is not None and self.widget.value not in (None, ""):
            return self.widget.value
        return self.chosen

    def _ipython_display_(self) -> None:
        """Nothing: predict() has shown the prompt and its buttons already."""


def _option_index(answer: Any, choices: Sequence[str]) -> int:
    """An option's index from its letter ("b", "(b)") or index; ValueError naming the valid answers."""
    n = len(choices)
    valid = ", ".join(f"'{_LETTERS[i]}'" for i in range(n))
    if isinstance(answer, bool):
        raise ValueError(f"prediction {answer!r} is not an option; use a letter ({valid}) or an index 0..{n - 1}")
    if isinstance(answer, int):
        if 0 <= answer < n:
            return answer
        raise ValueError(f"prediction {answer} is not an option; use an index 0..{n - 1} or a letter ({valid})")
    if isinstance(answer, str):
        letter = answer.strip().strip("()").lower()
        if len(letter) == 1 and letter in _LETTERS[:n]:
            return _LETTERS.index(letter)
    raise ValueError(f"prediction {answer!r} is not an option; use a letter ({valid}) or an index 0..{n - 1}")


def _supported(claim: Any, right: Mapping[str, int] | Callable[[Any], int | None]) -> int | None:
    """The option the run supports: right[verdict] (or right(claim)); None where the run does not decide."""
    index = right(claim) if callable(right) else right.get(claim.verdict)
    return index


def echo_bundle(prediction: "Prediction | int | str | None", claim: Any,
                right: Mapping[str, int] | Callable[[Any], int | None],
                why_wrong: Mapping[int, str] | None = None, choices: Sequence[str] | None = None) -> dict[str, Any]:
    """The display bundle of `echo()` (Markdown and the claim as JSON), for tests and other front ends."""
    free_text = isinstance(prediction, Prediction) and not prediction.choices
    if isinstance(prediction, Prediction):
        choices = prediction.choices if choices is None else choices
        chosen = prediction.value
    else:
        chosen = prediction
    choices = tuple(choices or ())
    if choices and chosen not in (None, "") and not free_text:
        chosen = _option_index(chosen, choices)
    supported = _supported(claim, right)
    if supported is not None and not (isinstance(supported, int) and 0 <= supported < len(choices)):
        raise ValueError(f"echo(): right maps verdict {claim.verdict!r} to {supported!r}, not an option "
                         f"(0..{len(choices) - 1})")
    why_wrong = dict(why_wrong or {})
    bad = [k for k in why_wrong if not (isinstance(k, int) and 0 <= k < len(choices))]
    if bad:
        raise ValueError(f"echo(): why_wrong has keys {bad} that are not options (0..{len(choices) - 1})")

    def option(i: int) -> str:
        return f"({_LETTERS[i]}) “{choices[i]}”"

    if chosen is None or chosen == "":
        intro = "**No prediction was picked above.** The run shows:"
    elif isinstance(chosen, int):
        intro = f"**You predicted {option(chosen)}.** The run shows:"
    else:
        intro = f"**You predicted:** “{chosen}”. The run shows:"
    if supported is None:
        outro = ("**This run does not decide between the options** (its verdict is "
                 f"`{claim.verdict}`): the sentence above says why. Compare with the recording, or run it again.")
        correct = None
    else:
        head = ("✔ **That is what this run supports.**" if chosen == supported else
                f"✘ **The run supports {option(supported)}**, not {option(chosen)}." if isinstance(chosen, int) else
                f"**The run supports {option(supported)}.**")
        correct = (chosen == supported) if isinstance(chosen, int) else None
        wrong = [i for i in range(len(choices)) if i != supported and i in why_wrong]
        if isinstance(chosen, int) and chosen in wrong:  # the learner's own option first
            wrong.remove(chosen)
            wrong.insert(0, chosen)
        lines = [f"- What {option(i)} gets wrong: {why_wrong[i]}" for i in wrong]
        outro = "\n".join([head] + ([""] + lines if lines else []))
        if chosen is None or chosen == "":
            intro = f"**No prediction was picked above.** **The run supports {option(supported)}**:"
            outro = "\n".join(lines) + ("\n\n" if lines else "") + "_Pick an answer above and run this cell again to compare._"
    data = claims.bundle(claim, intro=intro, outro=outro)
    data[claims.MIME]["echo"] = {"key": claim.key, "verdict": claim.verdict,
                                 "predicted": chosen if chosen != "" else None, "supported": supported,
                                 "correct": correct}
    return data


def echo(prediction: "Prediction | int | str | None", claim: Any,
         right: Mapping[str, int] | Callable[[Any], int | None],
         why_wrong: Mapping[int, str] | None = None, choices: Sequence[str] | None = None) -> None:
    """Close the loop after a run: the learner's prediction against what the claim's verdict supports.

    prediction: what `predict()` returned (or a letter/index, or None).
    claim: the `reclaimlab.present.claims.Claim` that judges the run; its sentence is shown.
    right: verdict -> the index of the option that verdict supports (or a function of the claim); a
        verdict it does not map (e.g. "not_measurable") decides nothing, and the lab says so.
    why_wrong: option index -> what that option gets wrong, as documented (true whatever the run);
        shown for every option the run does not support, the learner's first.
    Without a choice (no widgets, an executed copy) it states the answer. The output carries the claim
    as JSON (like `claims.show`), with the echo's own verdict beside it.
    """
    claims.display_bundle(echo_bundle(prediction, claim, right, why_wrong, choices))


# --------------------------------------------------------------------------- reading a recording


def explain(markdown: str) -> None:
    """Display Markdown text, e.g. an explanation built with numbers measured in the recording shown."""
    try:
        from IPython.display import Markdown, display
    except ImportError:
        print(markdown)
        return
    display(Markdown(markdown))


# --------------------------------------------------------------------------- tables


def table_html(rows: Iterable[Sequence[Any]], header: Sequence[str] = ("", "measured", "how"),
               caption: str | None = None) -> str:
    """A small HTML table (each cell escaped)."""
    head = "".join(f"<th style='text-align:left'>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{_e(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    cap = f"<caption style='text-align:left;font-weight:bold'>{_e(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def table(rows: Iterable[Sequence[Any]], header: Sequence[str] = ("", "measured", "how"),
          caption: str | None = None) -> None:
    """Display a small table, e.g. of numbers measured in the recording shown."""
    _display_html(table_html(rows, header, caption))


def _size(n: Any) -> str:
    from ..units import format_size
    return format_size(n) if isinstance(n, (int, float)) and not isinstance(n, bool) else "—"


def _yes(value: Any) -> str:
    return "yes" if value is True else "no" if value is False else "cannot tell"


def _generic(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return _yes(value) if value is not None else "—"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_generic(v)}" for k, v in value.items()) or "—"
    if isinstance(value, (list, tuple)):
        return ", ".join(_generic(v) for v in value) or "—"
    return str(value)


def guest_rows(info: Any) -> list[tuple[str, str]]:
    """(finding, value) rows from the guest probe (`GuestInfo` or its `to_dict()`), in plain words.

    Knows the probe's schema 1 keys; any other keys are listed as they are.
    """
    d = info.to_dict() if hasattr(info, "to_dict") else dict(info)
    rows: list[tuple[str, str]] = []
    known = set()

    def add(label: str, keys: Sequence[str], text: str) -> None:
        known.update(keys)
        rows.append((label, text))

    if "kind" in d:
        add("What this is", ["kind", "kind_reason"],
            f"{d['kind']}" + (f" ({d['kind_reason']})" if d.get("kind_reason") else ""))
    if "hypervisor" in d:
        add("Hypervisor", ["hypervisor", "hypervisor_evidence"], d["hypervisor"] or "none detected")
    if "kernel_release" in d:
        add("Kernel", ["kernel_release"], d["kernel_release"] or "?")
    if "container" in d:
        add("Container", ["container"], d["container"] or "no")
    if "is_root" in d:
        add("Running as root", ["is_root"], _yes(d["is_root"]))
    if "balloon_driver" in d or "virtio_balloon" in d:
        add("Balloon driver", ["balloon_driver", "virtio_balloon"], d.get("balloon_driver") or "none")
    if "free_page_reporting" in d:
        text = _yes(d["free_page_reporting"])
        if d.get("page_reporting_order") is not None:
            order = d["page_reporting_order"]
            text += f", order {order} (blocks of {_size(2 ** order * 4096)} and larger)"
        if d.get("free_page_reporting_reason"):
            text += f": {d['free_page_reporting_reason']}"
        add("Free page reporting", ["free_page_reporting", "free_page_reporting_reason", "page_reporting_order",
                                    "page_reporting_params"], text)
    if "host_views" in d:
        views = [v.get("name", "?") + (f" ({v['source']})" if v.get("source") else "")
                 + (" - a running total since boot of what this guest handed back" if v.get("name") == "reported_kib"
                    else "") for v in d["host_views"]]
        notes = list(d.get("host_view_notes") or [])
        add("The host's side, seen from here", ["host_views", "host_view_notes"],
            "; ".join(views + notes) if views or notes else "none")
    if "memory" in d and isinstance(d["memory"], dict):
        m = d["memory"]
        text = f"{_size(m.get('mem_total_bytes'))} in total, {_size(m.get('mem_available_bytes'))} available"
        if m.get("cgroup_limit_bytes"):
            text += f", cgroup limit {_size(m['cgroup_limit_bytes'])}"
        if m.get("memory_budget_bytes") is not None:
            text += f"; experiments may allocate up to {_size(m['memory_budget_bytes'])}"
        add("Memory", ["memory"], text)
    if "knobs" in d and isinstance(d["knobs"], dict):
        parts = [f"{name}: {'writable' if k.get('writable') else 'no'}"
                 + ("" if k.get("writable") else f" ({k.get('reason')})") for name, k in d["knobs"].items()]
        add("System-wide knobs", ["knobs", "cgroup_limit_writable"], "; ".join(parts) or "none")
    if "shared_reason" in d:
        add("Shared machine", ["shared_reason"], d["shared_reason"] or "no")
    if "consent_given" in d:
        add("System-wide changes allowed by the environment", ["consent_given"],
            f"{_yes(d['consent_given'])} ({policy.ALLOW_ENV})")
    if d.get("problems"):
        add("Could not read", ["problems"], "; ".join(d["problems"]))
    skip = known | {"schema_version", "live_support", "glossary", "problems", "proc_root", "sys_root", "scratch_dir", "scratch_free_bytes",
                    "kvm_usable", "qemu_path"}
    rows += [(k.replace("_", " "), _generic(v)) for k, v in d.items() if k not in skip]
    return rows


def live_rows(info: Any) -> list[tuple[str, str, str]]:
    """(experiment, live here?, why) rows from the probe's live_support."""
    d = info.to_dict() if hasattr(info, "to_dict") else dict(info)
    out = []
    for name, s in (d.get("live_support") or {}).items():
        if isinstance(s, dict) and "verdict" in s:  # schema 2: what auto mode does, consent included
            verdict = {"live": "yes", "live_with_consent": "yes, with consent"}.get(s["verdict"], "no")
            reason = s.get("reason", "")
        else:
            if isinstance(s, dict):  # schema 1
                live, reason, consent = s.get("live"), s.get("reason", ""), s.get("needs_consent", False)
            else:  # (live, reason)
                live, reason, consent = s[0], s[1], False
            verdict = "yes" if live else "no"
            if live and consent:
                verdict = "yes, with consent"
        out.append((name, verdict, reason))
    return out


def show_guest(ctx: LabContext | None = None) -> None:
    """Display what `reclaimlab doctor` finds here: the findings, then which experiments can run live."""
    info, note = (ctx.guest, ctx.guest_note) if ctx is not None else _probe()
    if info is None:
        _display_html(_box("notice", f"No guest findings to show: {_e(note)}"))
        return
    text = table_html(guest_rows(info), header=("finding", "on this machine"),
                      caption="What reclaimlab found out about this machine")
    live = live_rows(info)
    if live:
        text += "<br>" + table_html(live, header=("experiment", "live here?", "why"),
                                    caption="Which experiments can run live here")
    _display_html(text)


def env_summary() -> dict[str, str]:
    """The environment variables the kit reads, and their values here (unset: '—')."""
    return {name: os.environ.get(name, "—") for name in (policy.ALLOW_ENV, policy.SHARED_ENV,
                                                         "RECLAIMLAB_DATA", "RECLAIMLAB_PROC_ROOT")}
