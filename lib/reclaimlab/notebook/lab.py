"""The names a lab notebook uses, in one import.

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

The API (stable; other labs build on it), and the module that holds each name:

    setup(mode, allow_system_changes, presenter, sample_hz, experiments, *, show, **sizes) -> LabContext
        validates (LabParameterError, a ValueError naming the parameter and the valid values),
        switches on offline SVG charts, probes the guest, shows the status           context, params
    LabContext.run(name, **params) -> Recording     run in the lab's mode, show the banner   context
    lab_rows(ctx), LAB_EXPERIMENTS                  each lab LIVE / RECORDED here, and why    plan
    banner(rec)                                      LIVE / RECORDED, provenance, parameters, notices   banner
    consent_sentence(ctx)                            system-wide changes allowed or not, and by which setting   banner
    predict(prompt, choices=None) -> Prediction      a prediction before a run (letter buttons or a text box)   predictions
    echo(prediction, claim, right, why_wrong)        after the run: the prediction against the claim's verdict  predictions
    question(prompt, options, answer_index, explanation)   a self-check with immediate feedback   questions
    explain(markdown)                                Markdown that judges nothing (a verdict is a Claim's)   tables
    show_physical_memory(rec, steps)                 the run's maps of physical memory, step by step, or why none   physmaps
    show_guest_and_host_maps(rec_or_runs, step)      the kit's VM: the guest's map beside the host's, how many blocks agree   vmmaps
    table(rows, header, caption)                     a small HTML table                       tables
    show_guest(ctx)                                  the doctor's findings and what can run live   guest_report
    when(rec, kind, detail=None, nth=0)              the time of an event (KeyError naming what exists)   present.analysis
    next_event(rec, t_s), bursts(rec, column, t0_s, t1_s, gap_s), has(rec, column)            present.analysis
    check_answer, banner_html, predict_html, question_html, table_html, status_html, echo_bundle,
    guest_rows, live_rows, env_summary               the pure parts, for tests and other front ends

The display helpers display their output and return None, so a cell never shows it twice.
Widgets are few and plain (RadioButtons, Textarea, Button, Output in a VBox). Never sudo, never a
prompt for a password: the switch for system-wide changes is `allow_system_changes=True` or
RECLAIMLAB_ALLOW_SYSTEM_CHANGES=1.
"""
from __future__ import annotations

from ..present.analysis import bursts, has, next_event, when
from .banner import banner, banner_html, consent_sentence, status_html
from .context import LabContext, setup
from .guest_report import env_summary, guest_rows, live_rows, show_guest
from .params import MAX_SAMPLE_HZ, LabParameterError
from .physmaps import physical_memory_html, show_physical_memory, why_no_maps
from .plan import LAB_EXPERIMENTS, lab_rows
from .predictions import Prediction, echo, echo_bundle, predict, predict_html
from .questions import check_answer, question, question_html
from .tables import explain, table, table_html
from .vmmaps import guest_and_host_maps_html, show_guest_and_host_maps

__all__ = ["LabContext", "LabParameterError", "setup", "banner", "banner_html", "predict", "predict_html",
           "question", "question_html", "check_answer", "Prediction", "echo", "echo_bundle", "table", "table_html", "show_guest", "guest_rows",
           "live_rows", "status_html", "consent_sentence", "explain", "when", "next_event", "bursts", "has", "env_summary",
           "lab_rows", "LAB_EXPERIMENTS", "MAX_SAMPLE_HZ", "show_physical_memory", "physical_memory_html", "why_no_maps",
           "show_guest_and_host_maps", "guest_and_host_maps_html"]
