#!/usr/bin/env python3
"""The static site's check (pytest -m site): build it, then open every page in headless Chromium offline.

    python tests/checks/site_check.py [--no-build] [--labs-executed-since EPOCH_S] [--no-self-test]

1. Builds the site as `python3 tasks.py site` does: every lab executed in recorded mode by papermill
   (build/labs/recorded/), then `python -m reclaimlab.publish.site` (build/site/). --no-build reuses both;
   --labs-executed-since reuses the executed labs when every one was written after that time (`tasks.py
   test` passes the start of its pytest session, in which every lab was executed once) and builds the site.
2. Serves build/site/ with Python's http.server on 127.0.0.1 (a free port) and opens every page in
   Debian's chromium through Playwright (the launch settings of browser_check.py), with every
   request to anything but 127.0.0.1 aborted, as on a machine with no internet.
3. On every page asserts: no request left 127.0.0.1; no console error and no page error; every <img>
   loaded with a natural size > 0 and every top-level <svg> has a size (charts come as inline SVG, or
   as <img> with an SVG or PNG data URL, diagrams as <img> files); every internal link names a page
   that exists and, with a #fragment, an element of that page. On every lab page: its charts are
   there (a lab that calls reclaimlab.present.charts shows at least one), every solution is a closed
   <details>, a lab that runs an experiment shows its RECORDED banner, and a lab that shows maps of
   physical memory (lab.show_physical_memory, lab.show_guest_and_host_maps) shows at least one map
   image, loaded from a data URL.
4. First, a page of planted failures (a broken image, a blank svg, a script from a CDN, a dead link,
   a console error) must be reported, each of them: a check that cannot fail proves nothing.
Exit status 0 when every page passed; 1 with one line per failure.
"""
from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urldefrag, urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_check import CHROMIUM, CHROMIUM_ARGS, VIEWPORT  # noqa: E402  (the checks' helpers are not a package)

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "build" / "site"
EXECUTED = ROOT / "build" / "labs" / "recorded"
SELF_TEST = "_selftest"
SELF_TEST_PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>planted failures</title>
<script src="https://cdn.jsdelivr.net/npm/nothing@1/x.js"></script></head><body>
<img src="missing.svg" alt="broken"><svg width="0" height="0"></svg>
<a href="../no-such-page.html">dead</a><a href="../index.html#no-such-id">dead fragment</a>
<script>console.error("planted console error")</script></body></html>"""
SELF_TEST_EXPECTED = {"external request": "left 127.0.0.1", "broken image": "missing.svg",
                      "blank svg": "svg has no size", "dead link": "no-such-page.html",
                      "dead fragment": "#no-such-id", "console error": "planted console error"}

PAGE_JS = """() => {
  const imgs = [...document.querySelectorAll('img')].map(i => ({src: i.getAttribute('src').slice(0, 80),
      ok: i.complete && i.naturalWidth > 0 && i.naturalHeight > 0}));
  const svgs = [...document.querySelectorAll('svg')].filter(s => !s.parentElement.closest('svg')).map(s => {
      const r = s.getBoundingClientRect(); return {w: r.width, h: r.height}; });
  const links = [...document.querySelectorAll('a[href]')].map(a => a.href);
  const ids = [...document.querySelectorAll('[id]')].map(e => e.id);
  const details = [...document.querySelectorAll('details.folded')].map(d => ({open: d.open,
      summary: d.querySelector('summary') ? d.querySelector('summary').textContent : ''}));
  const maps = [...document.querySelectorAll('figure.reclaimlab-physmap img')].map(i =>
      i.complete && i.naturalWidth > 0 && i.naturalHeight > 0 && i.getAttribute('src').startsWith('data:image'));
  return {imgs, svgs, links, ids, details, maps, text: document.body.innerText};
}"""


def log(msg: str) -> None:
    print(f"[site-check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def build(python: str, labs_executed_since: float | None = None) -> float:
    t0 = time.monotonic()
    env = dict(os.environ, PATH=f"{Path(python).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    commands = [[str(Path(python).parent / "reclaimlab"), "labs", "--mode", "recorded"],
                [python, "-m", "reclaimlab.publish.site"]]
    if labs_executed_since is not None:
        from reclaimlab.cli.labs import executed_since, lab_notebooks
        if executed_since(lab_notebooks(ROOT / "labs"), EXECUTED, labs_executed_since):
            log(f"every lab's executed copy in {EXECUTED.relative_to(ROOT)}/ is from this run "
                "(executed once in this pytest session): reused")
            commands = commands[1:]
        else:
            log(f"not every lab has an executed copy in {EXECUTED.relative_to(ROOT)}/ from this run: executing them")
    for cmd in commands:
        log("+ " + " ".join(Path(cmd[0]).name if i == 0 else c for i, c in enumerate(cmd)))
        if subprocess.call(cmd, cwd=ROOT, env=env) != 0:
            raise SystemExit(f"site-check: {' '.join(cmd[1:])} failed")
    return time.monotonic() - t0


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # the check reports what matters
        pass


def serve(directory: Path) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def solution_cells(stem: str) -> int:
    nb = EXECUTED / f"{stem}.ipynb"
    if not nb.exists():
        return 0
    cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
    return sum("solution" in c.get("metadata", {}).get("tags", []) for c in cells)


def lab_expectations(stem: str) -> tuple[bool, bool, bool]:
    """(draws charts, runs an experiment, shows maps of physical memory) from the lab's source."""
    src = ROOT / "labs" / f"{stem}.ipynb"
    code = "\n".join("".join(c["source"]) for c in json.loads(src.read_text(encoding="utf-8"))["cells"]
                     if c["cell_type"] == "code") if src.exists() else ""
    return (bool(re.search(r"\bcharts\.\w+\(", code)), bool(re.search(r"\bctx\.run\(|\blab\.banner\(", code)),
            bool(re.search(r"\blab\.(show_physical_memory|show_guest_and_host_maps)\(", code)))


