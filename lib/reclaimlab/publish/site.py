"""The static site of the executed labs: build/labs/*.ipynb -> build/site/, readable with nothing installed.

    python -m reclaimlab.publish.site [--labs build/labs] [--out build/site]   (python3 tasks.py site runs the labs first)

nbconvert's HTML exporter (the `lab` template, its CSS embedded) renders each executed lab; our template
removes every script it would load from a CDN (require.js, MathJax, mermaid, the widget manager), so a
page shows its content offline. Widgets cannot work in a static page: their outputs are dropped, the
question itself stays (lab.question prints it as HTML), and the cells tagged `solution` or `instructor`
become collapsed <details>, and each run of cells tagged `go-further` (reclaimlab.notebook.gofurther) becomes one
closed <details> whose summary is the run's "Go further: …" heading (its code's outputs inside). Links between labs (`01_x.ipynb`) become links between pages (`01_x.html`).
The landing page (index.html) and the recordings' provenance (recordings.html) are written here.
"""
from __future__ import annotations

import argparse
import copy
import html
import json
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..notebook import gofurther

LAB_GLOB = "[0-9][0-9]_*.ipynb"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
SEED_SVG = "seed-story.svg"  # docs/img/, copied to img/
FOLDED = {"solution": "Solution", "instructor": "Instructor notes"}  # cell tag -> <summary>
BINDER_RE = re.compile(r"https://mybinder\.org/v2/[^\s)\"']+")

