"""How a chart reaches the page: an <img> of its SVG with alt text (shown in untrusted notebooks,
nbconvert's HTML and offline), never bare image/svg+xml (JupyterLab refuses that untrusted)."""
from __future__ import annotations

import base64
import html
import re

import altair as alt
import pandas as pd
import pytest

from reclaimlab.present import charts
from reclaimlab.recording.recording import Recording


@pytest.fixture()
def offline():
    before = alt.renderers.active
    charts.use_offline_renderer()
    yield
    alt.renderers.enable(before)


def _rec() -> Recording:
    t = [0.0, 1.0, 2.0, 3.0]
    samples = pd.DataFrame({"t_s": t, "anon_kib": [1e5, 3e6, 3e6, 1e5], "cached_kib": [5e5] * 4,
                            "mem_free_kib": [2e7, 1.7e7, 1.7e7, 2e7]})
    events = pd.DataFrame({"t_s": [1.0, 2.5], "kind": ["touch", "free"], "detail": ["", ""]})
    return Recording(samples, events=events, meta={"experiment": "calloc-reclaim"})


def _img(bundle: dict) -> tuple[str, str]:
    m = re.fullmatch(r'<img class="reclaimlab-chart" src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)" '
                     r'alt="([^"]*)" width="[\d.]+" height="[\d.]+">', bundle["text/html"])
    assert m, bundle["text/html"][:200]
    return base64.b64decode(m.group(1)).decode("utf-8"), html.unescape(m.group(2))


def test_a_chart_is_an_img_of_its_svg_with_alt_text(offline):
    chart = charts.lines(_rec(), {"anon_kib": "Anonymous", "cached_kib": "Page cache"}, "What the guest holds")
    bundle = chart._repr_mimebundle_()
    bundle = bundle[0] if isinstance(bundle, tuple) else bundle
    assert set(bundle) == {"text/html", "text/plain"}  # no image/svg+xml: JupyterLab refuses it untrusted
    svg, alt_text = _img(bundle)
    assert svg.startswith("<svg") and "What the guest holds" in svg
    assert alt_text == bundle["text/plain"]
    assert alt_text.startswith("Line chart: What the guest holds.")
    assert "Horizontal axis: time (s)" in alt_text and "vertical axis: MiB" in alt_text
    assert "Series: Anonymous, Page cache." in alt_text
    assert "Dashed vertical lines mark the experiment's steps." in alt_text


def test_alt_text_names_only_the_series_the_chart_shows(offline):
    chart = charts.stacked_memory(_rec(), include_free=False)
    text = charts.describe(chart.to_dict())
    assert text.startswith("Stacked area chart: ")
    assert "Anonymous (AnonPages)" in text and "Page cache (Cached + Buffers)" in text
    assert "Free (MemFree)" not in text  # left out of the chart, so out of its description
    assert "Reclaimable slab" not in text  # the recording has no such column


def test_a_chart_made_in_a_notebook_renders_the_same_way(offline):
    chart = alt.Chart(pd.DataFrame({"touch": ["first", "cold"], "GB/s": [0.4, 0.4]}),
                      title="Speed of each touch").mark_bar().encode(x="touch:N", y="GB/s:Q")
    bundle = chart._repr_mimebundle_()
    bundle = bundle[0] if isinstance(bundle, tuple) else bundle
    svg, alt_text = _img(bundle)
    assert alt_text.startswith("Bar chart: Speed of each touch.") and "Horizontal axis: touch" in alt_text


def _shipped_recordings():
    from pathlib import Path
    from reclaimlab.recording.recording import load
    root = Path(__file__).resolve().parents[1] / "data" / "recordings"
    return [load(p) for p in sorted(root.glob("*/*/")) if p.is_dir()]


@pytest.mark.parametrize("rec", _shipped_recordings(), ids=lambda r: r.meta.get("experiment", "?"))
def test_step_labels_of_every_shipped_recording_never_overlap_and_none_is_left_off(rec):
    ev = rec.events[rec.events["kind"] != "note"]
    if ev.empty:
        pytest.skip("no steps")
    x_domain = charts._x_domain(rec, rec.samples["t_s"])
    placed = charts.event_label_rows(charts._event_labels(ev), x_domain, 640, 10)
    assert (placed["row"] >= 0).all(), placed[placed["row"] < 0]
    for _, row in placed.groupby("row"):
        spans = sorted(zip(row["x0_px"], row["x1_px"]))
        assert all(b <= c for (_, b), (c, _) in zip(spans, spans[1:])), spans


def test_close_steps_go_to_separate_rows_and_repeats_are_labelled_once():
    events = pd.DataFrame({"t_s": [1.0, 1.01, 1.02] + [10.0 + i for i in range(5)],
                           "kind": ["calloc", "touch", "free"] + ["reclaim"] * 5, "detail": [""] * 8})
    labels = charts._event_labels(events)
    assert list(labels["label"]) == ["calloc", "touch", "free", "reclaim ×5"]
    placed = charts.event_label_rows(labels, (0.0, 20.0), 640, 10)
    assert list(placed["row"]) == [0, 1, 2, 0]


def test_a_panel_draws_its_columns_on_their_own_scale_below(offline):
    rec = _rec()
    chart = charts.lines(rec, {"cached_kib": "cache"}, title="t", panel={"mem_free_kib": "free"})
    spec = chart.to_dict()
    assert len(spec["vconcat"]) == 2 and spec["resolve"]["scale"]["y"] == "independent"
