"""Static checks of every lab in labs/: the shape a lab must have, without running it.

Executing the labs is `reclaimlab labs` (ci/); these checks are fast and say exactly which lab
breaks which rule.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

LABS_DIR = Path(__file__).resolve().parents[1] / "labs"
LABS = sorted(LABS_DIR.glob("[0-9][0-9]_*.ipynb"))
HEADINGS = ("Overview", "Prerequisites", "Summary", "What's next", "Resources")
# An offline page must not need JavaScript from a CDN, and one JupyterChart embeds ~0.9 MB of it.
FORBIDDEN_IN_CODE = ("JupyterChart", "cdn.jsdelivr", "unpkg.com", 'renderers.enable("default")',
                     "renderers.enable('default')", "sudo ")


def _load(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _python(source: str) -> str:
    """Cell source without IPython magics and shell escapes, which are not Python."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def test_the_labs_are_numbered_without_gaps_and_each_runs_a_declared_experiment():
    from reclaimlab import catalog
    from reclaimlab.catalog import kit
    numbers = [int(p.name[:2]) for p in LABS]
    assert numbers == list(range(len(LABS))) and len(LABS) >= 2, f"labs/ holds {[p.name for p in LABS]}"
    declared = {lab for name in catalog.names() for lab in catalog.get(name).labs} | set(kit.KIT_VM_LABS)
    orphans = [p.stem for p in LABS[1:] if p.stem not in declared]  # 00 is the start page: it runs nothing
    assert not orphans, f"no experiment's declaration (catalog/kit.py) names these labs: {orphans}"


@pytest.fixture(params=LABS, ids=[p.name for p in LABS])
def nb(request):
    return request.param, _load(request.param)


def test_valid_nbformat_with_a_python_kernel(nb):
    path, notebook = nb
    nbformat.validate(notebook)
    assert notebook.metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: kernelspec must be python3"


def test_committed_without_outputs(nb):
    path, notebook = nb
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name} cell {i}: has outputs; clear them before committing"
            assert cell.execution_count is None, f"{path.name} cell {i}: has an execution count; clear it"
    assert "widgets" not in notebook.metadata, f"{path.name}: saved widget state in the metadata; clear it"
    assert "papermill" not in notebook.metadata, f"{path.name}: papermill metadata: this is an executed copy"


def test_starts_with_a_title(nb):
    path, notebook = nb
    first = notebook.cells[0]
    assert first.cell_type == "markdown" and first.source.lstrip().startswith("# "), \
        f"{path.name}: the first cell must be a markdown title (# ...)"


def test_markdown_has_no_placeholders(nb):
    # a {name} in a markdown cell prints literally: numbers belong in code cells (claims)
    path, notebook = nb
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown":
            prose = re.sub(r"`[^`]*`", "", cell.source)
            found = re.findall(r"\{[A-Za-z_][^{}\n]*\}", prose)
            assert not found, f"{path.name} cell {i}: placeholder(s) {found} in markdown"


def test_has_the_sections_of_every_lab(nb):
    path, notebook = nb
    markdown = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    for heading in HEADINGS:
        if heading == "Overview" and re.search(r"^##\s+By the end you will be able to", markdown, re.M):
            continue  # a lab that states its outcomes needs no topic list (issue 14)
        assert re.search(rf"^#{{2,3}}\s+{re.escape(heading)}", markdown, re.M), \
            f"{path.name}: no '## {heading}' heading"
    assert re.search(r"\|\s*Concept\s*\|\s*Importance\s*\|\s*Notes\s*\|", markdown), \
        f"{path.name}: Prerequisites needs a table with the columns Concept | Importance | Notes"
    assert re.search(r"time to learn", markdown, re.I), f"{path.name}: say the time to learn"


def test_parameters_cell_then_validation(nb):
    path, notebook = nb
    tagged = [i for i, c in enumerate(notebook.cells) if "parameters" in _tags(c)]
    assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters', found {len(tagged)}"
    i = tagged[0]
    cell = notebook.cells[i]
    assert cell.cell_type == "code", f"{path.name}: the parameters cell must be a code cell"
    assigned = {}
    for node in ast.parse(cell.source).body:
        assert isinstance(node, ast.Assign), f"{path.name}: the parameters cell should only assign values"
        for target in node.targets:
            assert isinstance(target, ast.Name)
            assigned[target.id] = ast.literal_eval(node.value)
    assert assigned.get("mode") == "auto", f"{path.name}: parameters must set mode = \"auto\""
    assert assigned.get("allow_system_changes") is False, f"{path.name}: parameters must set allow_system_changes = False"
    imports_before = any(c.cell_type == "code" and re.search(r"^\s*(import|from)\s", c.source, re.M)
                         for c in notebook.cells[:i])
    assert imports_before, f"{path.name}: put the imports in a cell before the parameters"
    following = next((c for c in notebook.cells[i + 1:] if c.cell_type == "code"), None)
    assert following is not None and "lab.setup(" in following.source, \
        f"{path.name}: the first code cell after the parameters must validate them with lab.setup(...)"
    assert "mode=mode" in following.source and "allow_system_changes=allow_system_changes" in following.source, \
        f"{path.name}: lab.setup must receive the mode and allow_system_changes parameters"


