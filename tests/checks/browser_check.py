#!/usr/bin/env python3
"""Real-browser check: every lab runs in JupyterLab in Debian's chromium and renders for a participant.

    pytest -m browser  (tests/checks/test_check_browser.py), or on its own:
    python tests/checks/browser_check.py [--port N] [--only 01] [--timeout-s 300] [--no-dashboard] [--no-untrusted] [--self-test]
                     [--labs-executed-since EPOCH_S]
                     (chromium from ci/setup-browser, playwright from the `browser` extra)

What it does, and why:
- Copies labs/[0-9]*.ipynb to build/browser/labs and serves build/browser only, so no output is
  ever saved back into labs/. In each copy a cell is added after the `parameters` cell that sets
  mode = "recorded" (as papermill would inject it), and RECLAIMLAB_MODE=recorded is in the
  server's environment: the check renders the shipped recordings, never touches this machine's
  memory, and takes the same time everywhere.
- Starts JupyterLab on 127.0.0.1 at a fixed port with --ServerApp.port_retries=0 (a server still
  closing on that port would otherwise make the new one move silently), a token, --allow-root,
  and its own settings (notebook windowing off, so every cell is in the DOM to be checked).
- Drives /usr/bin/chromium headless through Playwright (executable_path: Playwright's own browser
  download fails here). For each lab: open it, wait for the kernel's idle status, Run All Cells
  from the Run menu (retried once: on a just-started server the first one can be ignored), wait
  until every code cell has an execution count and the kernel is idle, save the copy, then check:
  every cell ran without an error output; every SVG chart output shows a loaded image or an svg
  (an offline failure is blank, with no error text); every lab.predict / lab.question cell shows
  its widgets; no "Error displaying widget", "JavaScript Error" or "Error rendering output item".
- A generated notebook (build/browser/labs/dashboard_check.ipynb) starts the live dashboard and
  then sleeps in another cell: the figures' time and sample count, and the chart the browser drew
  on its canvas (not blank), must change between two reads 1.5 s apart while that cell runs. Its
  page has the network blocked (every request not to 127.0.0.1 is aborted and named): the chart's
  JavaScript must come from the installed packages, never a CDN.
- Solutions stay shut: every cell tagged `solution` shows only its <summary> (no more text) after
  Run All, and opening one shows its text.
- Collapsed code stays collapsed: every code cell meant to be collapsed by default (metadata
  `jupyter.source_hidden`, or a `hide-input` tag, which JupyterLab ignores) shows JupyterLab 4's
  collapsed-input placeholder (`.jp-InputPlaceholder`, the input area taken out of the page) and
  no editor with its source after Run All.
- Untrusted: every lab executed by papermill (recorded mode, build/browser/untrusted/) is opened
  from disk WITHOUT running it, as a learner opens an executed copy later: JupyterLab does not
  trust it (the check asserts that), so it refuses image/svg+xml. Every chart in the file must
  render as an image (nonzero natural size), none may show as its text (`alt.Chart(...)`), and the
  solutions must be shut. Cells under a "Go further" heading saved collapsed are hidden on the page
  (exactly those: reclaimlab.notebook.gofurther), and their charts are not counted (the site check
  loads them).
- First, notebooks of planted failures (a blank SVG, a chart that needs a CDN, a widget whose
  model is missing, an exception, a solution hidden only by metadata, code collapsed only by a
  `hide-input` tag; untrusted: a chart as
  image/svg+xml, a chart image that does not load, a solution left open) must be reported, each
  of them: a check that cannot fail proves nothing. --self-test runs only those notebooks.
- One notebook is checked at a time, while the next one's page loads (JupyterLab and its kernel start,
  ~4 s) once the current kernel is idle. Each notebook's line in the log says where its time went.
- Screenshots: build/screenshots/<lab>.png, the whole notebook (one taller than chromium can
  capture at once continues in <lab>-2.png, ...). The server's log: build/browser/jupyterlab.log.
- Cleans up on success, failure and Ctrl-C: kernels, the server (and any kernel it left), chromium.
Exit status 0 when everything passed; 1 with one line per failure naming the lab and what failed.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "browser"
SHOTS = ROOT / "build" / "screenshots"
CHROMIUM = Path(os.environ.get("RECLAIMLAB_CHROMIUM", "/usr/bin/chromium"))
DEFAULT_PORT = 18765
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--disable-extensions"]
ERROR_TEXTS = ("Error displaying widget", "JavaScript Error", "Error rendering output item")
DASHBOARD_NB = "dashboard_check.ipynb"
VIEWPORT = {"width": 1280, "height": 900}
MAX_SCREENSHOT_PX = 16000  # chromium's limit for one capture


class CheckFailed(Exception):
    """A failure that stops the check of one lab (the others still run)."""


@dataclass
class LabResult:
    name: str
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    laps: list[tuple[str, float]] = field(default_factory=list)  # (step, seconds): where the time went
    _lap_t: float = field(default_factory=time.monotonic, repr=False)
    charts: int = 0
    widgets: int = 0
    solutions: int = 0
    collapsed: int = 0

    def fail(self, what: str) -> None:
        self.failures.append(what)

    def lap(self, step: str) -> None:
        now = time.monotonic()
        self.laps.append((step, now - self._lap_t))
        self._lap_t = now

    def timing(self) -> str:
        return ", ".join(f"{step} {s:.1f}" for step, s in self.laps)


def log(msg: str) -> None:
    print(f"[browser-check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------- the notebooks


def inject_recorded_mode(nb: dict) -> None:
    """Add `mode = "recorded"` after the parameters cell (as papermill's injected-parameters)."""
    cells = nb["cells"]
    at = next((i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if at is None:
        return  # a lab without parameters runs nothing live
    cells.insert(at + 1, {"cell_type": "code", "execution_count": None, "id": "browser-check-mode",
                          "metadata": {"tags": ["injected-parameters"]}, "outputs": [],
                          "source": 'mode = "recorded"  # injected by tests/checks/browser_check.py: render the shipped recordings'})


def dashboard_notebook() -> dict:
    cells = [
        ("from reclaimlab.present import dashboard\n"
         "dash = dashboard.show(hz=4, window_s=30)\n"
         "_ = dash.mark(\"start\")"),
        ("import time\n"
         "time.sleep(8)  # the browser check reads the dashboard twice while this cell runs\n"
         "_ = dash.mark(\"slept 8 s\")"),
        "dash.latest()[\"t_s\"]",
    ]
    return {"cells": [{"cell_type": "code", "execution_count": None, "id": f"dash-{i}", "metadata": {},
                       "outputs": [], "source": src} for i, src in enumerate(cells)],
            "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                                        "name": "python3"}},
            "nbformat": 4, "nbformat_minor": 5}


SELF_TEST_NB = "selftest_broken.ipynb"
SELF_TEST_EXPECTED = {  # what the check must report on the self-test notebook
    "blank SVG": "an SVG chart output is blank",
    "CDN chart": "a chart needs JavaScript",
    "missing widget": "'Error displaying widget'",
    "error output": "raised ZeroDivisionError",
    "solution hidden only by metadata (Run All shows it)": "is visible before the learner opens it",
    "code collapsed only by a hide-input tag (JupyterLab shows it)": "shows its source after Run All",
}
UNTRUSTED = "untrusted"  # executed copies opened without running them
SELF_TEST_UNTRUSTED_NB = "selftest_untrusted.ipynb"
SELF_TEST_UNTRUSTED_EXPECTED = {
    "chart as image/svg+xml": "shows as its text",
    "chart image that does not load": "did not load",
    "solution left open": "is visible before the learner opens it",
}
# What JupyterLab shows for a chart it refuses to render: altair's text/plain.
CHART_AS_TEXT = re.compile(r"^\s*(alt\.\w*Chart\(\.\.\.\)|<\w*Chart[^>]*>)")
SOLUTION_TEXT = "The planted solution: its text must not show until the learner opens it."


def self_test_notebook() -> dict:
    """A notebook with one of each failure the check exists to catch."""
    cells = [
        "from IPython.display import display\n"
        "display({'image/svg+xml': \"<svg xmlns='http://www.w3.org/2000/svg' width='0' height='0'></svg>\"}, raw=True)",
        "import altair as alt, pandas as pd\nalt.renderers.enable('html')  # JavaScript from a CDN: blank offline\n"
        "alt.Chart(pd.DataFrame({'x': [1, 2]})).mark_point().encode(x='x:Q')",
        "display({'application/vnd.jupyter.widget-view+json': {'model_id': 'no-such-model', 'version_major': 2,"
        " 'version_minor': 0}, 'text/plain': 'a widget'}, raw=True)",
        "1 / 0",
    ]
    nb = dashboard_notebook()
    nb["cells"] = [{"cell_type": "code", "execution_count": None, "id": f"broken-{i}", "metadata": {},
                    "outputs": [], "source": src} for i, src in enumerate(cells)]
    # Hidden by metadata only: shut when opened, but Run All un-hides every markdown cell it runs.
    nb["cells"].insert(0, {"cell_type": "markdown", "id": "broken-solution", "source": SOLUTION_TEXT,
                           "metadata": {"tags": ["solution"], "jupyter": {"source_hidden": True}}})
    # Collapsed the Jupyter Book way (a tag JupyterLab ignores): its source shows. Next to it one
    # collapsed as JupyterLab reads it, which must pass. Both before the exception, so both run.
    nb["cells"][1:1] = [{"cell_type": "code", "execution_count": None, "id": f"broken-collapsed-{i}", "metadata": meta,
                     "outputs": [], "source": f"planted_{i} = 'collapsed {how}'"}
                    for i, (how, meta) in enumerate([("by a tag only", {"tags": ["hide-input"]}),
                                                     ("by metadata", {"jupyter": {"source_hidden": True}})])]
    return nb


def self_test_untrusted_notebook() -> dict:
    """An executed notebook, written as a file (so nobody signed it), with one of each failure the
    untrusted stage exists to catch."""
    svg = "<svg xmlns='http://www.w3.org/2000/svg' width='200' height='100'><rect width='200' height='100' fill='#1f77b4'/></svg>"
    outputs = [
        {"image/svg+xml": svg, "text/plain": "alt.Chart(...)"},  # what altair's "svg" renderer gives
        {"text/html": '<img class="reclaimlab-chart" src="data:image/svg+xml;base64,bm90IGFuIHN2Zw==" alt="a chart">',
         "text/plain": "a chart"},
    ]
    cells = [{"cell_type": "code", "execution_count": i + 1, "id": f"untrusted-{i}", "metadata": {},
              "outputs": [{"output_type": "display_data", "data": data, "metadata": {}}], "source": f"chart_{i}"}
             for i, data in enumerate(outputs)]
    cells.append({"cell_type": "markdown", "id": "untrusted-solution", "metadata": {"tags": ["solution"]},
                  "source": f"**Solution.** {SOLUTION_TEXT}"})
    nb = dashboard_notebook()
    nb["cells"] = cells
    return nb


def is_chart_output(output: dict) -> bool:
    """An output of the executed file that is a chart (ours, altair's SVG, or a Vega embed)."""
    data = output.get("data", {})
    html = data.get("text/html", "")
    html = "".join(html) if isinstance(html, list) else html
    return ("image/svg+xml" in data or 'class="reclaimlab-chart"' in html
            or any(m.startswith("application/vnd.vegalite") for m in data))


def execute_for_untrusted(labs: list[Path], self_test: bool = True, executed_since: float | None = None) -> list[Path]:
    """Executed copies in build/browser/untrusted: each lab run by papermill in recorded mode (as
    `reclaimlab labs --mode recorded` does), and the planted failures first. With executed_since, the
    copies `reclaimlab labs --mode recorded` wrote into build/labs/recorded/ after that time (`tasks.py
    test` executes them once per pytest session, the labs check among the first) are taken instead of executing the labs again."""
    from reclaimlab.cli import labs as cli_labs
    out_dir = BUILD / UNTRUSTED
    made = cli_labs.executed_dir(ROOT / "labs", "recorded")
    reuse = executed_since is not None and cli_labs.executed_since(labs, made, executed_since)
    if executed_since is not None:
        log(f"untrusted stage: the executed copies in {made.relative_to(ROOT)}/ are from this run: opened as they are"
            if reuse else f"untrusted stage: not every lab has an executed copy from this run in "
                          f"{made.relative_to(ROOT)}/: executing them")
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    out = []
    if self_test:
        planted = out_dir / SELF_TEST_UNTRUSTED_NB
        planted.write_text(json.dumps(self_test_untrusted_notebook(), indent=1) + "\n", encoding="utf-8")
        out.append(planted)
    for lab in labs:
        if reuse:
            shutil.copy2(made / lab.name, out_dir / lab.name)
            out.append(out_dir / lab.name)
            continue
        seconds, size = cli_labs.execute_lab(lab, out_dir, "recorded")
        log(f"{lab.stem}: executed by papermill for the untrusted stage in {seconds:.0f} s ({size / 1e6:.2f} MB)")
        out.append(out_dir / lab.name)
    return out


def prepare(labs: list[Path], dashboard: bool = True, self_test: bool = True) -> list[Path]:
    """Fresh build/browser: the notebooks to check (the self-test first, the copies of the labs with
    their mode injected, the dashboard notebook) and JupyterLab's settings."""
    for sub in ("labs", "docs", UNTRUSTED, "settings", "workspaces", "config", "runtime", "chromium-profile"):
        shutil.rmtree(BUILD / sub, ignore_errors=True)
    shutil.rmtree(SHOTS, ignore_errors=True)  # no stale picture of a lab that was renamed or failed earlier
    (BUILD / "labs").mkdir(parents=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    out = []
    if self_test:  # first: a check that cannot see these failures must not pass the labs
        broken = BUILD / "labs" / SELF_TEST_NB
        broken.write_text(json.dumps(self_test_notebook(), indent=1) + "\n", encoding="utf-8")
        out.append(broken)
    for lab in labs:
        nb = json.loads(lab.read_text(encoding="utf-8"))
        inject_recorded_mode(nb)
        dest = BUILD / "labs" / lab.name
        dest.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        out.append(dest)
    for sub in ("labs/img", "labs/solutions", "docs"):  # what the labs show, %load and link, where they expect it
        if (ROOT / sub).is_dir():
            shutil.copytree(ROOT / sub, BUILD / sub, dirs_exist_ok=True)
    if dashboard:
        dash = BUILD / "labs" / DASHBOARD_NB
        dash.write_text(json.dumps(dashboard_notebook(), indent=1) + "\n", encoding="utf-8")
        out.append(dash)
    settings = BUILD / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # Windowing off: every cell stays in the DOM, so every output can be checked and screenshot.
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    # No "get notified about Jupyter news?" toast over the screenshots, no update check (no network).
    notify = BUILD / "settings" / "@jupyterlab" / "apputils-extension"
    notify.mkdir(parents=True)
    (notify / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    return out


# --------------------------------------------------------------------------- the server


class Server:
    """JupyterLab on 127.0.0.1:port, in its own process group; stop() ends it and its kernels."""

    def __init__(self, port: int):
        self.port = port
        self.token = secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None
        self.log_path = BUILD / "jupyterlab.log"

    def start(self, timeout_s: float = 90.0) -> None:
        if not port_free(self.port):
            raise SystemExit(f"browser check: port {self.port} on 127.0.0.1 is in use (a server still closing, "
                             f"or another check); wait, or pass --port")
        env = dict(os.environ, RECLAIMLAB_MODE="recorded", JUPYTER_CONFIG_DIR=str(BUILD / "config"),
                   JUPYTER_RUNTIME_DIR=str(BUILD / "runtime"), PYTHONUNBUFFERED="1")
        cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={BUILD}",
               f"--LabApp.user_settings_dir={BUILD / 'settings'}", f"--LabApp.workspaces_dir={BUILD / 'workspaces'}",
               "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        self.proc = subprocess.Popen(cmd, cwd=BUILD, env=env, stdout=self.log_path.open("w"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"browser check: JupyterLab exited at start (status {self.proc.returncode}); "
                                 f"its log, {self.log_path}, ends with:\n{tail(self.log_path)}")
            try:
                self.api("GET", "/api/status")
                return
            except OSError:
                time.sleep(0.5)
        raise SystemExit(f"browser check: JupyterLab did not answer on {self.base} within {timeout_s:.0f} s; "
                         f"see {self.log_path}:\n{tail(self.log_path)}")

    def api(self, method: str, path: str, timeout_s: float = 10.0):
        req = urllib.request.Request(f"{self.base}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self, nb_path: Path | None = None) -> None:
        """Every kernel, or only those of nb_path's sessions (the next notebook's kernel may be starting)."""
        try:
            if nb_path is None:
                for k in self.api("GET", "/api/kernels") or []:
                    self.api("DELETE", f"/api/kernels/{k['id']}", timeout_s=30)
                return
            rel = nb_path.relative_to(BUILD).as_posix()
            for sess in self.api("GET", "/api/sessions") or []:
                if sess.get("path") == rel:
                    self.api("DELETE", f"/api/sessions/{sess['id']}", timeout_s=30)
        except (OSError, ValueError):
            pass  # the server is gone already; stop() ends what it left

    def stop(self) -> None:
        if self.proc is None:
            return
        self.shutdown_kernels()
        pid = self.proc.pid
        if self.proc.poll() is None:
            os.killpg(pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(pid, signal.SIGKILL)
                self.proc.wait(5)
        # Kernels run in sessions of their own; any this server started and left is ended by its id.
        for kernel_pid in children_by_parent_env(pid):
            try:
                os.kill(kernel_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc = None


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As the server binds (SO_REUSEADDR): connections in TIME-WAIT do not count, a listener does.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def children_by_parent_env(server_pid: int) -> list[int]:
    """Processes whose environment says JPY_PARENT_PID=server_pid: the server's kernels."""
    marker = f"JPY_PARENT_PID={server_pid}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------- the page

PAGE_STATE_JS = """() => {
  const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
  if (!nb) return null;
  const ind = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
  const cells = [...nb.querySelectorAll('.jp-Cell')].map(cell => {
    const prompt = cell.querySelector('.jp-InputPrompt');
    const outputs = [...cell.querySelectorAll('.jp-OutputArea-output')].map(o => ({
      mime: o.getAttribute('data-mime-type') || '',
      imgs: [...o.querySelectorAll('img')].map(i => ({ok: i.complete && i.naturalWidth > 0 && i.naturalHeight > 0,
                                                     svg: (i.src || '').startsWith('data:image/svg') || (i.src || '').startsWith('blob:')})),
      svgs: [...o.querySelectorAll('svg')].filter(s => s.getBoundingClientRect().width > 20).length,
      canvases: o.querySelectorAll('canvas').length,
      // ipywidgets 8 puts .jupyter-widgets on some views only (a RadioButtons is .widget-radio).
      widgets: o.querySelectorAll('.jupyter-widgets, [class*="widget-"]').length ? 1 : 0,
      text: (o.innerText || '').slice(0, 300),
      vega: /vega/i.test(o.innerHTML || ''),
      height: o.getBoundingClientRect().height,
    }));
    const summary = cell.querySelector('.jp-RenderedMarkdown summary');
    // A collapsed input: JupyterLab 4 takes the input area (editor and all) out of the page and puts
    // a .jp-InputPlaceholder (its own empty prompt, the source's first line) in its place.
    const editor = cell.querySelector('.jp-Cell-inputArea .jp-InputArea-editor');
    // Hidden under a collapsed heading (a "Go further" run): Lumino hides the cell widget; innerText of a
    // hidden element is its whole text, so what it "shows" is nothing.
    const hidden = cell.classList.contains('lm-mod-hidden') || cell.classList.contains('jp-mod-hidden');
    return {code: cell.classList.contains('jp-CodeCell'), prompt: prompt ? prompt.textContent.trim() : '', hidden,
            live: !!cell.querySelector('.reclaimlab-dashboard'),
            collapsed: !!cell.querySelector('.jp-InputPlaceholder'),
            editor: !!editor && editor.getBoundingClientRect().height > 0,
            outputs, text: (cell.querySelector('.jp-Cell-outputArea') || {innerText: ''}).innerText || '',
            // what a markdown cell shows: innerText leaves out a closed <details> but its <summary>
            shown: cell.classList.contains('jp-MarkdownCell') && !hidden ? (cell.innerText || '') : '',
            summary: summary ? (summary.innerText || '') : ''};
  });
  const bar = document.querySelector('.jp-StatusBar-Widget');
  const dialogs = [...document.querySelectorAll('.jp-Dialog')].map(d => (d.innerText || '').replace(/\\s+/g, ' ').slice(0, 200));
  return {status: ind ? ind.getAttribute('data-status') : null, cells, bar: bar ? bar.innerText : '', dialogs};
}"""

DASHBOARD_JS = """() => {
  const f = document.querySelector('.reclaimlab-dashboard-figures');
  const c = document.querySelector('.reclaimlab-dashboard canvas');
  let hash = null, inked = 0;
  if (c && c.width > 0 && c.height > 0) {
    const url = c.toDataURL();
    let h = 0;
    for (let i = 0; i < url.length; i++) h = (h * 31 + url.charCodeAt(i)) | 0;
    hash = h + ':' + url.length;
    const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < px.length; i += 4) if (px[i + 3] > 0 && (px[i] < 250 || px[i + 1] < 250 || px[i + 2] < 250)) inked++;
  }
  return {t_s: f && f.dataset.tS ? parseFloat(f.dataset.tS) : null, samples: f ? parseInt(f.dataset.samples) : null,
          points: f ? parseInt(f.dataset.points) : null, frames: f ? parseInt(f.dataset.frame) : null,
          canvas: hash, inked, figures: f ? (f.innerText || '') : ''};
}"""


def block_network(page, blocked: list[str]) -> None:
    """Abort every request that is not to this machine's server; name each in `blocked`.

    Only those reach the handler (the pattern): Playwright's sync API runs a handler only while
    the check calls into it, so routing the server's own requests through one would stall them
    (a save, a kernel message) whenever the check sleeps."""
    def abort(r) -> None:
        blocked.append(r.request.url)
        r.abort()
    page.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/])"), abort)


class LabPage:
    """One lab opened in its own page."""

    def __init__(self, context, server: Server, nb_path: Path, timeout_s: float):
        self.server = server
        self.nb_path = nb_path
        self.timeout_s = timeout_s
        self.page = context.new_page()
        self.page_errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))
        self.blocked: list[str] = []  # the dashboard's page: requests off this machine, aborted
        if nb_path.name == DASHBOARD_NB:
            block_network(self.page, self.blocked)
        self.begun = False

    def state(self) -> dict:
        st = self.page.evaluate(PAGE_STATE_JS)
        if st is None:
            raise CheckFailed("the notebook is not on the page")
        return st

    def begin(self) -> None:
        """Start loading the notebook: JupyterLab boots in the page and starts its kernel meanwhile."""
        if self.begun:
            return
        self.begun = True
        rel = self.nb_path.relative_to(BUILD).as_posix()
        # ?reset: no workspace restored (it would reopen the previous lab and start its kernel too).
        self.page.goto(f"{self.server.base}/lab/tree/{rel}?reset&token={self.server.token}",
                       wait_until="domcontentloaded", timeout=90_000)

    def open(self) -> None:
        self.begin()
        self.page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=90_000)
        # The toolbar's indicator says "idle" before any kernel exists (the status bar then reads
        # "No Kernel | Initializing") and Run All Cells is lost: wait for the kernel's own Idle and
        # for every cell of the file to be on the page.
        n_cells = len(json.loads(self.nb_path.read_text(encoding="utf-8"))["cells"])
        self.wait_for(lambda st: kernel_idle(st) and len(st["cells"]) == n_cells, 90,
                      f"the kernel's Idle status and all {n_cells} cells")

    def wait_for(self, predicate, timeout_s: float, what: str) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            st = self.state()
            if predicate(st):
                return st
            if time.monotonic() > deadline:
                raise CheckFailed(f"timed out after {timeout_s:.0f} s waiting for {what} "
                                  f"(kernel status {st['status']!r}; {progress(st)})")
            time.sleep(0.5)

    def run_all(self) -> None:
        for attempt in (1, 2):
            self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
            self.page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
            try:
                self.wait_for(started, 20, "Run All Cells to start a cell")
                return
            except CheckFailed:
                dialogs = self.state()["dialogs"]
                said = f" (a dialog says: {' | '.join(dialogs)})" if dialogs else ""
                if attempt == 2:
                    raise CheckFailed(f"Run All Cells was ignored twice: no cell got an execution count or [*]{said}")
                log(f"{self.nb_path.name}: Run All Cells was ignored{said}; trying once more")
                self.page.keyboard.press("Escape")

    def wait_done(self) -> dict:
        # Done: the kernel is idle and nothing is queued ([*]). After an error the rest of the
        # queue is dropped and those cells stay [ ]: check_saved() then names the error.
        return self.wait_for(lambda st: kernel_idle(st) and started(st) and not queued(st), self.timeout_s,
                             "every code cell to run")

    def save(self) -> None:
        before = self.nb_path.stat().st_mtime_ns
        self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").first.click(position={"x": 5, "y": 5})
        self.page.keyboard.press("Escape")
        self.page.keyboard.press("Control+s")
        deadline = time.monotonic() + 30
        while self.nb_path.stat().st_mtime_ns == before:
            if time.monotonic() > deadline:
                raise CheckFailed("saving the executed copy (Ctrl+S) did not write it within 30 s")
            time.sleep(0.3)
        time.sleep(0.5)  # the write is not atomic on every server; let it finish

    def screenshot(self, dest: Path) -> list[Path]:
        """The whole notebook: the window grown to its height (<lab>.png); a notebook taller than
        one capture continues in <lab>-2.png, <lab>-3.png, ..."""
        outer = ("document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer')"
                 " || document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook')")
        height = self.page.evaluate(f"() => {{ const n = {outer}; return n ? n.scrollHeight : 0; }}")
        chrome_px = 160  # menu bar, tab bar, toolbar, status bar
        window_px = max(VIEWPORT["height"], min(height + chrome_px, MAX_SCREENSHOT_PX))
        self.page.set_viewport_size({"width": VIEWPORT["width"], "height": window_px})
        time.sleep(1.0)  # let the layout settle at the new size
        shots, top = [], 0
        while True:
            self.page.evaluate(f"() => {{ const n = {outer}; if (n) n.scrollTop = {top}; }}")
            time.sleep(0.3)
            shot = dest if not shots else dest.with_name(f"{dest.stem}-{len(shots) + 1}{dest.suffix}")
            self.page.screenshot(path=str(shot))
            shots.append(shot)
            top += window_px - chrome_px
            if top >= height or len(shots) >= 5:
                break
        self.page.set_viewport_size(VIEWPORT)
        return shots

    def close(self) -> None:
        try:
            self.page.close()
        except Exception:  # noqa: BLE001  the browser may be gone already; cleanup goes on
            pass


WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def pending_widgets(st: dict) -> int:
    """Widget outputs that show neither a widget nor an error yet: ipywidgets asks the kernel about
    a model before it gives up on it, so "Error displaying widget" can come seconds later."""
    # The placeholder carries no data-mime-type; it reads "Loading widget..." until it resolves.
    return sum(1 for c in st["cells"] for o in c["outputs"]
               if o["text"].startswith("Loading widget")
               or (o["mime"] == WIDGET_MIME and not o["widgets"] and not any(t in o["text"] for t in ERROR_TEXTS)))


def settled_state(lab: "LabPage", min_s: float = 1.5, max_s: float = 20.0, poll_s: float = 0.75) -> dict:
    """The page once it stops changing and every widget output has resolved (rendered or failed).
    A live view (a cell showing the dashboard) never settles: its outputs are left out of the comparison
    (check_dashboard reads them), which otherwise held the dashboard notebook the whole max_s."""
    t0 = time.monotonic()
    previous = None
    while True:
        time.sleep(poll_s)
        current = lab.state()
        elapsed = time.monotonic() - t0
        if (still(current) == previous and elapsed >= min_s and not pending_widgets(current)) or elapsed >= max_s:
            return current
        previous = still(current)


def still(st: dict) -> dict:
    """The page state without what a live view keeps changing: its cell's outputs and their text."""
    return {**st, "cells": [{**c, "outputs": [], "text": ""} if c.get("live") else c for c in st["cells"]]}


def started(st: dict) -> bool:
    return any(re.fullmatch(r"\[(\*|\d+)\]:", c["prompt"]) for c in st["cells"] if c["code"])


def queued(st: dict) -> bool:
    return any(c["prompt"] == "[*]:" for c in st["cells"] if c["code"])


def kernel_idle(st: dict) -> bool:
    """The status bar names a kernel and says it is Idle (and the toolbar agrees)."""
    return st["status"] == "idle" and re.search(r"^(?!No Kernel).+ \| Idle$", st["bar"], re.M) is not None


def progress(st: dict) -> str:
    code = [c for c in st["cells"] if c["code"]]
    done = sum(bool(re.fullmatch(r"\[\d+\]:", c["prompt"])) for c in code)
    return f"{done} of {len(code)} code cells have an execution count"


# --------------------------------------------------------------------------- the checks


def check_rendering(result: LabResult, st: dict, nb: dict) -> None:
    """Charts, widgets and error texts in the DOM, against the executed notebook's cells."""
    code_cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    dom_code = [c for c in st["cells"] if c["code"]]
    if len(code_cells) != len(dom_code):
        result.fail(f"the page shows {len(dom_code)} code cells, the notebook has {len(code_cells)}")
        return
    for n, (cell, dom) in enumerate(zip(code_cells, dom_code), start=1):
        where = f"code cell {n} ({first_line(cell)})"
        for text in ERROR_TEXTS:
            if text in dom["text"]:
                result.fail(f"{where}: the page shows {text!r}")
        for out in dom["outputs"]:
            if CHART_AS_TEXT.search(out["text"]):
                result.fail(f"{where}: a chart shows as its text ({out['text'][:40]!r}), not as a picture")
            # A chart: image/svg+xml (trusted only), or charts.py's <img> of the SVG in text/html.
            if out["mime"] == "image/svg+xml" or any(i["svg"] for i in out["imgs"]):
                result.charts += 1
                if not (any(i["ok"] for i in out["imgs"]) or out["svgs"]):
                    result.fail(f"{where}: an SVG chart output is blank (no loaded image, no svg element)")
            elif out["mime"].startswith(("application/vnd.vegalite", "application/vnd.vega")) or \
                    (out["mime"] == "text/html" and out["vega"] and not (out["svgs"] or out["canvases"])):
                result.fail(f"{where}: a chart needs JavaScript ({out['mime']}), not offline SVG; use charts.use_offline_renderer()")
            result.widgets += out["widgets"]
        source = "".join(cell["source"])
        ran = cell.get("execution_count") is not None  # a cell that never ran is reported by check_saved
        if ran and re.search(r"\blab\.(question|predict)\(", source) and not any(o["widgets"] for o in dom["outputs"]):
            result.fail(f"{where}: calls lab.question/lab.predict but no widget rendered")


def _tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def meant_collapsed(cell: dict) -> str | None:
    """How a code cell says it is collapsed by default, or None: JupyterLab's metadata, or a
    `hide-input` tag (Jupyter Book's; JupyterLab ignores it, so such a cell shows its source)."""
    if cell["cell_type"] != "code":
        return None
    if cell.get("metadata", {}).get("jupyter", {}).get("source_hidden") is True:
        return "metadata jupyter.source_hidden"
    if {"hide-input", "hide_input"} & set(_tags(cell)):
        return "a hide-input tag"
    return None


def check_collapsed(result: LabResult, st: dict, nb: dict) -> int:
    """Every code cell meant to be collapsed shows JupyterLab's placeholder, not its editor, after
    Run All. Returns how many were checked."""
    if len(st["cells"]) != len(nb["cells"]):
        return 0  # check_solutions reports the mismatch
    n = 0
    for i, (cell, dom) in enumerate(zip(nb["cells"], st["cells"]), start=1):
        how = meant_collapsed(cell)
        if how is None:
            continue
        n += 1
        if dom.get("editor") or not dom.get("collapsed"):
            fix = (" (JupyterLab collapses only on metadata jupyter.source_hidden)" if how.startswith("a hide") else "")
            result.fail(f"cell {i} ({first_line(cell)}): collapsed by default ({how}) but shows its source "
                        f"after Run All{fix}")
    return n


def check_solutions(result: LabResult, st: dict, nb: dict) -> int:
    """Every cell tagged `solution` shows at most its <summary>: its text stays out of sight until the
    learner opens it. Returns how many solutions were checked."""
    if len(st["cells"]) != len(nb["cells"]):
        result.fail(f"the page shows {len(st['cells'])} cells, the notebook has {len(nb['cells'])}")
        return 0
    n = 0
    for i, (cell, dom) in enumerate(zip(nb["cells"], st["cells"]), start=1):
        if "solution" not in _tags(cell):
            continue
        n += 1
        beyond = " ".join(dom["shown"].replace(dom["summary"], "", 1).split())
        if beyond:
            result.fail(f"cell {i}: a solution is visible before the learner opens it ({beyond[:60]!r})")
    return n


def check_go_further_hidden(result: LabResult, st: dict, nb: dict) -> None:
    """On opening, JupyterLab hides exactly the cells under a heading saved collapsed (the "Go further"
    runs, reclaimlab.notebook.gofurther): the page must agree with what the file says."""
    from reclaimlab.notebook import gofurther

    if len(st["cells"]) != len(nb["cells"]):
        return  # check_solutions reports the mismatch
    meant = gofurther.hidden_by_jupyterlab(nb["cells"])
    shown = {i for i, dom in enumerate(st["cells"]) if not dom.get("hidden")}
    wrong_shown = sorted(i + 1 for i in meant & shown)
    wrong_hidden = sorted(i + 1 for i in set(range(len(nb["cells"]))) - meant - shown)
    if wrong_shown:
        result.fail(f"cells {wrong_shown[:5]} sit under a collapsed 'Go further' heading but the page shows them")
    if wrong_hidden:
        result.fail(f"cells {wrong_hidden[:5]} are on the core path but the page hides them")


def check_untrusted(result: LabResult, st: dict, nb: dict) -> None:
    """An executed copy opened without running it: every chart of the file rendered as a picture."""
    code_cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    dom_code = [c for c in st["cells"] if c["code"]]
    if len(code_cells) != len(dom_code):
        result.fail(f"the page shows {len(dom_code)} code cells, the notebook has {len(code_cells)}")
        return
    # Charts in cells hidden under a collapsed "Go further" heading are not drawn until the learner opens
    # it; the site check loads them (its <details> hold every <img>).
    expected = sum(is_chart_output(o) for c, dom in zip(code_cells, dom_code) if not dom.get("hidden")
                   for o in c.get("outputs", []))
    for n, (cell, dom) in enumerate(zip(code_cells, dom_code), start=1):
        where = f"code cell {n} ({first_line(cell)})"
        for out in dom["outputs"]:
            if CHART_AS_TEXT.search(out["text"]):
                result.fail(f"{where}: a chart shows as its text ({out['text'][:40]!r}): JupyterLab does not "
                            "render image/svg+xml in an untrusted notebook; use charts.use_offline_renderer()")
            for img in out["imgs"]:
                if img["svg"] and img["ok"]:
                    result.charts += 1
                elif img["svg"]:
                    result.fail(f"{where}: a chart image did not load (natural size 0)")
    if result.charts < expected:
        result.fail(f"{expected} charts in the executed file, {result.charts} rendered as pictures")


def check_saved(result: LabResult, nb: dict) -> None:
    """Every code cell ran (an execution count) and none has an error output."""
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    if not code:
        result.fail("has no code cell")
    errored = False
    for n, cell in enumerate(code, start=1):
        where = f"code cell {n} ({first_line(cell)})"
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                result.fail(f"{where}: raised {out.get('ename')}: {str(out.get('evalue'))[:200]}")
                errored = True
        if cell.get("execution_count") is None:
            if errored:  # Run All stops at the first error: one line for the rest, not one each
                result.fail(f"{len(code) - n + 1} code cells from cell {n} on did not run (after the error above)")
                return
            result.fail(f"{where}: has no execution count in the saved copy")


def first_line(cell: dict) -> str:
    src = "".join(cell["source"]).strip().splitlines()
    return (src[0][:60] + ("…" if len(src[0]) > 60 else "")) if src else "empty"


def check_dashboard(result: LabResult, lab: LabPage, blocked: list[str]) -> None:
    """The dashboard's figures and its drawn chart change between two reads 1.5 s apart while another
    cell runs, with the network blocked."""
    lab.wait_for(lambda st: st["cells"][0]["prompt"] not in ("[ ]:", "[*]:") and st["cells"][1]["prompt"] == "[*]:",
                 60, "the dashboard cell to finish and the sleeping cell to run")
    try:
        lab.page.wait_for_function("() => { const f = document.querySelector('.reclaimlab-dashboard-figures');"
                                   " return f && f.dataset.tS; }", timeout=30_000)
    except Exception:  # noqa: BLE001  reported below with what the page shows
        pass
    first = lab.page.evaluate(DASHBOARD_JS)
    time.sleep(1.5)
    second = lab.page.evaluate(DASHBOARD_JS)
    still_running = lab.state()["cells"][1]["prompt"] == "[*]:"
    log(f"dashboard: t = {first['t_s']} s, {first['samples']} samples -> t = {second['t_s']} s, "
        f"{second['samples']} samples; chart drawn: {second['inked']} inked pixels, changed: "
        f"{first['canvas'] != second['canvas']}, {second['frames'] - first['frames']} redraws in 1.5 s; "
        f"requests blocked: {len(blocked)}")
    for url in blocked:
        log(f"dashboard: blocked a request off this machine: {url[:200]}")
    if first["t_s"] is None:
        result.fail("the dashboard's figures are not on the page" +
                    (f" (blocked requests: {', '.join(u[:80] for u in blocked[:3])})" if blocked else ""))
        return
    if not second["t_s"] > first["t_s"] + 0.5 or not second["samples"] > first["samples"]:
        result.fail(f"the dashboard did not update: t {first['t_s']} -> {second['t_s']} s, "
                    f"samples {first['samples']} -> {second['samples']} in 1.5 s")
    if not re.search(r"\d (GiB|MiB)\b", second["figures"]):
        result.fail(f"the dashboard's readouts show no size (the kernel sends them formatted): {second['figures'][:200]!r}")
    if second["canvas"] is None or second["inked"] < 1000:
        result.fail(f"the dashboard's chart is not drawn (canvas: {second['canvas']}, {second['inked']} inked pixels)")
    elif first["canvas"] == second["canvas"]:
        result.fail("the dashboard's chart did not change in 1.5 s")
    elif second["frames"] - first["frames"] < 4:  # 6 samples at 4 Hz: each one its own message and redraw
        result.fail(f"the dashboard's chart fell behind: {second['frames'] - first['frames']} redraws in 1.5 s "
                    f"at 4 samples/s")
    if not still_running:
        result.fail("the sleeping cell ended before the second read: the check proved nothing about updates "
                    "during another cell")


def check_lab(server: Server, lab: "LabPage", then=lambda: None) -> LabResult:
    """Run all of lab's notebook and check it; then() once its kernel is idle (the next page may start)."""
    nb_path = lab.nb_path
    name = nb_path.stem
    result = LabResult(name)
    t0 = time.monotonic()
    try:
        lab.open()
        result.lap("open")
        lab.run_all()
        if nb_path.name == DASHBOARD_NB:
            check_dashboard(result, lab, lab.blocked)
        lab.wait_done()
        result.lap("run")
        then()
        st = settled_state(lab)
        result.lap("settle")
        lab.save()
        result.lap("save")
        nb = json.loads(nb_path.read_text(encoding="utf-8"))
        check_saved(result, nb)
        check_rendering(result, st, nb)
        result.solutions = check_solutions(result, st, nb)
        result.collapsed = check_collapsed(result, st, nb)
        code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
        if result.charts == 0 and re.search(r"\bcharts\.\w+\(", code):
            result.fail("calls reclaimlab.present.charts but no chart rendered")
        for err in lab.page_errors:
            log(f"{name}: page error (not counted as a failure): {err[:200]}")
    except CheckFailed as exc:
        result.fail(str(exc))
    except Exception as exc:  # noqa: BLE001  Playwright timeouts etc.: this lab failed, the others still run
        result.fail(f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    finally:
        _finish(result, lab, server, SHOTS / f"{name}.png", t0)
    return result


def _finish(result: "LabResult", lab: "LabPage", server: "Server", shot: Path, t0: float) -> None:
    """After a notebook's check, pass or fail: its screenshot, its page closed, its kernels shut down
    (one busy kernel at a time: this machine has 2 cores; the next notebook's idles, started), its time."""
    try:
        result.lap("checks")
        lab.screenshot(shot)
        result.lap("screenshot")
    except Exception as exc:  # noqa: BLE001
        log(f"{result.name}: no screenshot ({type(exc).__name__}: {exc})")
    lab.close()
    server.shutdown_kernels(lab.nb_path)
    result.lap("shutdown")
    result.seconds = time.monotonic() - t0


def served_untrusted(server: Server, nb_path: Path) -> bool:
    """JupyterLab's own verdict: the server marks each code cell of a notebook it has no signature
    for as untrusted (metadata.trusted false) when it sends it to the page."""
    rel = nb_path.relative_to(BUILD).as_posix()
    model = server.api("GET", f"/api/contents/{rel}?content=1")
    flags = [c.get("metadata", {}).get("trusted") for c in model["content"]["cells"] if c["cell_type"] == "code"]
    return bool(flags) and not any(flags)


def open_a_solution(result: LabResult, lab: "LabPage", nb: dict) -> None:
    """Click the first solution's summary, as a learner would: its text must then show."""
    at = next((i for i, c in enumerate(nb["cells"]) if "solution" in _tags(c)), None)
    if at is None:
        return
    cell = lab.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(at)
    summary = cell.locator("summary")
    if summary.count() == 0:
        return  # check_solutions reported it if its text shows; a collapsed cell has nothing to click
    summary.first.click()
    time.sleep(0.5)
    dom = lab.state()["cells"][at]
    shown = " ".join(dom["shown"].replace(dom["summary"], "", 1).split())
    if not shown:
        result.fail(f"cell {at + 1}: opening the solution (a click on its summary) shows no text")
    else:
        log(f"{result.name}: opened the solution in cell {at + 1}: it shows {shown[:50]!r}…")


def check_untrusted_lab(server: Server, lab: "LabPage", then=lambda: None) -> LabResult:
    """Open an executed copy from disk, run nothing, and check what a learner sees; then() once it is open."""
    nb_path = lab.nb_path
    result = LabResult(f"{UNTRUSTED}/{nb_path.stem}")
    t0 = time.monotonic()
    try:
        if not served_untrusted(server, nb_path):
            result.fail("JupyterLab trusts this executed copy: the stage would not show what a learner sees")
        lab.open()
        result.lap("open")
        then()
        st = settled_state(lab)
        result.lap("settle")
        nb = json.loads(nb_path.read_text(encoding="utf-8"))
        check_untrusted(result, st, nb)
        check_go_further_hidden(result, st, nb)
        result.solutions = check_solutions(result, st, nb)
        if result.solutions:
            open_a_solution(result, lab, nb)
    except CheckFailed as exc:
        result.fail(str(exc))
    except Exception as exc:  # noqa: BLE001  Playwright timeouts etc.: this notebook failed, the others still run
        result.fail(f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    finally:
        _finish(result, lab, server, SHOTS / f"{UNTRUSTED}-{nb_path.stem}.png", t0)
    return result


# --------------------------------------------------------------------------- main


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=int(os.environ.get("RECLAIMLAB_BROWSER_PORT", DEFAULT_PORT)))
    ap.add_argument("--only", action="append", default=[], help="labs whose file name contains this (repeatable)")
    ap.add_argument("--timeout-s", type=float, default=300.0, help="per lab, for all its cells to run")
    ap.add_argument("--no-dashboard", action="store_true", help="skip the live dashboard check")
    ap.add_argument("--no-untrusted", action="store_true",
                    help="skip opening papermill's executed copies without running them")
    ap.add_argument("--no-self-test", action="store_true", help="skip the notebook of planted failures")
    ap.add_argument("--labs-executed-since", type=float, metavar="EPOCH_S",
                    help="the untrusted stage opens build/labs/recorded/'s copies when all were executed after this time")
    ap.add_argument("--self-test", action="store_true", help="only the notebook of planted failures")
    args = ap.parse_args(argv)

    if not CHROMIUM.exists():
        print(f"browser check: {CHROMIUM} not found; ci/setup-browser installs Debian's chromium", file=sys.stderr)
        return 1
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("browser check: the playwright package is missing; python3 tasks.py setup installs it (the browser extra)", file=sys.stderr)
        return 1
    labs = [] if args.self_test else sorted((ROOT / "labs").glob("[0-9]*.ipynb"))
    if args.only:
        labs = [p for p in labs if any(o in p.name for o in args.only)]
        if not labs:
            print(f"browser check: no lab matches {args.only}", file=sys.stderr)
            return 1
    notebooks = prepare(labs, dashboard=not (args.no_dashboard or args.self_test),
                        self_test=not args.no_self_test)
    untrusted = [] if args.no_untrusted else execute_for_untrusted(labs, self_test=not args.no_self_test,
                                                                   executed_since=args.labs_executed_since)

    t0 = time.monotonic()
    server = Server(args.port)
    results: list[LabResult] = []
    signal.signal(signal.SIGTERM, _interrupt)  # a CI timeout must still end the server and chromium
    try:
        server.start()
        log(f"JupyterLab at {server.base} (log: {server.log_path.relative_to(ROOT)})")
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(BUILD / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
                args=CHROMIUM_ARGS, viewport=VIEWPORT)
            # One notebook is checked at a time; the next one's page starts loading (JupyterLab's boot and
            # its kernel's start, ~4 s each) once the current kernel is idle, while the current page
            # settles, saves and is photographed.
            queue = [(nb, args.timeout_s) for nb in notebooks] + [(nb, 60.0) for nb in untrusted]
            pages = [LabPage(context, server, nb, timeout_s) for nb, timeout_s in queue[:1]]

            def load_next() -> None:
                if len(pages) < len(queue):
                    pages.append(LabPage(context, server, *queue[len(pages)]))
                    try:
                        pages[-1].begin()
                    except Exception as exc:  # noqa: BLE001  its own check opens it again and reports it
                        pages[-1].begun = False
                        log(f"{pages[-1].nb_path.stem}: loading it ahead failed ({type(exc).__name__}); opened when its turn comes")

            try:
                for i, nb_path in enumerate(notebooks):
                    log(f"{nb_path.stem}: opening, running all cells")
                    if len(pages) <= i:
                        load_next()
                    r = check_lab(server, pages[i], then=load_next)
                    if nb_path.name == SELF_TEST_NB:
                        r.failures = self_test_misses(r)
                    log(f"{nb_path.stem}: {'ok' if not r.failures else 'FAILED'} in {r.seconds:.0f} s [{r.timing()}] "
                        f"({r.charts} charts, {r.widgets} outputs with widgets, {r.solutions} solutions, "
                        f"{r.collapsed} collapsed code cells checked)")
                    results.append(r)
                for i, nb_path in enumerate(untrusted, start=len(notebooks)):
                    log(f"{UNTRUSTED}/{nb_path.stem}: opening the executed copy without running it")
                    if len(pages) <= i:
                        load_next()
                    r = check_untrusted_lab(server, pages[i], then=load_next)
                    if nb_path.name == SELF_TEST_UNTRUSTED_NB:
                        r.failures = self_test_misses(r, SELF_TEST_UNTRUSTED_EXPECTED)
                    log(f"{r.name}: {'ok' if not r.failures else 'FAILED'} in {r.seconds:.0f} s [{r.timing()}] ({r.charts} charts, "
                        f"{r.solutions} solutions checked)")
                    results.append(r)
            finally:
                context.close()
    except KeyboardInterrupt:
        print("browser check: interrupted; the server and chromium were stopped", file=sys.stderr)
        return 130
    finally:
        server.stop()
        shutil.rmtree(BUILD / "chromium-profile", ignore_errors=True)

    failures = [f"{r.name}: {f}" for r in results for f in r.failures]
    log(f"{len(results)} notebooks in {time.monotonic() - t0:.0f} s; screenshots in {SHOTS.relative_to(ROOT)}/")
    if failures:
        print("\nbrowser check FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
    failed = sum(bool(r.failures) for r in results)
    print(f"browser-check: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def self_test_misses(result: LabResult, expected: dict[str, str] | None = None) -> list[str]:
    """The planted failures the check did not report (a self-test notebook passes when none)."""
    expected = SELF_TEST_EXPECTED if expected is None else expected
    log(f"self-test {result.name}: the check reported: " + " | ".join(result.failures or ["nothing"]))
    return [f"the check missed a planted failure: {name} (expected a report containing {text!r})"
            for name, text in expected.items() if not any(text in f for f in result.failures)]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
