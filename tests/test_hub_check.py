"""The hub check's judgement of a room (fast, no root), and a broken room caught (root: seconds, nothing started).

The full check (a JupyterHub with ten participants) takes minutes and runs under `pytest -m hub` (tests/checks/test_check_hub.py).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "checks"))
import hub_check  # noqa: E402  (the checks' helpers are modules beside their tests, not a package)

GIB = 1024 ** 3
MEM_TOTAL = 24684084 * 1024  # MemTotal of this project's 24 GiB machine


def test_ten_participants_of_2_gib_fit_this_machine_at_85_percent():
    assert hub_check.room_problems(10, 2 * GIB, MEM_TOTAL) == []


def test_ten_participants_asking_3_gb_are_refused_with_the_arithmetic():
    problems = hub_check.room_problems(10, int(3e9), MEM_TOTAL)
    assert len(problems) == 1
    assert "27.9 GiB" in problems[0] and "20.0 GiB" in problems[0] and "at most 7" in problems[0]


def test_the_room_edge_is_85_percent_of_memtotal():
    total = 20 * GIB
    assert hub_check.room_problems(17, GIB, total) == []           # 17 GiB = 85 %
    assert hub_check.room_problems(18, GIB, total) != []           # 18 GiB = 90 %


def test_a_server_without_limit_is_named_with_the_reason():
    unlimited = 9223372036854771712  # what cgroup v1 reads back for -1
    problem = hub_check.limit_problem("p01", "/sys/fs/cgroup/memory/x", unlimited, 2 * GIB, MEM_TOTAL)
    assert "p01" in problem and "no limit" in problem and "does not enforce" in problem
    assert "no memory cgroup" in hub_check.limit_problem("p01", None, None, 2 * GIB, MEM_TOTAL)
    assert hub_check.limit_problem("p01", "/x", 2 * GIB, 2 * GIB, MEM_TOTAL) is None
    assert "more than" in hub_check.limit_problem("p01", "/x", 3 * GIB, 2 * GIB, MEM_TOTAL)


def test_live_recordings_of_another_cgroup_are_caught():
    p = hub_check.Participant("p01", 1000, [])
    mine = f"/sys/fs/cgroup/memory/{hub_check.PREFIX}{os.getpid()}-p01"
    live = {"experiment": "calloc-reclaim", "mode": "live", "guest_kind": "container",
            "cgroup_limit_bytes": 2 * GIB, "columns": ["cgroup_usage_bytes"], "cgroup_usage_max_bytes": 1.5 * GIB}
    good = {"kernel_cgroup": mine, "drop_caches_writable": False, "compact_memory_writable": False,
            "recordings": [live]}
    p.results = [hub_check.LabResult("01", True, 1.0, probe=good)]
    assert hub_check.own_cgroup_problems(p, 2 * GIB) == []
    machine = dict(good, kernel_cgroup="/sys/fs/cgroup/memory",
                   recordings=[dict(live, cgroup_limit_bytes=None, columns=[], cgroup_usage_max_bytes=None)])
    p.results = [hub_check.LabResult("01", True, 1.0, probe=machine)]
    found = hub_check.own_cgroup_problems(p, 2 * GIB)
    assert any("not " + f"{hub_check.PREFIX}{os.getpid()}-p01" in x for x in found)
    assert any("cgroup limit of None" in x for x in found)
    assert any("machine's" in x for x in found)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="the hub check needs root")
def test_check_hub_refuses_ten_participants_asking_3_gb_before_starting_anything():
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "checks" / "hub_check.py"), "--break", "oversubscribe"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "the room does not fit this machine" in out.stdout
    assert out.stdout.strip().splitlines()[-1].startswith("hub: 0/10 participants, 0/0 labs passed")


def test_check_hub_skips_without_root_or_rejects_bad_counts():
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "checks" / "hub_check.py"), "--participants", "0"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--participants must be at least 1" in out.stderr


def test_vm_queue_figures_count_live_and_waited_runs_and_flag_other_recordings():
    import binder_check as bc
    vm = lambda live, reason="", notices=(): bc.Banner("05_host", "calloc-reclaim", live, "kit-vm", reason, notices)
    seen = [vm(True), vm(True, notices=("this run waited 42 s for its turn: the machine runs only ...",)),
            vm(False, "the kit's VM did not run: this machine can run 2 kit's VMs at once and all were busy "
                      "while this run waited 600 s, so this is its recording"),
            bc.Banner("02_page", "page-cache", False, "container", "shared", ()),
            vm(False, bc.RECORDED_BY_LAB + "only the `variant` parameter's version runs live")]
    assert hub_check.vm_queue_figures(seen) == (2, 1, 600.0, [])
    lab03 = bc.Banner("03_compaction", "compaction", False, "kit-vm",
                      "lab 05 runs the same experiment live in the kit's VM.", ())
    assert hub_check.vm_queue_figures(seen + [lab03]) == (2, 1, 600.0, [])   # by design: neither counted nor a problem
    live, recorded, wait, problems = hub_check.vm_queue_figures([vm(False, "no kernel")])
    assert (live, recorded, wait) == (0, 0, 0.0) and "for another reason than its turn: no kernel" in problems[0]
