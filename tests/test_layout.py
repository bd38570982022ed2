"""The layout by stage holds: no import cycle in lib/, and no stage imports a stage above it.

Reads every import (module-level and inside functions) with ast, so a lazy import inside a function
counts: it is still a dependency, only a later one.
"""
from __future__ import annotations

import ast
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "lib"
PKG = LIB / "reclaimlab"

# Lowest first. A module may import its own stage and any stage before it, never one after it.
STAGES = [
    ("base", ["reclaimlab", "reclaimlab.paths", "reclaimlab.units", "reclaimlab.waiting"]),
    ("catalog", ["reclaimlab.catalog"]),  # what each experiment is, declared once: pure data
    ("probe", ["reclaimlab.probe"]),  # reads this guest; changes nothing
    ("control", ["reclaimlab.control"]),  # changes it: system-wide knobs, the live-run lock
    ("recording", ["reclaimlab.recording"]),  # restructure: keep
    ("sampling", ["reclaimlab.sampling"]),
    ("vm", ["reclaimlab.vm"]),
    ("wsl", ["reclaimlab.wsl"]),
    ("experiments", ["reclaimlab.experiments"]),  # restructure: keep
    ("present", ["reclaimlab.present"]),
    ("notebook", ["reclaimlab.notebook"]),
    ("publish", ["reclaimlab.publish"]),  # the executed labs as a static site
    ("cli", ["reclaimlab.cli"]),  # restructure: keep
]


def stage_of(module: str) -> int:
    best = None
    for i, (_, prefixes) in enumerate(STAGES):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > best[1]):
                best = (i, len(p))
    assert best is not None, f"{module} is in no stage: add it to STAGES in {Path(__file__).name}"
    return best[0]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(LIB).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    base = LIB.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports_of(path: Path) -> dict[str, int]:
    """{imported reclaimlab module: line} for every import in the file, at any depth."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if is_module(f"{mod}.{a.name}") else mod for a in node.names]
        else:
            continue
        for t in targets:
            if t.split(".")[0] == "reclaimlab" and t != me:
                found.setdefault(t, node.lineno)
    return found


def graph() -> dict[str, dict[str, int]]:
    return {module_name(p): imports_of(p) for p in sorted(PKG.rglob("*.py"))}


def cycles(g: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in g:
        if v not in index:
            visit(v)
    return out


def test_every_module_is_in_a_stage():
    for module in graph():
        stage_of(module)


def test_no_import_cycle():
    assert cycles(graph()) == []


def test_no_stage_imports_a_higher_one():
    g = graph()
    upward = [f"{src} ({STAGES[stage_of(src)][0]}) imports {dst} ({STAGES[stage_of(dst)][0]}) at line {line}"
              for src, deps in g.items() for dst, line in deps.items() if stage_of(dst) > stage_of(src)]
    assert upward == []


def test_the_checks_can_fail():
    """The detectors find a made-up cycle and a made-up upward import."""
    assert cycles({"a": {"b": 1}, "b": {"a": 2}, "c": {"a": 3}}) == [["a", "b"]]
    assert stage_of("reclaimlab.probe.guest") < stage_of("reclaimlab.vm.machine")
