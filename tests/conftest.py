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


class _ExecutedLabs:
    """Each lab executed by papermill at most once per mode in a pytest session, into build/labs/<mode>/
    (where `reclaimlab labs` writes it): the labs check, the claims tests, the browser's untrusted
    stage and the site build open the same copy instead of executing the lab again."""

    def __init__(self) -> None:
        self.started_s = __import__("time").time()
        self.done: dict[tuple[str, str], Path | BaseException] = {}

    def __call__(self, stem: str, mode: str = "recorded") -> Path:
        from reclaimlab.cli import labs as cli_labs
        from reclaimlab.paths import labs_dir
        key = (stem, mode)
        if key not in self.done:
            nb = next(labs_dir().glob(f"{stem}_*.ipynb"))
            out_dir = cli_labs.executed_dir(labs_dir(), mode)
            out_dir.mkdir(parents=True, exist_ok=True)
            try:
                # live: the knob labs (02-04) need the consent CI gives on a guest of its own
                cli_labs.execute_lab(nb, out_dir, mode, allow_system_changes=mode == "live")
                self.done[key] = out_dir / nb.name
            except BaseException as exc:  # a failed lab fails every test that needs it, with its reason
                self.done[key] = exc
        got = self.done[key]
        if isinstance(got, BaseException):
            raise got
        return got

    def all(self, mode: str = "recorded") -> Path:
        """Every lab executed in this mode (in this session); returns their folder."""
        from reclaimlab.cli import labs as cli_labs
        from reclaimlab.paths import labs_dir
        for nb in cli_labs.lab_notebooks(labs_dir()):
            self(nb.stem[:2], mode)
        return cli_labs.executed_dir(labs_dir(), mode)


@pytest.fixture(scope="session")
def executed_lab() -> _ExecutedLabs:
    """executed_lab("01") -> build/labs/recorded/01_....ipynb, executed once per session;
    executed_lab("05", "live"); executed_lab.all("recorded") -> the folder with every lab executed."""
    return _ExecutedLabs()


@pytest.fixture(scope="session")
def live_calloc_512mib():
    """One live calloc-reclaim run of 512 MiB (held 1 s, watched 15 s after the free), made once per session
    for every test asserting on such a run (the workload's counters, its maps, the sampler's gaps): the same
    run made twice cost ~16 s more."""
    from reclaimlab.experiments import run
    return run("calloc-reclaim", mode="live", size="512MiB", hold_s=1.0, observe_s=15, quiet=True)


MACHINE_MARKERS = ("live", "vm", "slow", "labs", "browser", "binder", "hub", "site", "corpus")


def pytest_collection_modifyitems(config, items):
    # Under pytest-xdist (addopts: -n auto --dist loadgroup) tests that use the machine (its memory, the
    # machine lock, a Jupyter server, the kit's VM) all go to one worker, one at a time, as without xdist;
    # only the fast tests are spread over the cores.
    for item in items:
        if any(item.get_closest_marker(name) for name in MACHINE_MARKERS):
            item.add_marker(pytest.mark.xdist_group("machine"))


def vm_missing() -> str | None:
    """Why the kit's VM cannot boot here (no QEMU or no guest kernel), or None: the `vm` tests' skip reason."""
    from reclaimlab.vm import build, machine
    from reclaimlab.vm.errors import VmSetupError
    try:
        machine.find_qemu()
        build.find_kernel()
    except VmSetupError as exc:
        return f"kit VM not installed here ({exc})"
    return None
