"""The live dashboard's browser view: an anywidget drawing with a vendored uPlot.

The JavaScript is package data (dashboard_assets/): uPlot 1.6.32 from the npm registry
(`npm pack uplot`, MIT, its licence beside it) and dashboard.js, sent to the browser once as the
widget's ES module. The frontend that runs it comes with the `anywidget` wheel's own
labextension, so the view renders offline in JupyterLab, Notebook 7 and VS Code: no CDN and no
build step. After that the kernel sends only new samples and markers (dashboard.py's sender).
"""
from __future__ import annotations

import uuid
from importlib.resources import files
from typing import Any, Callable

import anywidget
import traitlets

_ASSETS = files("reclaimlab.present") / "dashboard_assets"


def _asset(name: str) -> str:
    return (_ASSETS / name).read_text(encoding="utf-8")


class DashboardWidget(anywidget.AnyWidget):
    """Static traits describe the picture (sent once); new data travels as custom messages."""

    _esm = _asset("uPlot.iife.min.js") + "\n" + _asset("dashboard.js")
    _css = _asset("uPlot.min.css")

    uid = traitlets.Unicode().tag(sync=True)
    title = traitlets.Unicode().tag(sync=True)
    x_title = traitlets.Unicode().tag(sync=True)
    y_title = traitlets.Unicode().tag(sync=True)
    series = traitlets.List().tag(sync=True)        # [{label, color, kind}] in the rows' value order
    fonts = traitlets.Dict().tag(sync=True)
    width = traitlets.Int(680).tag(sync=True)
    height = traitlets.Int(300).tag(sync=True)
    hz = traitlets.Float().tag(sync=True)
    window_s = traitlets.Float().tag(sync=True)
    y_max = traitlets.Float(allow_none=True).tag(sync=True)     # the chart's top, in the unit y_title names
    max_rows = traitlets.Int().tag(sync=True)       # the browser's bound, as the kernel's ring
    max_events = traitlets.Int().tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)   # HTML, set on stop or on an error

    def __init__(self, on_backlog: Callable[[], dict[str, Any]], on_close: Callable[[], None], **kw: Any):
        super().__init__(uid=uuid.uuid4().hex, **kw)
        self._on_backlog = on_backlog
        self._on_close = on_close
        self.on_msg(self._handle)

    def _handle(self, _widget: Any, content: Any, _buffers: Any) -> None:
        # A view that starts without data (a reload, a second view) asks for the window so far.
        if isinstance(content, dict) and content.get("kind") == "backlog":
            self.send(self._on_backlog())

    def close(self) -> None:
        """Closing the view stops its dashboard's threads first."""
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()
        super().close()