def check_pages(context, base: str, pages: list[str]) -> dict[str, list[str]]:
    failures: dict[str, list[str]] = {p: [] for p in pages}
    seen_ids: dict[str, set[str]] = {}
    links: list[tuple[str, str]] = []
    for name in pages:
        fail = failures[name].append
        page = context.new_page()
        page.on("console", lambda m, fail=fail: m.type == "error" and fail(f"console error: {m.text[:200]}"))
        page.on("pageerror", lambda e, fail=fail: fail(f"page error: {str(e)[:200]}"))
        page.on("requestfailed", lambda r, fail=fail: not r.url.startswith(base)
                and fail(f"a request left 127.0.0.1 (blocked): {r.url[:120]}"))
        try:
            page.goto(base + name, wait_until="load", timeout=60_000)
            st = page.evaluate(PAGE_JS)
        except Exception as exc:  # noqa: BLE001  a page that does not load: say so, check the others
            fail(f"did not load: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            page.close()
            continue
        page.close()
        for img in st["imgs"]:
            if not img["ok"]:
                fail(f"image not shown: {img['src']}")
        blank = [s for s in st["svgs"] if not (s["w"] > 0 and s["h"] > 0)]
        if blank:
            fail(f"{len(blank)} svg has no size (a blank chart)")
        seen_ids[name] = set(st["ids"])
        links += [(name, href) for href in st["links"]]
        stem = Path(name).stem
        if re.fullmatch(r"\d\d_.+", stem):
            charts = len(st["svgs"]) + sum(i["ok"] and i["src"].startswith("data:image") for i in st["imgs"])
            draws, runs, maps = lab_expectations(stem)
            if draws and charts == 0:
                fail("the lab draws charts but the page shows none")
            # the site is built in recorded mode, and the shipped recordings these labs show carry maps
            if maps and not any(st["maps"]):
                fail("the lab shows maps of physical memory but the page has no map image (a loaded data-URL "
                     "<img> in figure.reclaimlab-physmap)")
            if runs and "RECORDED" not in st["text"]:
                fail("the lab runs an experiment but the page shows no RECORDED banner")
            solutions = [d for d in st["details"] if d["summary"] == "Solution"]
            if len(solutions) != solution_cells(stem):
                fail(f"{len(solutions)} solution <details> for {solution_cells(stem)} solution cells")
            if any(d["open"] for d in st["details"]):
                fail("a <details> is open: solutions must start collapsed")
            log(f"{name}: {charts} charts, {sum(st['maps'])} maps of physical memory, {len(st['imgs'])} images, "
                f"{len(solutions)} solutions")
    for name, href in links:
        url, fragment = urldefrag(href)
        if not url.startswith(base):
            continue  # an external link: not ours to resolve offline
        target = urlparse(url).path[len(urlparse(base).path):] or "index.html"
        if target not in seen_ids and not (SITE / target).is_file():
            failures[name].append(f"link to a missing page: {target}")
        elif fragment and fragment not in seen_ids.get(target, set()) and not (
                target not in seen_ids and re.search(rf'\bid="{re.escape(fragment)}"', (SITE / target).read_text())):
            failures[name].append(f"link to a missing anchor: {target}#{fragment}")
    return failures


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-build", action="store_true", help="check build/site/ as it is")
    ap.add_argument("--labs-executed-since", type=float, metavar="EPOCH_S",
                    help="reuse build/labs/recorded/ when every lab there was executed after this time")
    ap.add_argument("--no-self-test", action="store_true")
    args = ap.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"site-check: {CHROMIUM} not found; ci/setup-browser installs Debian's chromium", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    t0 = time.monotonic()
    if not args.no_build:
        log(f"site built in {build(sys.executable, args.labs_executed_since):.0f} s")
    pages = sorted(p.name for p in SITE.glob("*.html"))
    if not pages:
        print(f"site-check: no page in {SITE}; run python3 tasks.py site", file=sys.stderr)
        return 1
    size = sum(f.stat().st_size for f in SITE.rglob("*") if f.is_file())
    log(f"{len(pages)} pages, {size / 2**20:.1f} MiB in {SITE.relative_to(ROOT)}/")
    selftest = SITE / SELF_TEST
    server = serve(SITE)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        if not args.no_self_test:
            selftest.mkdir(exist_ok=True)
            (selftest / "index.html").write_text(SELF_TEST_PAGE, encoding="utf-8")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport=VIEWPORT)
                # The network is blocked except 127.0.0.1: a page that needs a CDN shows it here.
                context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base)
                              or route.request.url.startswith("data:") else route.abort("internetdisconnected"))
                missed = []
                if not args.no_self_test:
                    planted = check_pages(context, base, [f"{SELF_TEST}/index.html"])[f"{SELF_TEST}/index.html"]
                    log("self-test: reported: " + " | ".join(planted or ["nothing"]))
                    missed = [f"the check missed a planted failure: {what}" for what, text in SELF_TEST_EXPECTED.items()
                              if not any(text in f for f in planted)]
                failures = check_pages(context, base, pages)
            finally:
                browser.close()
    finally:
        server.shutdown()
        shutil.rmtree(selftest, ignore_errors=True)
    lines = missed + [f"{page}: {f}" for page, fs in failures.items() for f in fs]
    log(f"{len(pages)} pages checked in {time.monotonic() - t0:.0f} s")
    if lines:
        print("\nsite check FAILED:\n  " + "\n  ".join(lines), file=sys.stderr)
        return 1
    print(f"site-check: all {len(pages)} pages passed offline")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
