"""Slide metadata for presenting the labs with jupyterlab-rise, derived from each cell's content.

Every cell gets `metadata.slideshow.slide_type`, decided from its content and tags alone (never
from the value it had), so running the tool twice changes nothing and an edited lab gets the
types its new content calls for:

  tagged slide / subslide / fragment / notes / skip / continue   that type ("continue" = "-"):
                                                   an author's override
  tagged instructor                                notes (speaker notes, not on the slide)
  tagged parameters / injected-parameters          skip
  tagged go-further                                skip (off the workshop's path: reclaimlab.notebook.gofurther)
  tagged solution                                  fragment (revealed on the next click)
  markdown starting with "# " or "## "             slide
  markdown starting with "### "                    subslide
  a heading alone whose section is all skipped     skip (e.g. "## Imports" above the imports)
  code of imports only (and comments)              skip
  code calling lab.predict( or lab.question(       fragment (ask first, then reveal)
  anything else                                    "-" (continues the slide above)

The first cell is always a slide. The notebook's `metadata.rise.scroll` is set to true where
unset: the labs' slides hold charts and tables taller than a projector's screen.

jupyterlab-rise 0.43 does not render ipywidgets 8 in its slideshow view (jupyterlab-contrib/rise#119):
there, lab.predict/question and the live dashboard show their text fallback. Present those in
the JupyterLab tab of the same notebook (same kernel), with View > Presentation Mode.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Sequence

SLIDE_TYPES = ("slide", "subslide", "fragment", "-", "skip", "notes")
OVERRIDE_TAGS = {"slide": "slide", "subslide": "subslide", "fragment": "fragment", "notes": "notes",
                 "skip": "skip", "continue": "-"}
SKIP_TAGS = {"parameters", "injected-parameters", "go-further"}
_IMPORT_LINE = re.compile(r"^\s*(import\s|from\s+\S+\s+import\s|#|$)")
_ASKS = re.compile(r"\blab\.(predict|question)\(")
_HEADING = re.compile(r"^(#{1,6})\s")


def _source(cell: Any) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def _tags(cell: Any) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []) or [])


def heading_level(cell: Any) -> int | None:
    """The level of the heading a markdown cell starts with (1 for "# "), else None."""
    if cell.get("cell_type") != "markdown":
        return None
    first = _source(cell).lstrip("\n").split("\n", 1)[0]
    m = _HEADING.match(first)
    return len(m.group(1)) if m else None


def _heading_only(cell: Any) -> bool:
    return heading_level(cell) is not None and len(_source(cell).strip().splitlines()) == 1


def _imports_only(source: str) -> bool:
    lines = source.splitlines()
    return any(line.strip() for line in lines) and all(_IMPORT_LINE.match(line) for line in lines)


def cell_slide_type(cell: Any) -> str:
    """The slide type of one cell on its own (without the look-ahead for heading-only sections)."""
    tags = _tags(cell)
    for tag, kind in OVERRIDE_TAGS.items():
        if tag in tags:
            return kind
    if "instructor" in tags:
        return "notes"
    if tags & SKIP_TAGS:
        return "skip"
    if "solution" in tags:
        return "fragment"
    level = heading_level(cell)
    if level is not None:
        return "slide" if level <= 2 else "subslide" if level == 3 else "-"
    if cell.get("cell_type") == "code":
        source = _source(cell)
        if _imports_only(source):
            return "skip"
        if _ASKS.search(source):
            return "fragment"
    return "-"


def slide_types(cells: Sequence[Any]) -> list[str]:
    """The slide type of every cell, in order."""
    types = [cell_slide_type(c) for c in cells]
    for i, cell in enumerate(cells):
        if types[i] in ("slide", "subslide") and _heading_only(cell) and not _tags(cell) & set(OVERRIDE_TAGS):
            section = []
            for j in range(i + 1, len(cells)):
                if heading_level(cells[j]) is not None:
                    break
                section.append(types[j])
            if section and all(t == "skip" for t in section):
                types[i] = "skip"
    if types and types[0] not in ("slide", "skip"):
        types[0] = "slide"
    return types


def apply(nb: Any) -> int:
    """Set every cell's slide type (and rise.scroll) in a notebook (nbformat node or dict); returns
    how many cells changed."""
    changed = 0
    for cell, kind in zip(nb["cells"], slide_types(nb["cells"])):
        meta = cell.setdefault("metadata", {})
        if meta.get("slideshow", {}).get("slide_type") != kind:
            meta.setdefault("slideshow", {})["slide_type"] = kind
            changed += 1
    nb.setdefault("metadata", {}).setdefault("rise", {}).setdefault("scroll", True)
    return changed


def apply_file(path: str | Path, check: bool = False) -> int:
    """Apply to one .ipynb; writes it only when something changed (never with check=True).
    Returns the number of cells whose type changed (or would change)."""
    import nbformat

    path = Path(path)
    before = path.read_text(encoding="utf-8")
    nb = nbformat.reads(before, as_version=4)
    changed = apply(nb)
    after = nbformat.writes(nb) + "\n"
    if after != before and not check:
        path.write_text(after, encoding="utf-8")
    return changed if after != before else 0


def main(argv: Iterable[str]) -> int:
    """ci/add-slide-metadata [--check] [NOTEBOOK...] (default: labs/*.ipynb)."""
    args = list(argv)
    check = "--check" in args
    paths = [Path(a) for a in args if a != "--check"]
    if not paths:
        from ..paths import labs_dir
        paths = sorted(labs_dir().glob("[0-9]*.ipynb"))
    stale = []
    for path in paths:
        n = apply_file(path, check=check)
        verb = "would change" if check else "changed"
        print(f"{path}: {f'{verb} {n} cell(s)' if n else 'up to date'}")
        if n:
            stale.append(path)
    if check and stale:
        print(f"slide metadata is out of date in {len(stale)} notebook(s); run ci/add-slide-metadata")
        return 1
    return 0