def test_solutions_and_instructor_notes_are_collapsed(nb):
    """A solution is a closed <details>: JupyterLab, RISE, nbconvert and GitHub all keep it shut until
    the learner opens it. metadata.jupyter.source_hidden does not hold for a solution: JupyterLab's
    Run All un-hides every markdown cell it runs. Instructor notes stay source_hidden (instructors
    open them; a learner's Run All showing them gives nothing away)."""
    path, notebook = nb
    for i, cell in enumerate(notebook.cells):
        tags = set(_tags(cell))
        if "solution" in tags:
            src = cell.source.strip()
            assert cell.cell_type == "markdown", f"{path.name} cell {i}: a solution must be a markdown cell"
            assert re.match(r"<details><summary>[^<]*<b>Solution</b>[^<]*</summary>\n\n", src) and src.endswith("</details>"), \
                f"{path.name} cell {i}: wrap a solution in <details><summary><b>Solution</b> ...</summary>, a blank " \
                "line, the text, a blank line, </details> (closed: no `open`)"
            assert cell.get("metadata", {}).get("jupyter", {}).get("source_hidden") is not True, \
                f"{path.name} cell {i}: a collapsed solution cell needs two clicks to open; <details> is enough"
        elif "instructor" in tags:
            assert cell.get("metadata", {}).get("jupyter", {}).get("source_hidden") is True, \
                f"{path.name} cell {i}: instructor notes must be collapsed (metadata.jupyter.source_hidden)"


def test_every_question_has_a_solution(nb):
    path, notebook = nb
    questions = sum(c.source.count("lab.question(") for c in notebook.cells if c.cell_type == "code")
    solutions = sum(1 for c in notebook.cells if "solution" in _tags(c))
    assert solutions >= questions, f"{path.name}: {questions} self-check questions but {solutions} solution cells"


def test_code_is_python_and_renders_offline(nb):
    path, notebook = nb
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        try:
            ast.parse(_python(cell.source))
        except SyntaxError as exc:
            pytest.fail(f"{path.name} cell {i}: not valid Python: {exc}")
        for bad in FORBIDDEN_IN_CODE:
            assert bad not in cell.source, f"{path.name} cell {i}: uses {bad.strip()!r}"



# Labs that teach (issue 14): outcomes at the top, keypoints that answer them, every prediction echoed
# against a claim's verdict, and a "Your turn" exercise whose checker is in the library. Add a lab here
# once it has them all.
TEACHING_LABS = ("01_", "02_", "03_", "04_", "05_")


@pytest.mark.parametrize("prefix", TEACHING_LABS)
def test_a_teaching_lab_closes_every_loop(prefix):
    path = next(p for p in LABS if p.name.startswith(prefix))
    notebook = _load(path)
    markdown = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    outcomes = re.search(r"^## By the end you will be able to\n\n((?:\d\. .*\n(?:   .*\n)*)+)", markdown, re.M)
    assert outcomes, f"{path.name}: '## By the end you will be able to' followed by a numbered list"
    n = len(re.findall(r"^\d\. ", outcomes.group(1), re.M))
    assert 3 <= n <= 5, f"{path.name}: {n} outcomes; state 3 to 5"
    keypoints = re.search(r"\*\*Keypoints\*\*.*?\n\n((?:\d\. .*\n(?:   .*\n)*)+)", markdown, re.S)
    assert keypoints and len(re.findall(r"^\d\. ", keypoints.group(1), re.M)) == n, \
        f"{path.name}: the Summary needs **Keypoints**, one numbered point per outcome"
    predictions = re.findall(r"^(\w+) = lab\.predict\(", code, re.M)
    assert predictions and len(predictions) == code.count("lab.predict("), \
        f"{path.name}: keep every prediction's handle (p = lab.predict(...)) to echo it"
    for name in predictions:
        assert re.search(rf"lab\.echo\({name},", code), f"{path.name}: prediction {name} is never echoed (lab.echo)"
    assert re.search(r"exercises\.check_\w+\(", code), f"{path.name}: no exercise checked by reclaimlab.notebook.exercises"
    for load in re.findall(r"%load (solutions/\S+)", code):
        assert (LABS_DIR / load).exists(), f"{path.name}: {load} does not exist"
    assert "../docs/glossary.md" in markdown, f"{path.name}: link the glossary"