SITE_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:60rem;margin:0 auto;padding:0 1rem 3rem;
line-height:1.5;color:#1b1b1b}
nav.site{display:flex;gap:1.2rem;flex-wrap:wrap;padding:.7rem 0;border-bottom:1px solid #ddd;margin-bottom:1rem;font-size:.95rem}
nav.site a{text-decoration:none;color:#0b5cad}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.3rem .5rem;vertical-align:top;text-align:left}
code,pre{background:#f4f4f4;border-radius:3px}pre{padding:.6rem;overflow-x:auto}code{padding:0 .2rem}
.lab h3{margin-bottom:.2rem}.note{color:#555;font-size:.92rem}figure{margin:1rem 0}img.story{max-width:100%;height:auto}
"""
LAB_EXTRA_CSS = """
nav.site{display:flex;gap:1.2rem;flex-wrap:wrap;padding:.7rem 1rem;border-bottom:1px solid #ddd;font-family:system-ui,sans-serif}
nav.site a{text-decoration:none;color:#0b5cad}
.site-note{margin:.6rem 1rem;padding:.5rem .8rem;background:#f3f7fc;border-left:4px solid #0b5cad;font-family:system-ui,sans-serif}
details.folded{margin:.3rem 0 .8rem;padding:.3rem .8rem;border:1px solid #d0d7de;border-radius:4px;background:#fafafa}
details.folded>summary{cursor:pointer;font-weight:600}
"""

# The lab template without anything fetched from elsewhere; folded cells; a navigation bar.
TEMPLATE = r"""{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}<style type="text/css">{{ resources.site_css }}</style>{%- endblock extra_css -%}
{%- block body_header -%}
{{ super() }}
{{ resources.site_nav }}
<div class="site-note">{{ resources.site_note }}</div>
{%- endblock body_header -%}
{% block any_cell scoped %}
{%- set gf = cell.metadata.get("reclaimlab_site", {}) -%}
{%- if gf.get("open") -%}<details class="folded go-further"><summary>{{ gf["open"] | e }}</summary>{%- endif -%}
{%- if not gf.get("skip") -%}{{ super() }}{%- endif -%}
{%- if gf.get("close") -%}</details>{%- endif -%}
{%- endblock any_cell %}
{% block markdowncell scoped %}
{%- set fold = resources.site_folded(cell) -%}
{%- if fold -%}<details class="folded"><summary>{{ fold }}</summary>{{ super() }}</details>
{%- else -%}{{ super() }}{%- endif -%}
{%- endblock markdowncell %}
"""


@dataclass(frozen=True)
class LabSummary:
    stem: str
    title: str
    intro_md: str
    objectives: list[str]


# --------------------------------------------------------------------------- pure parts

def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


OBJECTIVES_HEADING = r"##\s+(Overview|By the end you will be able to)"


def summarize(stem: str, nb: dict) -> LabSummary:
    """Title and introduction (the first cell), objectives (the numbered list under "## By the end you will be
    able to", or "## Overview" in a lab not yet written as outcomes)."""
    cells = [c for c in nb.get("cells", []) if c.get("cell_type") == "markdown"]
    first = _source(cells[0]) if cells else ""
    heading = re.search(r"^#\s+(.+)$", first, re.M)
    title = heading[1].strip() if heading else stem
    intro = first[heading.end():].strip() if heading else first.strip()
    objectives: list[str] = []
    for cell in cells[1:]:
        text = _source(cell)
        if re.match(OBJECTIVES_HEADING, text.strip()):
            body = re.split(r"^##\s+", text.strip(), flags=re.M)[1]
            for item in re.split(r"^\d+\.\s+", body, flags=re.M)[1:]:
                objectives.append(" ".join(item.split("\n\n")[0].split()))  # a blank line ends the list
            break
    return LabSummary(stem, title, intro, objectives)


def static_copy(nb: dict) -> dict:
    """The notebook without widget outputs (nothing can drive them in a static page), its go-further runs
    marked for folding."""
    out = copy.deepcopy(nb)
    for cell in out.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = [o for o in cell.get("outputs", []) if WIDGET_MIME not in o.get("data", {})]
    out.get("metadata", {}).pop("widgets", None)
    return fold_go_further(out)


SITE_KEY = "reclaimlab_site"  # per-cell instructions to the template, on the static copy only


def fold_go_further(nb: dict) -> dict:
    """Mark each run of go-further cells for the template: the first opens a <details> (its "Go further: …"
    heading becomes the summary and is not shown twice), the last closes it. Changes nb in place."""
    cells = nb.get("cells", [])
    for first, last in gofurther.runs(cells):
        title = gofurther.run_title(cells[first])
        marks = {i: {} for i in range(first, last + 1)}
        marks[first]["open"] = title or "Go further"
        marks[first]["skip"] = bool(title)
        marks[last]["close"] = True
        for i, mark in marks.items():
            cells[i].setdefault("metadata", {})[SITE_KEY] = mark
    return nb


def folded(cell: dict) -> str:
    """The <summary> of a cell shown collapsed ("" for an open one)."""
    tags = cell.get("metadata", {}).get("tags", [])
    return next((FOLDED[t] for t in tags if t in FOLDED), "")


def rewrite_lab_links(text: str, stems: set[str]) -> str:
    """href="01_x.ipynb#a" -> href="01_x.html#a" for the labs on the site."""
    def sub(m: re.Match) -> str:
        return f'href="{m[1]}.html{m[2] or ""}"' if m[1] in stems else m[0]
    return re.sub(r'href="(?:\./)?([0-9]{2}_[\w-]+)\.ipynb(#[^"]*)?"', sub, text)


# The labs link the glossary and show diagrams from docs/ (../docs/... beside labs/); on the site both
# sit at its root: glossary.html, img/.
DOC_LINKS = ((re.compile(r'href="\.\./docs/glossary\.md(#[^"]*)?"'), r'href="glossary.html\1"'),
             (re.compile(r'src="\.\./docs/img/([\w.-]+)"'), r'src="img/\1"'))


def rewrite_doc_links(text: str) -> str:
    """../docs/glossary.md#x -> glossary.html#x and ../docs/img/x.svg -> img/x.svg (where the site has them)."""
    for pattern, repl in DOC_LINKS:
        text = pattern.sub(repl, text)
    return text


def binder_url(readme: str) -> str | None:
    """The Binder launch link of the README (one place to change it)."""
    match = BINDER_RE.search(readme)
    return match[0] if match else None


def nav_html(summaries: list[LabSummary], here: str = "") -> str:
    links = [("index.html", "reclaimlab"), *((f"{s.stem}.html", s.stem[:2]) for s in summaries),
             ("recordings.html", "recordings"), ("glossary.html", "glossary")]
    items = "".join(f'<a href="{href}"{" aria-current=page" if href == here else ""}>{html.escape(label)}</a>'
                    for href, label in links)
    return f'<nav class="site">{items}</nav>'


def _md(text: str) -> str:
    from nbconvert.filters.markdown import markdown2html
    return markdown2html(text)


def _md_inline(text: str) -> str:
    """One line of Markdown as inline HTML (without the paragraph around it)."""
    return re.sub(r"^<p>(.*)</p>$", r"\1", _md(text).strip(), flags=re.S)


def _page(title: str, body: str, nav: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title>'
            f"<style>{SITE_CSS}</style></head><body>{nav}<main>{body}</main></body></html>\n")


def landing_html(summaries: list[LabSummary], binder: str | None, executed_utc: str) -> str:
    labs = "".join(
        f'<div class="lab"><h3><a href="{s.stem}.html">{_md_inline(s.title)}</a></h3>{_md(s.intro_md)}'
        + ("<p><b>You will:</b></p><ol>" + "".join(f"<li>{_md_inline(o)}</li>" for o in s.objectives)
           + "</ol>" if s.objectives else "") + "</div>"
        for s in summaries)
    binder_part = (f'<p>On <a href="{html.escape(binder)}">mybinder.org</a>, in your browser, nothing to install '
                   f"(labs 02–04 show recordings there: Binder is a shared machine; lab 05 boots its own VM).</p>"
                   if binder else "")
    body = f"""
<h1>reclaimlab: watch a Linux guest VM take memory from its host and give it back</h1>
<p>A Jupyter teaching kit that shows, live and with real numbers, the story of Microsoft's blog post
<a href="https://devblogs.microsoft.com/commandline/memory-reclaim-in-the-windows-subsystem-for-linux-2/">Memory
Reclaim in the Windows Subsystem for Linux 2</a> (Windows build 19013). These pages are the labs as they ran in
<b>recorded mode</b> on {html.escape(executed_utc)}: every chart is drawn from a real recording made by the kit and
shipped with it; each lab's banner says which one, and <a href="recordings.html">the recordings page</a> says where
and when each was made.</p>
<figure><img class="story" src="img/{SEED_SVG}" alt="The seed story: the host's view of the VM's memory as a
program callocs 3 GB, touches it, frees it; free page reporting, the page cache and drop_caches, fragmentation
and compaction." width="900" height="360"><figcaption class="note">The seed story in one picture: what the host
(Windows' vmmem) sees of the guest's memory, step by step. Each step is one lab.</figcaption></figure>
<h2 id="labs">The labs</h2>{labs}
<h2 id="run-it-live">Run it live</h2>
{binder_part}
<p>On your own machine, with Python ≥ 3.10 and nothing else installed:</p>
<pre><code>git clone &lt;this repository&gt; reclaimlab &amp;&amp; cd reclaimlab
python3 tasks.py labs     # sets up ./.venv and opens the labs in JupyterLab
python3 tasks.py site     # rebuilds these pages (build/site/)</code></pre>
<p>Live, each lab runs its experiment on the machine in front of you where it may (root and consent for the
system-wide knobs), and shows a recording with the reason where it may not.</p>
"""
    return _page("reclaimlab: the labs", body, nav_html(summaries, "index.html"))


def _cell(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, dict):
        return "<br>".join(f"{html.escape(str(k))} = {html.escape(str(v))}" for k, v in value.items())
    return html.escape(str(value))


PROVENANCE_FIELDS = (("experiment", "experiment"), ("date_utc", "recorded (UTC)"), ("guest_kind", "guest"),
                     ("hypervisor", "hypervisor"), ("kernel_release", "kernel"), ("machine", "arch"),
                     ("page_reporting_order", "reporting order"), ("mode_reason", "why it ran live"),
                     ("tool_version", "reclaimlab"), ("parameters", "parameters"))


def provenance_html(entries: list[dict], metas: dict[str, dict], summaries: list[LabSummary]) -> str:
    """One row per shipped recording: data/recordings/index.json joined with its meta.json."""
    head = "".join(f"<th>{label}</th>" for _, label in PROVENANCE_FIELDS) + "<th>folder</th>"
    rows = []
    for e in entries:
        meta = {**e, **metas.get(e.get("path", ""), {})}
        cells = "".join(f"<td>{_cell(meta.get(k))}</td>" for k, _ in PROVENANCE_FIELDS)
        rows.append(f"<tr>{cells}<td><code>data/recordings/{html.escape(e.get('path', ''))}</code></td></tr>")
    body = (f"<h1>The recordings behind these pages</h1><p>Every chart on this site is drawn from one of these "
            f"{len(entries)} recordings, made by the kit itself (<code>reclaimlab record</code>) and shipped in "
            f"<code>data/recordings/</code>; this table is built from <code>data/recordings/index.json</code> and "
            f"each recording's <code>meta.json</code>. They come from the project's own machines, not from WSL: "
            f"the hypervisor and kernel columns say which.</p><table><tr>{head}</tr>{''.join(rows)}</table>")
    return _page("reclaimlab: recordings", body, nav_html(summaries, "recordings.html"))


# --------------------------------------------------------------------------- rendering and writing

def lab_html(nb: dict, stem: str, summaries: list[LabSummary], executed_utc: str) -> str:
    import jinja2
    from nbconvert import HTMLExporter
    import nbformat

    exporter = HTMLExporter(template_name="lab", embed_images=True,
                            extra_loaders=[jinja2.DictLoader({"reclaimlab_site.html.j2": TEMPLATE})],
                            template_file="reclaimlab_site.html.j2")
    note = (f"This is lab {html.escape(stem[:2])} as it ran in <b>recorded mode</b> on {html.escape(executed_utc)}: "
            f"the banners below name the recording each chart shows (<a href=\"recordings.html\">where and when "
            f"they were made</a>). Questions are static here: open a solution to check yourself. "
            f"<a href=\"index.html#run-it-live\">Run it live</a> to try it on your machine.")
    resources = {"site_css": LAB_EXTRA_CSS, "site_nav": nav_html(summaries, f"{stem}.html"), "site_note": note,
                 "site_folded": folded, "metadata": {"name": stem}}
    body, _ = exporter.from_notebook_node(nbformat.reads(json.dumps(static_copy(nb)), as_version=4),
                                          resources=resources)
    return rewrite_doc_links(rewrite_lab_links(body, {s.stem for s in summaries}))


def _executed_utc(nbs: dict[str, dict]) -> str:
    ends = sorted(str(nb.get("metadata", {}).get("papermill", {}).get("end_time") or "") for nb in nbs.values())
    stamp = ends[-1] if ends and ends[-1] else ""
    return stamp[:16].replace("T", " ") + " UTC" if stamp else "an unknown date"


def build(labs_dir: Path, out_dir: Path, root: Path | None = None) -> list[Path]:
    """Write the site into out_dir (replaced whole); returns the pages written."""
    root = root or paths.CHECKOUT
    sources = sorted(labs_dir.glob(LAB_GLOB))
    if not sources:
        raise FileNotFoundError(f"no executed lab ({LAB_GLOB}) in {labs_dir}; run: reclaimlab labs --mode recorded")
    nbs = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sources}
    summaries = [summarize(stem, nb) for stem, nb in nbs.items()]
    executed = _executed_utc(nbs)
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "img").mkdir(parents=True)
    for svg in [*(root / "docs" / "img").glob("*.svg"), *(root / "labs" / "img").glob("*.svg")]:
        shutil.copy(svg, tmp / "img" / svg.name)  # the seed story and the labs' diagrams
    readme = (root / "README.md").read_text(encoding="utf-8")
    pages = {"index.html": landing_html(summaries, binder_url(readme), executed)}
    for stem, nb in nbs.items():
        pages[f"{stem}.html"] = lab_html(nb, stem, summaries, executed)
    rec_dir = paths.recordings_dir()
    entries = json.loads((rec_dir / "index.json").read_text(encoding="utf-8")).get("recordings", [])
    metas = {}
    for e in entries:
        meta = rec_dir / e.get("path", "") / "meta.json"
        if meta.is_file():
            metas[e["path"]] = json.loads(meta.read_text(encoding="utf-8"))
    pages["recordings.html"] = provenance_html(entries, metas, summaries)
    glossary = (root / "docs" / "glossary.md").read_text(encoding="utf-8")
    pages["glossary.html"] = _page("reclaimlab · glossary", rewrite_lab_links(_md(glossary), set(nbs)),
                                   nav_html(summaries, "glossary.html"))
    for name, text in pages.items():
        (tmp / name).write_text(text, encoding="utf-8")
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return [out_dir / name for name in pages]


def main(argv: list[str] | None = None) -> int:
    root = paths.CHECKOUT
    ap = argparse.ArgumentParser(prog="python -m reclaimlab.publish.site", description=__doc__.split("\n\n")[0])
    ap.add_argument("--labs", type=Path, default=root / "build" / "labs" / "recorded", help="the executed labs")
    ap.add_argument("--out", type=Path, default=root / "build" / "site")
    args = ap.parse_args(argv)
    try:
        pages = build(args.labs, args.out, root)
    except (FileNotFoundError, json.JSONDecodeError) as exc:
        print(f"site: {exc}", file=sys.stderr)
        return 1
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"site: {len(pages)} pages, {size / 2**20:.1f} MiB, in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
