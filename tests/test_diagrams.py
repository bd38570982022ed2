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
