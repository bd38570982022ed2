"""Every lab executed by papermill, as `reclaimlab labs` does: in recorded mode always, in live mode
(marked live too) where this guest allows every experiment live (root, writable knobs, not a shared
machine), with consent to turn the knobs, as on this project's CI. Each lab is executed once per mode
per session (the `executed_lab` fixture): the claims tests, the browser's untrusted stage and the site
build open these copies (build/labs/<mode>/)."""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys

import pytest

from reclaimlab.cli.labs import lab_notebooks
from reclaimlab.paths import labs_dir

pytestmark = pytest.mark.labs
LABS = [nb.stem[:2] for nb in lab_notebooks(labs_dir())]


def test_slide_metadata_matches_the_labs():
    out = subprocess.run([sys.executable, str(labs_dir().parent / "ci" / "add-slide-metadata"), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, (out.stdout + out.stderr + "\nrun ci/add-slide-metadata without --check to fix it")


@pytest.mark.parametrize("stem", LABS)
def test_lab_runs_recorded(executed_lab, stem):
    assert executed_lab(stem, "recorded").stat().st_size > 0


@functools.cache
def live_blockers() -> str:
    from reclaimlab.probe.guest import probe
    info = probe()
    return "; ".join(f"{name}: {s.reason}" for name, s in info.live_support.items() if not s.live and name != "vm")


def binder_runs_lab05_live(session: pytest.Session) -> bool:
    """The binder check of this session runs lab 05 and asserts every experiment of it LIVE in the kit's
    VM (binder_check.banner_problems, where QEMU is installed; it needs root): the same six guests booted
    here again would only double its ~3-4 minutes."""
    return (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("qemu-system-x86_64") is not None
            and any(item.get_closest_marker("binder") for item in session.items))


@pytest.mark.live
@pytest.mark.parametrize("stem", LABS)
def test_lab_runs_live(executed_lab, stem, request):
    if live_blockers():
        pytest.skip(f"live labs need every experiment live on this machine, because: {live_blockers()}")
    if stem == "05" and binder_runs_lab05_live(request.session):
        pytest.skip("lab 05 runs LIVE in the kit's VM in this session's binder check, which asserts it")
    assert executed_lab(stem, "live").stat().st_size > 0
