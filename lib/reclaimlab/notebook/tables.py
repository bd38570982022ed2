"""Numbers measured in the recording shown, on the page: small HTML tables and explanatory Markdown."""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from . import output
from .output import escape as _e


def explain(markdown: str) -> None:
    """Display Markdown text. It judges nothing: a sentence about the run is a Claim's (present.claims)."""
    output.display_markdown(markdown)


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
    output.display_html(table_html(rows, header, caption))
