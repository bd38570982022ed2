"""The labs' diagrams (labs/img/*.svg): well-formed XML, a <title> (and <desc>) for screen readers,
and nothing fetched from elsewhere, so they render offline, in a static page and on GitHub."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

IMG = Path(__file__).resolve().parents[1] / "labs" / "img"
SVGS = sorted(IMG.glob("*.svg"))
NS = "{http://www.w3.org/2000/svg}"


def test_the_four_diagrams_are_there():
    names = {p.stem for p in SVGS}
    assert {"two_views_of_a_page", "buddy_orders_and_a_pinned_page", "page_cache_between_file_and_process",
            "wsl_reclaim_thread"} <= names


@pytest.mark.parametrize("path", SVGS, ids=[p.name for p in SVGS])
def test_svg_parses_and_is_accessible(path):
    root = ET.parse(path).getroot()
    assert root.tag == f"{NS}svg" and root.get("viewBox"), f"{path.name}: an <svg> root with a viewBox"
    assert root[0].tag == f"{NS}title" and root[0].text and len(root[0].text) > 20, \
        f"{path.name}: the first child must be a <title> that says what the picture shows"
    assert root.find(f"{NS}desc") is not None and len(root.find(f"{NS}desc").text) > 100, f"{path.name}: a <desc>"
    assert root.get("role") == "img" and "title" in (root.get("aria-labelledby") or "")
    text = path.read_text()
    assert not re.search(r"(href|src)=\"(https?:)?//", text), f"{path.name}: loads something from elsewhere"
    assert "<script" not in text and "<foreignObject" not in text


def test_labs_link_diagrams_that_exist():
    for nb in (IMG.parent).glob("[0-9][0-9]_*.ipynb"):
        for ref in re.findall(r"\(img/([^)\s]+\.svg)\)", nb.read_text()):
            assert (IMG / ref).exists(), f"{nb.name} links img/{ref}, which does not exist"


# ------------------------------------------------------------------ the seed story (docs/img/seed-story.svg)

SEED = IMG.parents[1] / "docs" / "img" / "seed-story.svg"


def _seed():
    """The seed story's two lines as {x: (lowest y, highest y)} and a function SVG y -> GB from the axis ticks."""
    root = ET.parse(SEED).getroot()
    by_id = {el.get("id"): el for el in root.iter() if el.get("id")}
    ticks = [(float(t.get("y1")), float(t.get("data-gb"))) for t in by_id["y-ticks"]]
    (y0, g0), (y1, g1) = ticks[0], ticks[-1]
    gb = lambda y: g0 + (y - y0) * (g1 - g0) / (y1 - y0)  # noqa: E731
    bands = {k[5:]: (float(el.get("x")), float(el.get("x")) + float(el.get("width")))
             for k, el in by_id.items() if k.startswith("band-")}
    lines = {}
    for name in ("guest-used", "host-view"):
        pts = [tuple(map(float, p.split(","))) for p in by_id[name].get("points").split()]
        lines[name] = pts
    return lines, gb, bands


def _gb_at(points, x, gb, pick=max):
    """The line's value in GB at x (pick=max/min at a vertical step), by linear interpolation."""
    ys = []
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 == x1 == x:
            ys += [y0, y1]
        elif x0 <= x <= x1 and x0 != x1:
            ys.append(y0 + (y1 - y0) * (x - x0) / (x1 - x0))
    return pick(gb(y) for y in ys)


def test_seed_story_host_holds_at_least_what_processes_use_and_its_gaps_have_the_story_s_sizes():
    """Teaching review: the picture ended with the host below what the guest uses. A host backs at least the
    memory the guest's processes use; the gaps are the labs' quantities: 3 GB touched and reported back
    (lab 01), 1.7 GB of page cache while processes use far less, the seed's "2 GB on the host" (lab 02),
    half of 2 GB freed in holes the host keeps, and compaction returning part of it, not all (lab 03)."""
    lines, gb, bands = _seed()
    guest, host = lines["guest-used"], lines["host-view"]
    xs = sorted({x for x, _ in guest + host})
    assert xs[0] == guest[0][0] == host[0][0] and xs[-1] == guest[-1][0] == host[-1][0]
    for x in xs:
        for pick in (min, max):
            assert _gb_at(host, x, gb, pick) >= _gb_at(guest, x, gb, pick) - 1e-9, f"host below the guest at x={x}"

    def span(band, line, fn):
        lo, hi = bands[band]
        return fn(_gb_at(line, x, gb) for x in xs if lo <= x <= hi)

    # lab 01: touching the 3 GB raises both lines by 3 GB; after free() the host is back where it started
    base_g, base_h = _gb_at(guest, xs[0], gb), _gb_at(host, xs[0], gb)
    assert span("lab01", guest, max) - base_g == pytest.approx(3, abs=0.1)
    assert span("lab01", host, max) - base_h == pytest.approx(3, abs=0.1)
    assert _gb_at(host, bands["lab01"][1], gb) == pytest.approx(base_h, abs=0.05)
    # lab 02: the page cache (1.7 GB) is the gap; the host holds ~2 GB while processes use under 0.5 GB
    lo, hi = bands["lab02"]
    at = [x for x in xs if lo <= x <= hi]
    gap, x_gap = max((_gb_at(host, x, gb) - _gb_at(guest, x, gb), x) for x in at)
    assert gap == pytest.approx(1.7, abs=0.1)
    assert _gb_at(host, x_gap, gb) == pytest.approx(2, abs=0.15) and _gb_at(guest, x_gap, gb) < 0.5
    assert _gb_at(host, hi, gb) == pytest.approx(base_h, abs=0.05), "drop_caches: the cache goes back"
    # lab 03: 2 GB touched, every other page freed (processes use 1 GB less), the host keeps it all; compaction
    # returns part of it: the host ends below its peak, still above what processes use
    lo, hi = bands["lab03"]
    peak_g, peak_h = span("lab03", guest, max), span("lab03", host, max)
    assert peak_g - base_g == pytest.approx(2, abs=0.1)
    end_g, end_h = _gb_at(guest, hi, gb), _gb_at(host, hi, gb)
    assert peak_g - end_g == pytest.approx(1, abs=0.1)
    assert end_g < end_h < peak_h - 0.1
    assert peak_h - end_h < peak_g - end_g, "compaction returns part of the freed memory, not all of it"
