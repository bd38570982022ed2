"""The labs' "go further" material: cells off the core path, shown collapsed, and the word budget.

A cell tagged `go-further` (metadata "tags") holds what a workshop skips: derivations, kernel internals,
instructor asides, duplicated sections, helper code. Its code still runs (Run All, papermill, CI),
because a later cell may need what it defines. Each run of consecutive go-further cells starts with a
markdown cell that is a heading alone, "#… Go further: <what>", with `"jp-MarkdownHeadingCollapsed":
true` in its metadata: JupyterLab 4 (@jupyterlab/cells MarkdownCell reads that key when it renders
the cell) then hides every cell after the heading up to the next cell whose highest heading is of the
same level or higher (another "Go further" heading of the same level included: two runs in a row fold apart) (@jupyterlab/notebook NotebookActions.findNextParentHeading). So the run must end
where such a heading starts, or at the notebook's end; `problems()` checks that JupyterLab hides
exactly the run. The static site (reclaimlab.publish.site) folds each run into one closed <details>.

Words (the issue-25 budget): whitespace-separated tokens of a markdown cell's source, as written
(links, table rules, HTML tags and fenced code included): what a reader scrolls past. Code cells and
outputs are not counted.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

TAG = "go-further"
COLLAPSED_KEY = "jp-MarkdownHeadingCollapsed"
HEADING_PREFIX = "Go further:"
CORE_BUDGET_WORDS = 7000  # markdown words outside go-further cells, labs 00-05 together
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:\s+(.*?))?\s*#*\s*$")
_HTML_H = re.compile(r"<h([1-6])[\s>]", re.I)
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def source(cell: Any) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def tags(cell: Any) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []) or [])


def is_go_further(cell: Any) -> bool:
    return TAG in tags(cell)


def headings(text: str) -> list[tuple[int, str]]:
    """(level, text) of the markdown headings (ATX "#…" lines and HTML <h1>–<h6>) outside fenced code."""
    found: list[tuple[int, str]] = []
    fence = None
    for line in text.splitlines():
        m = _FENCE.match(line)
        if m:
            if fence is None:
                fence = m.group(1)[0]
            elif m.group(1)[0] == fence:
                fence = None
            continue
        if fence is not None:
            continue
        m = _ATX.match(line)
        if m:
            found.append((len(m.group(1)), (m.group(2) or "").strip()))
        found.extend((int(h), "") for h in _HTML_H.findall(line))
    return found


def heading_level(cell: Any) -> int | None:
    """A markdown cell's heading level as JupyterLab sees it (its highest heading), else None."""
    if cell.get("cell_type") != "markdown":
        return None
    levels = [level for level, _ in headings(source(cell))]
    return min(levels) if levels else None


def words(text: str) -> int:
    return len(text.split())


def markdown_words(nb: Any, *, core_only: bool = True) -> int:
    """Words of markdown in a notebook (dict or NotebookNode); core_only: outside go-further cells."""
    return sum(words(source(c)) for c in nb.get("cells", [])
               if c.get("cell_type") == "markdown" and not (core_only and is_go_further(c)))


def runs(cells: Sequence[Any]) -> list[tuple[int, int]]:
    """(first, last) indices of each run of consecutive go-further cells; a "Go further: …" heading starts a
    new run even right after another (two asides in a row fold apart)."""
    out: list[tuple[int, int]] = []
    for i, cell in enumerate(cells):
        if is_go_further(cell):
            if out and out[-1][1] == i - 1 and not run_title(cell):
                out[-1] = (out[-1][0], i)
            else:
                out.append((i, i))
    return out


def run_title(cell: Any) -> str:
    """The text of a go-further run's heading ("Go further: …"), or "" if the cell is not one."""
    if cell.get("cell_type") != "markdown":
        return ""
    found = headings(source(cell))
    text = found[0][1] if found else ""
    return text if text.startswith(HEADING_PREFIX) else ""


def hidden_by_jupyterlab(cells: Sequence[Any]) -> set[int]:
    """Indices of the cells JupyterLab 4 hides on opening: those under a heading saved collapsed."""
    hidden: set[int] = set()
    for i, cell in enumerate(cells):
        level = heading_level(cell)
        if level is None or not cell.get("metadata", {}).get(COLLAPSED_KEY):
            continue
        j = i + 1
        while j < len(cells):
            other = heading_level(cells[j])
            if other is not None and other <= level:
                break
            hidden.add(j)
            j += 1
    return hidden


def problems(cells: Sequence[Any]) -> list[str]:
    """What breaks the convention, one sentence each (empty: every run collapses as one, nothing else does)."""
    found: list[str] = []
    for first, last in runs(cells):
        head = cells[first]
        if not run_title(head) or len(source(head).strip().splitlines()) != 1:
            found.append(f"cell {first}: a go-further run must start with a markdown cell holding only a heading "
                         f"'## {HEADING_PREFIX} …'")
        elif not head.get("metadata", {}).get(COLLAPSED_KEY):
            found.append(f"cell {first}: set metadata {COLLAPSED_KEY!r}: true so JupyterLab opens it collapsed")
    for i, cell in enumerate(cells):
        if run_title(cell) and not is_go_further(cell):
            found.append(f"cell {i}: a '{HEADING_PREFIX}' heading must be tagged {TAG!r}")
    expected = {i for first, last in runs(cells) for i in range(first + 1, last + 1)}
    hidden = hidden_by_jupyterlab(cells)
    for i in sorted(hidden - expected):
        found.append(f"cell {i}: JupyterLab hides it under a collapsed heading but it is not go-further: "
                     "start the next core part with a heading of the same level or higher")
    for i in sorted(expected - hidden):
        found.append(f"cell {i}: go-further but JupyterLab shows it: a heading inside the run ends the "
                     "collapse; use a lower-level heading there or a higher-level 'Go further' heading")
    return found
