"""The static site's pure parts: what it reads from a lab, what it drops, how it links (reclaimlab.publish.site)."""
from __future__ import annotations

import json
import re

from reclaimlab import paths
from reclaimlab.publish import site
from reclaimlab.notebook import gofurther

WIDGET = {"output_type": "display_data", "metadata": {},
          "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "x"}, "text/plain": ["VBox()"]}}
CHART = {"output_type": "display_data", "metadata": {}, "data": {"image/svg+xml": ["<svg/>"]}}


def _nb(*cells):  # nbformat 4.5 cells carry ids, as the labs' do
    return {"cells": [{"id": f"cell-{i}", **c} for i, c in enumerate(cells)], "metadata": {}, "nbformat": 4,
            "nbformat_minor": 5}


def _md(text, tags=()):
    return {"cell_type": "markdown", "metadata": {"tags": list(tags)}, "source": text}


def test_summary_is_the_first_cell_and_the_overview_list():
    nb = _nb(_md("# 01 · calloc: the story\n\nIntro *text*."),
             _md("## Overview\n\n1. Show that calloc\n   commits nothing.\n2. Watch it.\n\n## Prerequisites\n\n1. no"))
    s = site.summarize("01_x", nb)
    assert (s.title, s.intro_md) == ("01 · calloc: the story", "Intro *text*.")
    assert s.objectives == ["Show that calloc commits nothing.", "Watch it."]


def test_every_shipped_lab_has_a_title_and_objectives():
    for path in sorted(paths.labs_dir().glob(site.LAB_GLOB)):
        s = site.summarize(path.stem, json.loads(path.read_text(encoding="utf-8")))
        assert s.title[:2] == path.stem[:2] and s.intro_md, path.name
        assert s.objectives or path.stem.startswith("00"), f"{path.name}: no numbered list of objectives"


def test_widgets_are_dropped_charts_kept_and_the_input_untouched():
    nb = _nb({"cell_type": "code", "metadata": {}, "source": "", "outputs": [WIDGET, CHART], "execution_count": 1})
    out = site.static_copy(nb)
    assert out["cells"][0]["outputs"] == [CHART] and nb["cells"][0]["outputs"] == [WIDGET, CHART]


def test_solutions_and_instructor_notes_fold():
    assert site.folded(_md("x", ["solution"])) == "Solution"
    assert site.folded(_md("x", ["instructor"])) == "Instructor notes"
    assert site.folded(_md("x")) == ""


def test_links_between_labs_become_links_between_pages():
    text = '<a href="01_calloc.ipynb">a</a> <a href="./02_cache.ipynb#part-2">b</a> <a href="09_none.ipynb">c</a>'
    assert site.rewrite_lab_links(text, {"01_calloc", "02_cache"}) == (
        '<a href="01_calloc.html">a</a> <a href="02_cache.html#part-2">b</a> <a href="09_none.ipynb">c</a>')


def test_the_binder_link_comes_from_the_readme():
    readme = (paths.CHECKOUT / "README.md").read_text(encoding="utf-8")
    assert site.binder_url(readme).startswith("https://mybinder.org/v2/gh/")
    assert site.binder_url("no link") is None


def test_provenance_rows_join_the_index_with_meta():
    entries = [{"path": "calloc-reclaim/r1", "experiment": "calloc-reclaim", "date_utc": "2026-01-01T00:00:00Z"}]
    page = site.provenance_html(entries, {"calloc-reclaim/r1": {"hypervisor": "QEMU TCG", "parameters": {"size": "3GB"}}},
                                [])
    assert "QEMU TCG" in page and "size = 3GB" in page and "data/recordings/calloc-reclaim/r1" in page


def test_a_lab_page_shows_every_chart_form_and_loads_nothing_from_elsewhere():
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    html_img = '<img src="data:image/svg+xml;base64,PHN2Zy8+" alt="chart">'
    outputs = [CHART, {"output_type": "display_data", "metadata": {}, "data": {"text/html": [html_img]}},
               {"output_type": "display_data", "metadata": {}, "data": {"image/png": png}}, WIDGET]
    nb = _nb(_md("# 01 · t\n\nx"), {"cell_type": "code", "metadata": {}, "source": "charts.x()", "outputs": outputs,
                                    "execution_count": 1}, _md("**Solution.** (b)", ["solution"]))
    summaries = [site.summarize("01_t", nb)]
    page = site.lab_html(nb, "01_t", summaries, "2026-01-01 00:00 UTC")
    srcs = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert srcs == ["data:image/svg+xml;base64,PHN2Zy8+", "data:image/svg+xml;base64,PHN2Zy8+",
                    f"data:image/png;base64,{png}"]  # the SVG output, the HTML <img> as it was, the PNG
    assert '<details class="folded"><summary>Solution</summary>' in page and "widget-view" not in page
    assert "<script src=" not in page and "cdn" not in page.lower()


def test_a_paragraph_after_the_overview_list_is_not_an_objective():
    s = site.summarize("00_x", _nb(_md("# 00 · x"), _md("## Overview\n\n1. One\n2. Two\n\n**Who it is for.** Everyone.")))
    assert s.objectives == ["One", "Two"]


def test_links_to_the_docs_point_where_the_site_has_them():
    text = ('<a href="../docs/glossary.md#order">order</a> <a href="../docs/glossary.md">glossary</a> '
            '<img src="../docs/img/seed-story.svg"> <img src="img/two_views_of_a_page.svg">')
    assert site.rewrite_doc_links(text) == ('<a href="glossary.html#order">order</a> <a href="glossary.html">glossary'
                                            '</a> <img src="img/seed-story.svg"> <img src="img/two_views_of_a_page.svg">')


def test_a_go_further_run_is_one_closed_details_with_its_code_inside():
    heading = _md("## Go further: the helper", ["go-further"])
    heading["metadata"]["jp-MarkdownHeadingCollapsed"] = True
    code = {"cell_type": "code", "metadata": {"tags": ["go-further"]}, "source": "def helper(): pass",
            "outputs": [{"output_type": "stream", "name": "stdout", "text": "HELPER-OUT\n"}], "execution_count": 1}
    nb = _nb(_md("# 01 · t\n\nx"), heading, code, _md("more detail", ["go-further"]), _md("## 2. Back on the path"))
    page = site.lab_html(nb, "01_t", [site.summarize("01_t", nb)], "2026-01-01 00:00 UTC")
    start = page.index('<details class="folded go-further"><summary>Go further: the helper</summary>')
    end = page.index("</details>", start)
    assert "def" in page[start:end] and "HELPER-OUT" in page[start:end] and "more detail" in page[start:end]
    assert "Back on the path" in page[end:] and page.count("Go further: the helper") == 1
    assert site.SITE_KEY not in nb["cells"][1]["metadata"]  # the marks go on the static copy only


def test_every_go_further_run_of_the_shipped_labs_is_marked_to_fold():
    for path in sorted(paths.labs_dir().glob(site.LAB_GLOB)):
        nb = json.loads(path.read_text(encoding="utf-8"))
        cells = site.static_copy(nb)["cells"]
        opens = [c["metadata"][site.SITE_KEY]["open"] for c in cells if c["metadata"].get(site.SITE_KEY, {}).get("open")]
        closes = sum(bool(c["metadata"].get(site.SITE_KEY, {}).get("close")) for c in cells)
        assert len(opens) == closes == len(gofurther.runs(nb["cells"])), path.name
        assert all(o.startswith("Go further: ") for o in opens), (path.name, opens)
