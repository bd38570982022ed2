"""Shared test helpers: where the fixtures live, and copies of captured trees to modify.

tests/fixtures/trees/<name>/{proc,sys,...}: kernel files captured from a guest (firecracker-vm,
by tests/fixtures/capture_tree.py) or made by hand (wsl2, container-v1, container-v2,
bare-metal, wsl1). tests/fixtures/files/: single files, e.g. old, new and corrupt /proc/meminfo.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reclaimlab.probe.sources import Roots

FIXTURES = Path(__file__).parent / "fixtures"
TREES = FIXTURES / "trees"
FILES = FIXTURES / "files"


def tree_roots(name: str) -> Roots:
    """Roots of a fixture tree, read-only use."""
    base = TREES / name
    assert base.is_dir(), f"no fixture tree {base}"
    return Roots(base / "proc", base / "sys")


def fixture_text(name: str) -> str:
    return (FILES / name).read_text()


@pytest.fixture
def tree_copy(tmp_path):
    """tree_copy("wsl2") -> Roots of a private copy (symlinks kept) that a test may change."""
    def copy(name: str) -> Roots:
        dest = tmp_path / name
        shutil.copytree(TREES / name, dest, symlinks=True)
        return Roots(dest / "proc", dest / "sys")
    return copy


@pytest.fixture
def demo_experiment():
    """"demo": the tests' own experiment, declared through the public API (the schema refuses recordings
    of an experiment nobody declared), withdrawn after the test (modules saving "demo" recordings use it)."""
    from reclaimlab import catalog
    catalog.declare(catalog.Experiment("demo", "the tests' own recordings", defaults={"size": "1GiB"},
                                       results={"touch_s": "s", "free_s": "s"}, columns={"host_fake_kib": "KiB"}))
    yield
    catalog.withdraw("demo")
