"""binder/ as repo2docker reads it, and the Binder check's reading of the labs' banners (no root needed).

The Binder simulation itself (tests/checks/test_check_binder.py, `pytest -m binder`) needs root and minutes; these checks are fast and say
which file breaks which rule.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from reclaimlab.notebook import lab
from reclaimlab.paths import recordings_dir
from reclaimlab.recording.recording import Recording
from reclaimlab.vm.errors import APT_PACKAGES

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
sys.path.insert(0, str(ROOT / "tests" / "checks"))
import binder_check  # noqa: E402  (the checks' helpers are modules beside their tests, not a package)

# repo2docker builds on Ubuntu, where Debian's kernel metapackage has another name.
UBUNTU_NAMES = {"linux-image-amd64": "linux-image-virtual"}
# What the kit and the labs need (pyproject's dependencies and [labs]), and what issue 6 adds for workshops.
NEEDED = {"pandas", "altair", "vl-convert-python", "psutil", "click", "jupyterlab", "ipykernel", "ipywidgets",
          "papermill", "nbformat", "jupyterlab-rise", "jupyter-resource-usage", "anywidget"}


def _lines(name: str) -> list[str]:
    """The file's lines without comments and blanks, as repo2docker and pip read them."""
    text = (BINDER / name).read_text()
    return [line.partition("#")[0].strip() for line in text.splitlines() if line.partition("#")[0].strip()]


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _commands(script: Path) -> list[str]:
    return [line.strip() for line in script.read_text().splitlines()[1:]
            if line.strip() and not line.lstrip().startswith("#")]


def test_requirements_are_pinned_and_install_the_kit_last():
    lines = _lines("requirements.txt")
    assert lines[-1] == "-e .", "the last line must be `-e .`: repo2docker ignores pyproject.toml once binder/ exists"
    unpinned = [line for line in lines[:-1] if not re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.+!]+", line)]
    assert not unpinned, f"binder/requirements.txt: pin these exactly (name==version): {unpinned}"


def test_requirements_cover_what_the_labs_need():
    pinned = {_normalize(line.split("==")[0]) for line in _lines("requirements.txt")[:-1]}
    assert NEEDED <= pinned, f"binder/requirements.txt lacks {sorted(NEEDED - pinned)}"


def test_pins_satisfy_pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+; 3.10 skips this one
    specifiers = pytest.importorskip("packaging.requirements")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [specifiers.Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["labs"]]
    pins = dict(line.split("==") for line in _lines("requirements.txt")[:-1])
    pins = {_normalize(name): version for name, version in pins.items()}
    for req in wanted:
        version = pins.get(_normalize(req.name))
        assert version is not None and req.specifier.contains(version, prereleases=True), \
            f"binder pins {req.name}=={version}, but pyproject.toml asks for {req}"


def test_runtime_is_a_python_the_kit_supports():
    (line,) = _lines("runtime.txt")
    match = re.fullmatch(r"python-3\.(\d+)", line)
    assert match and int(match[1]) >= 10, f"binder/runtime.txt says {line!r}; use python-3.X with X >= 10"


def test_apt_lists_the_vm_packages_under_ubuntu_names():
    listed = _lines("apt.txt")
    bad = [p for p in listed if not re.fullmatch(r"[a-z0-9.+-]+", p)]
    assert not bad, f"repo2docker refuses these apt.txt lines: {bad}"
    wanted = {UBUNTU_NAMES.get(p, p) for p in APT_PACKAGES}
    assert wanted <= set(listed), f"binder/apt.txt lacks {sorted(wanted - set(listed))} (see ci/setup-vm)"


@pytest.mark.parametrize("name", ["postBuild", "start"])
def test_scripts_are_executable_bash(name):
    script = BINDER / name
    assert os.access(script, os.X_OK), f"binder/{name} must be executable (chmod +x)"
    assert script.read_text().startswith("#!/bin/bash\n")
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_postbuild_stops_at_the_first_error():
    assert _commands(BINDER / "postBuild")[0].startswith("set -e"), "binder/postBuild must start with `set -e`"


def test_start_marks_the_machine_shared_and_execs_its_arguments():
    commands = _commands(BINDER / "start")
    assert commands[-1] == 'exec "$@"', 'binder/start must end with exec "$@" (Binder passes the server command)'
    assert "export RECLAIMLAB_SHARED=1" in commands


