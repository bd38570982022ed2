"""Facts measured once and passed down, and no hidden state (issue 22, parts 2 and 3).

- one lab `setup()` + `run()` probes the guest exactly once: the plan, the harness's live verdict,
  the sampler and the recording's meta all use the GuestInfo the context carries;
- importing the package and running a lab in recorded mode changes no module-level state of
  reclaimlab; nothing is registered with altair or loaded with ctypes at import.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import pkgutil
import subprocess
import sys
import types

import pytest

import reclaimlab
from reclaimlab.experiments import harness, live
from reclaimlab.notebook import context, lab
from reclaimlab.probe import guest

LAB_EXPERIMENTS = ["calloc-reclaim", "refault", "page-cache"]


@pytest.fixture
def probe_calls(monkeypatch):
    """A list that grows by one at every call of the guest probe (the real one still answers)."""
    calls: list[tuple] = []
    real = guest.probe

    def counting(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(guest, "probe", counting)
    monkeypatch.delenv("RECLAIMLAB_MODE", raising=False)
    return calls


def test_recorded_lab_probes_once_for_setup_and_run(probe_calls):
    ctx = lab.setup(mode="recorded", experiments=LAB_EXPERIMENTS, show=False)
    assert len(probe_calls) == 1 and ctx.guest is not None
    rec = ctx.run("page-cache", show_banner=False)
    assert len(probe_calls) == 1
    assert rec.meta["experiment"] == "page-cache" and rec.why_shown == "recorded mode was asked for"


def test_auto_lab_probes_once_and_the_facts_reach_the_run_and_its_meta(probe_calls, monkeypatch):
    """auto mode, with the planned verdicts for three experiments and a live run whose script is cut to
    a mark (the harness, its lock, LiveRun, the sampler and the Recorder are the real ones)."""
    seen = {}

    def tiny(params, mode, guest, allow, quiet, guest_info=None):
        seen["guest_info"] = guest_info
        with live.LiveRun("refault", params, mode, quiet, guest_info=guest_info) as run:
            run.mark("end")
        return run.recording

    monkeypatch.setitem(harness.REGISTRY, "refault", dataclasses.replace(harness.get("refault"), runner=tiny))
    # the tiny run allocates nothing, so it need not wait for another live run on this (shared) machine
    monkeypatch.setattr(harness, "_guest_lock", lambda *a: (contextlib.ExitStack(), None))
    ctx = lab.setup(mode="auto", experiments=LAB_EXPERIMENTS, show=False)
    assert len(probe_calls) == 1
    assert set(ctx.plan) == set(LAB_EXPERIMENTS)
    rec = ctx.run("refault", show_banner=False, size="16MiB")
    assert len(probe_calls) == 1, "run() probed the guest again instead of using the context's"
    if "guest_info" not in seen:  # a guest that cannot run refault live
        pytest.skip(f"refault did not run live on this guest now ({ctx.plan['refault'][1]}; {rec.why_shown})")
    assert seen["guest_info"] is ctx.guest
    assert rec.meta["guest_kind"] == ctx.guest.kind
    assert rec.meta["page_reporting_order"] == ctx.guest.page_reporting_order
    assert rec.meta["page_reporting_params"] == dict(ctx.guest.page_reporting_params)


def test_run_without_a_context_still_probes_once(probe_calls, monkeypatch):
    """experiments.run() called on its own (the CLI, a script) probes for itself, once."""
    monkeypatch.setattr(harness, "_guest_lock", lambda *a: (_ for _ in ()).throw(AssertionError("no live run here")))
    monkeypatch.setattr(harness, "live_blocker", lambda exp, g, allow, roots=None, guest_info=None:
                        "refused for this test" if guest_info is not None else "guest_info was not passed")
    rec = harness.run("refault", mode="auto", quiet=True)
    assert len(probe_calls) == 1 and rec.why_shown == "live is not possible here: refused for this test"


# --------------------------------------------------------------------------- no hidden state

def _all_modules() -> list[types.ModuleType]:
    mods = []
    for info in pkgutil.walk_packages(reclaimlab.__path__, "reclaimlab."):
        if info.name.endswith("__main__"):
            continue
        mods.append(importlib.import_module(info.name))
    return mods


def _state(mods: list[types.ModuleType]) -> dict[tuple[str, str], object]:
    """Every module global that is data (not a module, function, class or typing alias): containers copied."""
    out = {}
    for mod in mods:
        for name, value in vars(mod).items():
            if name.startswith("__") or isinstance(value, (types.ModuleType, types.FunctionType, type)) \
                    or callable(value):
                continue
            if isinstance(value, (list, dict, set)):
                value = ("container", id(value), json.dumps(value, sort_keys=True, default=repr))
            out[(mod.__name__, name)] = value if isinstance(value, tuple) else ("value", id(value), repr(value))
    return out


@pytest.fixture
def altair_renderer_kept():
    """setup() enables altair's offline renderer (altair's own setting, on purpose): put back what was active."""
    import altair as alt
    active, options = alt.renderers.active, dict(alt.renderers.options)
    yield
    alt.renderers.enable(active, **options)


def test_a_recorded_lab_changes_no_module_level_state(tmp_path, monkeypatch, altair_renderer_kept):
    import shutil

    from reclaimlab.paths import recordings_dir
    monkeypatch.delenv("RECLAIMLAB_MODE", raising=False)
    mods = _all_modules()
    before = _state(mods)
    mine = tmp_path / "mine"
    shutil.copytree(next(p for p in sorted((recordings_dir() / "page-cache").iterdir()) if "local" in p.name), mine)
    ctx = lab.setup(mode="recorded", experiments=LAB_EXPERIMENTS, presenter=True, show=False,
                    recordings={"page-cache": str(mine)})
    assert ctx.run("page-cache", show_banner=False).path == mine
    ctx.run("refault", show_banner=False)
    after = _state(mods)
    changed = sorted(f"{m}.{n}" for m, n in before.keys() & after.keys() if before[(m, n)] != after[(m, n)])
    added = sorted(f"{m}.{n}" for m, n in after.keys() - before.keys())
    assert not changed and not added
    # the former globals are gone
    assert not hasattr(harness, "REPLAY")
    from reclaimlab.present import charts
    assert not hasattr(charts, "_presenter") and charts.presenter_fonts() is True
    assert not hasattr(importlib.import_module("reclaimlab.vm.machine"), "_libc")
    assert ctx.mode_source == "the lab's mode parameter"
    # what a lab chose travels with its context
    assert ctx.recordings == {"page-cache": str(mine)} and context.LabContext.__dataclass_fields__["recordings"]


def test_importing_the_package_registers_and_loads_nothing():
    """In a fresh interpreter: every module imported, and still no altair renderer of ours and no libc handle."""
    code = (
        "import ctypes, importlib, pkgutil, sys\n"
        "loaded = []\n"
        "real = ctypes.CDLL.__init__\n"
        "def spy(self, *a, **kw):\n"
        "    loaded.append(a[:1]); real(self, *a, **kw)\n"
        "ctypes.CDLL.__init__ = spy\n"
        "import reclaimlab\n"
        "for i in pkgutil.walk_packages(reclaimlab.__path__, 'reclaimlab.'):\n"
        "    if not i.name.endswith('__main__'):\n"
        "        importlib.import_module(i.name)\n"
        "import altair as alt\n"
        "print(repr(('reclaimlab-img' in alt.renderers.names(), alt.renderers.active, loaded)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "PYTHONPATH": reclaimlab.__path__[0].rsplit("/", 1)[0]})
    registered, active, loaded = eval(out.stdout.strip().splitlines()[-1])
    assert registered is False and active != "reclaimlab-img"
    assert loaded == []


# --------------------------------------------------------------------------- one place for each derived figure

def test_free_memory_in_blocks_at_an_order_is_one_sum_everywhere():
    """analysis, the stall reasons, the exercise and the kit's VM protocol give one figure (procfs's)."""
    from reclaimlab.notebook import exercises
    from reclaimlab.present import analysis
    from reclaimlab.present.findings import _stall
    from reclaimlab.probe import procfs
    from reclaimlab.recording import datasets
    from reclaimlab.vm import protocol

    rec = datasets.find("compaction", {}, why_shown="test")
    b = rec.buddyinfo
    snap = b[b["label"] == "fragmented"]
    by_order = [int(snap[snap["order"] == k]["free_blocks"].sum()) for k in range(int(snap["order"].max()) + 1)]
    for order in (0, 5, 9):
        by_hand = sum(n * 2 ** k * 4 for k, n in enumerate(by_order) if k >= order)  # 4 KiB pages
        assert by_hand > 0
        assert analysis.free_kib_at_least(rec, "fragmented", order) == by_hand
        assert exercises.reportable_kib(rec, order, "fragmented") == by_hand
        assert protocol.reportable_free_kib(tuple(by_order), order) == by_hand
        assert procfs.free_kib_at_least(dict(enumerate(by_order)), order) == by_hand
    assert analysis.reporting_order(rec) == 9
    small, large = _stall.small_block_free_kib(rec, "fragmented")
    assert large == analysis.free_kib_at_least(rec, "fragmented", 9)
    assert small + large == analysis.free_kib_at_least(rec, "fragmented", 0) and small > 0


@pytest.mark.parametrize("meta, order", [
    ({"page_reporting_order": 9}, 9),
    ({"page_reporting_order": "5"}, 5),
    ({"page_reporting_order": -1}, None),                                   # Linux >= 6.2 before a balloon
    ({"page_reporting_order": True}, None),
    ({"page_reporting_order": None, "results": {"page_reporting_order": 7}}, 7),  # a compaction run's results
    ({}, None),
])
def test_a_recordings_reporting_order_is_read_one_way(meta, order):
    from reclaimlab.present import analysis
    from reclaimlab.present.findings import compaction, reporting_order
    from reclaimlab.recording.recording import Recording
    import pandas as pd
    rec = Recording(samples=pd.DataFrame({"t_s": [0.0]}), meta=meta)
    assert analysis.reporting_order(rec) == order
    assert reporting_order.order_of(rec) == order
    assert compaction.reporting_order(rec) == ((order, True) if order is not None else (compaction.DEFAULT_ORDER, False))


def test_the_live_order_is_the_module_parameter(tree_copy):
    from reclaimlab.probe import guest as guest_mod, sources
    roots = tree_copy("firecracker-vm")
    param = roots.sys / sources.PAGE_REPORTING_PARAMS / "page_reporting_order"
    assert param.exists()
    param.write_text("5\n")
    assert sources.page_reporting_order(roots) == 5 == guest_mod.probe(roots).page_reporting_order
    param.write_text("-1\n")
    assert sources.page_reporting_order(roots) is None is guest_mod.probe(roots).page_reporting_order
