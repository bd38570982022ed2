"""How the lab helpers put things on the page: coloured HTML boxes, HTML and Markdown, widgets.

Outside a notebook (plain Python, no IPython) the HTML is printed as readable text and the
Markdown as it is; without ipywidgets, `widgets()` is None and the helpers show HTML alone.
"""
from __future__ import annotations

import html
from typing import Any

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


def escape(value: Any) -> str:
    """`value` as text safe inside HTML (quotes too)."""
    return html.escape(str(value), quote=True)


def box(kind: str, inner: str) -> str:
    """`inner` (HTML) in a box coloured by `kind`: live, recorded, refused, notice, predict, question, info."""
    color, bg = _COLORS[kind]
    return f'<div class="reclaimlab-{kind}" style="{_BOX.format(color=color, bg=bg)}">{inner}</div>'


def display_html(text: str) -> None:
    """Show HTML in a notebook; print a readable text version in plain Python."""
    try:
        from IPython.display import HTML, display
    except ImportError:  # plain Python: print a readable text version
        import re
        print(html.unescape(re.sub(r"<[^>]+>", " ", text)))
        return
    display(HTML(text))


def display_markdown(markdown: str) -> None:
    """Show Markdown in a notebook; print it as it is in plain Python."""
    try:
        from IPython.display import Markdown, display
    except ImportError:
        print(markdown)
        return
    display(Markdown(markdown))


def widgets() -> Any:
    """The ipywidgets module, or None where it is not installed."""
    try:
        import ipywidgets
        return ipywidgets
    except ImportError:
        return None