def test_start_turns_consent_off_whatever_the_environment_says():
    env = dict(os.environ, RECLAIMLAB_ALLOW_SYSTEM_CHANGES="1", RECLAIMLAB_SHARED="0")
    code = ("import os; from reclaimlab.probe import consent, sources; "
            "print(os.environ.get('RECLAIMLAB_ALLOW_SYSTEM_CHANGES')); print(consent.shared_reason(sources.Roots()))")
    out = subprocess.run([str(BINDER / "start"), sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert out == ["None", "RECLAIMLAB_SHARED=1 marks this machine as shared"]


def test_the_binder_check_is_a_test_under_its_marker_and_tasks_test_runs_every_marker(monkeypatch):
    import test_check_binder  # noqa: E402  (beside binder_check, on the path above)
    assert test_check_binder.pytestmark.mark.name == "binder"
    assert any(name.startswith("test_") for name in vars(test_check_binder))
    monkeypatch.syspath_prepend(str(ROOT))
    import tasks
    runs = []
    monkeypatch.setattr(tasks, "setup", lambda extras: None)
    monkeypatch.setattr(tasks, "install_system_packages", lambda: [])
    monkeypatch.setattr(tasks, "_run", lambda *cmd, **kw: runs.append([str(c) for c in cmd]) or 0)
    assert tasks.test([]) == 0
    (argv,) = runs
    assert argv[1:3] == ["-m", "pytest"] and argv[argv.index("-m", 2) + 1] == "", argv  # -m "": every marker


# --- the check reads the banners lab.banner_html writes -----------------------------------------

def _banner_output(experiment: str, recorded: bool, kind: str = "container", reason: str = "",
                   notices: tuple[str, ...] = ()) -> str:
    meta = {"experiment": experiment, "guest_kind": kind, "hypervisor": "KVM", "kernel_release": "6.1",
            "date_utc": "2025-11-25T18:00:00Z", "complete": True, "mode_reason": reason, "notices": list(notices),
            "parameters": {"size": "3GB"}}
    rec = Recording(pd.DataFrame({"t_s": [0.0]}), meta=meta, why_shown=reason,
                    path=recordings_dir() / experiment / "x" if recorded else None)
    return lab.banner_html(rec)


def _notebook(tmp_path: Path, *outputs: str) -> Path:
    import nbformat
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("ctx.run(...)")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": text}) for text in outputs]
    nb.cells.append(cell)
    path = tmp_path / "01_lab.ipynb"
    nbformat.write(nb, path)
    return path


SCALED = "You asked for 2.79 GiB, but this machine can safely spare only 1.37 GiB right now (...)"
SHARED = "live is not possible here: RECLAIMLAB_SHARED=1 marks this machine as shared: system-wide knobs stay off"
KNOBS = {"calloc-reclaim": False, "refault": False, "page-cache": True}


def test_banners_are_read_as_lab_py_writes_them(tmp_path):
    path = _notebook(tmp_path, _banner_output("calloc-reclaim", False, notices=(SCALED,)),
                     _banner_output("page-cache", True, kind="vm", reason=SHARED))
    live, recorded = binder_check.banners(path)
    assert (live.experiment, live.live, live.guest_kind, live.notices) == ("calloc-reclaim", True, "container",
                                                                          (SCALED,))
    assert (recorded.experiment, recorded.live, recorded.guest_kind, recorded.reason) == ("page-cache", False, "vm",
                                                                                         SHARED)


def _banner(experiment, live, kind="container", reason="", notices=()):
    return binder_check.Banner("01_lab", experiment, live, kind, reason, tuple(notices))


def test_what_a_participant_must_see_passes():
    seen = [_banner("calloc-reclaim", True, notices=[SCALED]), _banner("refault", True),
            _banner("page-cache", False, "vm", SHARED), _banner("calloc-reclaim", True, "kit-vm")]
    assert binder_check.banner_problems(seen, KNOBS) == []


@pytest.mark.parametrize("wrong, complaint", [
    (_banner("page-cache", True, reason="live: this guest can run it"), "must be RECORDED"),
    (_banner("page-cache", False, "vm", "recorded mode was asked for"), "shared-machine reason"),
    (_banner("refault", False, "vm", "no"), "must run LIVE in the container"),
    (_banner("refault", True, "vm"), "must run LIVE in the container"),
])
def test_what_a_participant_must_not_see_fails(wrong, complaint):
    seen = [_banner("calloc-reclaim", True, notices=[SCALED]), _banner("page-cache", False, "vm", SHARED), wrong]
    assert any(complaint in p for p in binder_check.banner_problems(seen, KNOBS))


def test_an_unscaled_3gb_run_in_2gib_fails():
    seen = [_banner("calloc-reclaim", True), _banner("page-cache", False, "vm", SHARED)]
    assert any("no scaled-down notice" in p for p in binder_check.banner_problems(seen, KNOBS))


def test_labs_that_stop_exercising_live_or_recorded_fail():
    problems = binder_check.banner_problems([_banner("refault", True)], KNOBS)
    assert any("calloc-reclaim LIVE" in p for p in problems) and any("RECORDED" in p for p in problems)


VM_SCALED = "allocation scaled down from 2.79 GiB to 460 MiB to fit the 780 MiB guest"


def _vm(lab, experiment, live=True, notices=(), reason="the kit's VM runs here"):
    return binder_check.Banner(lab, experiment, live, "kit-vm", reason, tuple(notices))


def _labs_in_the_vm():
    return [_vm("01_calloc", "calloc-reclaim", notices=[VM_SCALED]), _vm("01_calloc", "refault"),
            _vm("02_page_cache", "page-cache"), _vm("03_compaction", "compaction"),
            _vm("04_wsl", "auto-reclaim"), _vm("04_wsl", "auto-reclaim"), _vm("05_host", "calloc-reclaim")]


def test_with_qemu_labs_01_to_05_must_run_live_in_the_kit_vm():
    knobs = {**KNOBS, "compaction": True, "auto-reclaim": True}
    assert binder_check.banner_problems(_labs_in_the_vm(), knobs, True) == []
    in_container = [b if b.experiment != "refault" else _banner("refault", True) for b in _labs_in_the_vm()]
    assert any("refault has a version in the kit's VM" in p and "LIVE on a container guest" in p
               for p in binder_check.banner_problems(in_container, knobs, True))
    recorded = [b if b.lab != "02_page_cache" else _vm("02_page_cache", "page-cache", False, reason="no kernel")
                for b in _labs_in_the_vm()]
    problems = binder_check.banner_problems(recorded, knobs, True)
    assert any("not LIVE in the kit's VM" in p for p in problems) and any("lab 02 showed no" in p for p in problems)
    unscaled = [b if b.experiment != "calloc-reclaim" else _vm(b.lab, b.experiment) for b in _labs_in_the_vm()]
    assert any("no scaled-down notice" in p for p in binder_check.banner_problems(unscaled, knobs, True))
    lab04_recorded = [b if b.lab != "04_wsl" else binder_check.Banner("04_wsl", "auto-reclaim", False, "vm", SHARED, ())
                      for b in _labs_in_the_vm()]
    problems = binder_check.banner_problems(lab04_recorded, knobs, True)
    assert any("auto-reclaim has a version in the kit's VM" in p for p in problems)
    assert any("lab 04 showed no" in p for p in problems)
    # lab 04 runs the chosen version live and shows the other one's VM recording, saying so: not a problem
    other = _vm("04_wsl", "auto-reclaim", False, reason=binder_check.RECORDED_BY_LAB + "only one version runs live")
    assert binder_check.banner_problems(_labs_in_the_vm() + [other], knobs, True) == []
    no_vm = [b for b in _labs_in_the_vm() if b.guest_kind != "kit-vm"]
    assert any("no experiment ran in the kit's VM" in p for p in binder_check.banner_problems(no_vm, knobs, True))


def test_lab_03_shows_lab_05s_order_runs_recorded_saying_so():
    knobs = {**KNOBS, "compaction": True, "auto-reclaim": True}
    order = _vm("03_compaction", "compaction", False, reason="lab 05 runs the same experiment live in the kit's VM.")
    assert binder_check.banner_problems(_labs_in_the_vm() + [order, order], knobs, True) == []
    other = _vm("03_compaction", "compaction", False, reason="no kernel")
    assert any("not LIVE in the kit's VM" in p for p in binder_check.banner_problems(_labs_in_the_vm() + [other], knobs, True))
    elsewhere = _vm("02_page_cache", "page-cache", False, reason=order.reason)
    assert any("02_page_cache: page-cache was RECORDED" in p
               for p in binder_check.banner_problems(_labs_in_the_vm() + [elsewhere], knobs, True))


def test_a_lab_slower_than_three_minutes_fails_the_check():
    assert binder_check.time_problems({"01_calloc": 120.0, "05_host": 179.0, "00_start": 400.0}) == []
    assert binder_check.time_problems({"02_page_cache": 181.0}) == ["02_page_cache: 181 s, more than 180 s"]
    assert binder_check.time_problems({"03_compaction": None}) == ["03_compaction: no duration recorded"]


def test_boot_kernels_are_made_root_only_and_restored(tmp_path, monkeypatch):
    monkeypatch.setattr(binder_check.tempfile, "gettempdir", lambda: str(tmp_path))
    boot = tmp_path / "boot"
    boot.mkdir()
    kernel = boot / "vmlinuz-9.9-test"
    kernel.write_bytes(b"k")
    kernel.chmod(0o644)
    modes = binder_check.make_boot_kernels_root_only(boot)
    assert kernel.stat().st_mode & 0o777 == 0o600 and binder_check.boot_modes_file(os.getpid()).exists()
    binder_check.restore_boot_modes(modes)
    assert kernel.stat().st_mode & 0o777 == 0o644 and not binder_check.boot_modes_file(os.getpid()).exists()
    # A run killed before it restored them: the next one does, from the file it left.
    kernel.chmod(0o600)
    (tmp_path / f"{binder_check.PREFIX}999999999-boot-modes.json").write_text(json.dumps({str(kernel): 0o644}))
    binder_check.restore_leftover_boot_modes()
    assert kernel.stat().st_mode & 0o777 == 0o644


def test_the_kit_vm_banner_is_read_as_live(tmp_path):
    text = ("<div class=\"reclaimlab-live\"><b>LIVE in the kit&#x27;s VM on this machine</b> · calloc-reclaim · "
            "kit-vm guest · hypervisor QEMU TCG · kernel 6.18.56-0-virt<br>Why live: the kit's VM runs here</div>")
    nb = tmp_path / "05_lab.ipynb"
    nb.write_text(json.dumps({"cells": [{"cell_type": "code", "outputs": [{"data": {"text/html": text}}]}]}))
    (banner,) = binder_check.banners(nb)
    assert (banner.experiment, banner.live, banner.guest_kind) == ("calloc-reclaim", True, "kit-vm")
