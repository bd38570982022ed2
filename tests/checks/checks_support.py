"""What the checks under tests/checks share: running a helper module (binder_check.py, hub_check.py) as its
own process, a skip without root, and the browser the browser and site checks drive (Debian's chromium,
which ci/setup-browser installs, through the playwright package of the `browser` extra). The helpers live
beside their tests, where pytest puts this folder on sys.path (tests/conftest.py is the only conftest:
tests import it by name)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def needs_root(what: str) -> None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip(f"needs root, to {what} (CI runs as root)")


@pytest.fixture
def shown(pytestconfig):
    """with shown(): a check's own progress lines go straight to the terminal (CI's log) as they come,
    as its stage's did, instead of appearing only when it fails: these checks take minutes."""
    return pytestconfig.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled


def run_helper(name: str, *args: str) -> None:
    """Run tests/checks/<name>.py as its own process (it makes users, cgroups and servers, and handles
    SIGTERM itself); its output is this test's captured output, and a non-zero status fails the test."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    rc = subprocess.call([sys.executable, str(HERE / f"{name}.py"), *args], cwd=ROOT, env=env)
    assert rc == 0, f"{name}.py exited with status {rc}; its lines starting FAILED above say why"


@pytest.fixture(scope="session")
def chromium() -> Path:
    """/usr/bin/chromium and the playwright package, or a skip naming what is missing."""
    from browser_check import CHROMIUM
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: ci/setup-browser installs Debian's chromium (as root; "
                    "`python3 tasks.py test` runs it)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("the playwright package is missing: python3 tasks.py setup installs it (the `browser` extra)")
    return CHROMIUM
