"""Container mode (Binder, JupyterHub): what a participant's container may run live, and what it shows.

In a container the memory limit is the cgroup's and /proc/meminfo is the host's. So: allocations run
live, sized to the cgroup and watched through it; knob experiments are recorded, for the shared-machine
reason; the host's views are not offered; the stacked chart is the cgroup's. The fixture trees
container-v1 / container-v2 hold a 2 GiB limit; the last test runs calloc-reclaim for real, unprivileged,
inside a 2 GiB cgroup v1 (or v2) made for it.
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import tree_roots
from reclaimlab.present import charts
from reclaimlab.experiments import harness as experiments, sizing
from reclaimlab.probe import guest, hostviews as host, consent
from reclaimlab.experiments import verdicts
from reclaimlab.recording import recording
from reclaimlab.recording.recording import Recording
from reclaimlab.sampling.sampler import Sampler

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "checks"))
import binder_check  # noqa: E402  (the checks' helpers are modules beside their tests, not a package)

GIB = 1024 ** 3
MIB = 1024 ** 2
TREES = ["container-v1", "container-v2"]
# (usage, file, anon) in the trees' cgroup files: v1 usage_in_bytes/total_cache/total_rss, v2 memory.current/file/anon
CGROUP_FIGURES = {"container-v1": (536870912, 209715200, 314572800), "container-v2": (314572800, 94371840, 201326592)}
KNOB_EXPERIMENTS = ("page-cache", "compaction", "auto-reclaim")
BINDER = {"BINDER_LAUNCH_HOST": "https://mybinder.org/", "BINDER_REPO_URL": "https://github.com/OWNER/reclaimlab"}


@pytest.fixture(autouse=True)
def no_consent_or_shared_from_the_developer(monkeypatch):
    for name in (consent.ALLOW_ENV, consent.SHARED_ENV, *BINDER):
        monkeypatch.delenv(name, raising=False)


# --- the probe ---------------------------------------------------------------------------------

@pytest.mark.parametrize("tree", TREES)
def test_allocations_are_live_within_the_cgroup_knobs_are_not(tree):
    info = verdicts.probe(tree_roots(tree), env={})
    usage = CGROUP_FIGURES[tree][0]
    assert info.kind == "container" and info.memory.cgroup_limit_bytes == 2 * GIB
    assert info.memory.memory_budget_bytes == guest.safe_budget_bytes(info.memory.mem_available_bytes, 2 * GIB, usage)
    for name in ("calloc-reclaim", "refault"):
        assert info.live_support[name].live, info.live_support[name].reason
    for name in KNOB_EXPERIMENTS:
        support = info.live_support[name]
        assert not support.live and "other users share" in support.reason


def test_the_shared_machine_is_the_reason_given_even_without_root():
    # A participant is not root either, but no permission would change the answer: say the real reason.
    import dataclasses
    info = guest.probe(tree_roots("container-v2"), env={})
    knobs = {name: consent.KnobAccess(name, None, False, "needs root (reclaimlab never uses sudo)")
             for name in ("drop_caches", "compact_memory", "compaction_proactiveness", "memory.reclaim")}
    info = dataclasses.replace(info, knobs=knobs, cgroup_limit_writable=False, consent_given=False,
                               shared_reason="this runs in Binder (BINDER_* set)", scratch_free_bytes=10 * GIB)
    support = verdicts.live_support(info)
    for name in KNOB_EXPERIMENTS:
        assert support[name].reason.startswith("this runs in Binder") and "needs root" not in support[name].reason


def test_the_machines_host_views_are_not_offered_in_a_container(tree_copy):
    roots = tree_copy("container-v2")
    params = roots.sys / "module/page_reporting/parameters"
    params.mkdir(parents=True)
    (params / "reported_kib").write_text("123456\n")  # the machine's kernel exposes it, but it is not ours
    specs, notes = host.find_host_views(roots, {})
    assert specs == [] and "not this container's" in notes[0]
    assert host.available_host_views(roots, env={}) == []
    assert guest.probe(roots, env={}).host_views == ()
    ns = roots.proc / "self/ns/pid"  # the same tree outside a container offers it
    ns.unlink()
    ns.symlink_to(f"pid:[{consent.INIT_PID_NS_INODE}]")
    assert [s.name for s in host.find_host_views(roots, {})[0]] == ["reported_kib"]


def test_knob_experiments_fall_back_to_recordings_with_the_reason(monkeypatch):
    roots = tree_roots("container-v1")
    for name in KNOB_EXPERIMENTS:
        blocker = experiments.live_blocker(experiments.get(name), "local", True, roots=roots)
        assert blocker and "other users share" in blocker
    assert experiments.live_blocker(experiments.get("calloc-reclaim"), "local", None, roots=roots) is None


# --- sizing -----------------------------------------------------------------------------------

@pytest.mark.parametrize("tree", TREES)
def test_3gb_is_scaled_down_to_the_cgroup_with_a_notice(tree):
    roots = tree_roots(tree)
    plan = sizing.plan_allocation("3GB", "auto", roots)
    assert plan.scaled and plan.size_bytes <= plan.safe_bytes < 2 * GIB - CGROUP_FIGURES[tree][0]
    assert plan.size_bytes >= sizing.MIN_USEFUL_BYTES and plan.size_bytes % sizing.ROUND_BYTES == 0
    assert "safely spare only" in plan.notice and "memory cgroup's limit 2.00 GiB" in plan.notice
    with pytest.raises(sizing.SizeTooLarge, match="memory cgroup's limit"):
        sizing.plan_allocation("3GB", "live", roots)


# --- the sampler and the chart -----------------------------------------------------------------

def _sample(tree: str) -> Recording:
    with Sampler(hz=20, roots=tree_roots(tree), experiment="calloc-reclaim") as s:
        time.sleep(0.15)
    return s.recording


@pytest.mark.parametrize("tree", TREES)
def test_the_sampler_records_the_cgroup(tree):
    rec = _sample(tree)
    usage, file_bytes, anon = CGROUP_FIGURES[tree]
    df = rec.samples
    assert (df["cgroup_usage_bytes"] == usage).all()
    assert (df["cgroup_file_bytes"].dropna() == file_bytes).all() and (df["cgroup_anon_bytes"].dropna() == anon).all()
    assert rec.meta["guest_kind"] == "container" and rec.meta["cgroup_limit_bytes"] == 2 * GIB


@pytest.mark.parametrize("tree", TREES)
def test_the_stacked_chart_of_a_container_is_its_cgroup(tree):
    rec = _sample(tree)
    long, order, whose = charts.memory_stack(rec)
    usage, file_bytes, anon = CGROUP_FIGURES[tree]
    first = long[long["t_s"] == long["t_s"].iloc[0]].set_index("part")["GiB"]
    assert order == charts.CGROUP_STACK and list(first.index) == charts.CGROUP_STACK and "cgroup" in whose
    anon_part, file_part, other_part, free_part = (first[name] for name in charts.CGROUP_STACK)
    assert (anon_part, file_part) == (anon / GIB, file_bytes / GIB)
    assert other_part == pytest.approx((usage - anon - file_bytes) / GIB)
    assert free_part == pytest.approx((2 * GIB - usage) / GIB)
    assert first.sum() == pytest.approx(2.0)  # the stack fills up to the limit, never to the host's MemTotal
    chart = charts.stacked_memory(rec).to_dict()
    assert "container's memory cgroup" in str(chart["title"])


def test_the_stacked_chart_elsewhere_is_meminfo():
    rec = _sample("firecracker-vm")
    long, order, _ = charts.memory_stack(rec)
    assert order == [name for name, _ in charts.STACK] and set(long["part"]) <= set(order)


def test_stat_columns_read_every_kth_sample_are_carried_forward():
    samples = pd.DataFrame({"t_s": [0.0, 0.1, 0.2], "cgroup_usage_bytes": [GIB, GIB, GIB],
                            "cgroup_anon_bytes": [512 * MIB, None, None], "cgroup_file_bytes": [256 * MIB, None, None]})
    rec = Recording(samples, meta={"guest_kind": "container", "cgroup_limit_bytes": 2 * GIB})
    long, _, _ = charts.memory_stack(rec)
    anon = long[long["part"] == charts.CGROUP_STACK[0]]["GiB"]
    assert list(anon) == [0.5, 0.5, 0.5]


def test_line_charts_take_byte_columns_in_their_unit():
    samples = pd.DataFrame({"t_s": [0.0, 1.0], "cgroup_anon_bytes": [0, GIB], "anon_kib": [0, 1024 * 1024]})
    chart = charts.lines(Recording(samples), {"cgroup_anon_bytes": "cgroup", "anon_kib": "meminfo"}, "t", unit="GiB")
    values = [row for row in next(iter(chart.to_dict()["datasets"].values())) if row["t_s"] == 1.0]
    assert sorted(row["GiB"] for row in values) == [1.0, 1.0]


# --- live: a participant's container, for real ------------------------------------------------

PARTICIPANT_SCRIPT = """
import sys
from reclaimlab.recording import recording
from reclaimlab.experiments import run
rec = run("calloc-reclaim", mode="auto", size="3GB", observe_s=2, quiet=True)
recording.save(rec, sys.argv[1])
"""


def _nobody() -> tuple[int, int]:
    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


def _can_run_the_kit_as(uid: int, gid: int, env: dict[str, str]) -> bool:
    cmd = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--", sys.executable, "-c",
           "import reclaimlab, pandas"]
    return subprocess.run(cmd, env=env, capture_output=True).returncode == 0


@pytest.fixture
def participant_home():
    """A home the unprivileged user can reach (pytest's tmp_path sits under a folder only root may enter)."""
    home = Path(tempfile.mkdtemp(prefix=f"{binder_check.PREFIX}{os.getpid()}-pytest-"))
    os.chown(home, *_nobody())
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.mark.live
def test_calloc_reclaim_runs_live_in_a_2gib_cgroup_as_a_participant(participant_home):
    if os.geteuid() != 0:
        pytest.skip("needs root to make a memory cgroup and drop to an unprivileged user")
    uid, gid = _nobody()
    home = participant_home
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", **BINDER}
    if not _can_run_the_kit_as(uid, gid, env):
        pytest.skip(f"user nobody cannot run {sys.executable} with the kit (a venv under a private folder?)")
    try:
        cgroup = binder_check.Cgroup.create(f"{binder_check.PREFIX}{os.getpid()}-pytest", 2 * GIB)
    except binder_check.CheckFailed as exc:
        pytest.skip(str(exc))
    out = home / "rec"
    try:
        cmd = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--no-new-privs", "--",
               sys.executable, "-c", PARTICIPANT_SCRIPT, str(out)]
        proc = subprocess.run(cmd, env=env, cwd=home, preexec_fn=cgroup.join, capture_output=True, text=True,
                              timeout=180)
        counters = cgroup.counters()
    finally:
        cgroup.remove()
    assert proc.returncode == 0, f"the participant's run failed ({proc.returncode}): {proc.stderr[-2000:]}"
    assert counters["oom_kill"] == 0, f"OOM-killed in the 2 GiB cgroup: {counters}"

    rec = recording.load(out)
    meta, res, df = rec.meta, rec.meta["results"], rec.samples
    assert meta["mode"] == "live" and meta["guest_kind"] == "container" and meta["cgroup_limit_bytes"] == 2 * GIB
    assert res["requested_bytes"] == 3_000_000_000 and 256 * MIB <= res["size_bytes"] < 2 * GIB
    assert any("safely spare only" in n and "memory cgroup's limit 2.00 GiB" in n for n in meta["notices"])
    # Watched through the cgroup: the buffer shows up in the cgroup's anon, within the limit.
    anon = df["cgroup_anon_bytes"].dropna()
    assert anon.max() - anon.iloc[0] >= 0.9 * res["size_bytes"]
    assert df["cgroup_usage_bytes"].max() <= 2 * GIB and counters["peak_bytes"] <= 2 * GIB
    assert "host_reported_kib" not in df.columns, "the machine's reported_kib was shown as the participant's"
    long, order, _ = charts.memory_stack(rec)
    assert order == charts.CGROUP_STACK
    assert long.groupby("t_s")["GiB"].sum().max() == pytest.approx(2.0, rel=0.02)
