"""A lab's VmSession (vm/session.py): one boot for several runs, a clean start between them, and no QEMU left
behind when the lab closes it, when its kernel exits, or when a run is interrupted."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from reclaimlab.units import MIB
from reclaimlab.vm import machine


from conftest import vm_missing as _vm_missing  # noqa: E402


needs_vm = [pytest.mark.vm, pytest.mark.skipif(_vm_missing() is not None, reason=_vm_missing() or "")]


def _gone(pid: int, within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ")[1].startswith("Z"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


@needs_vm[0]
@needs_vm[1]
def test_one_boot_for_several_runs_with_a_clean_start_and_nothing_left_after_close():
    from reclaimlab.vm.session import VmSession
    session = VmSession()
    try:
        m1, size, _ = session.machine(256 * MIB)
        pid = m1.pid
        m1.command("write_file", 64 * MIB, timeout_s=300)
        m2, size2, _ = session.machine(256 * MIB)       # reused: the file removed, the cache dropped
        assert m2 is m1 and session.boots == 1 and size2 == size and session.slot is not None
        assert m2.command("get", "/proc/meminfo").detail  # the guest still answers
    finally:
        session.close()
    assert _gone(pid) and not session.alive


@needs_vm[0]
@needs_vm[1]
def test_the_kernel_exiting_without_close_leaves_no_qemu():
    code = textwrap.dedent("""
        from reclaimlab.vm.session import VmSession
        s = VmSession()
        m, _, _ = s.machine(128 << 20)
        print(m.pid, flush=True)
    """)   # the process ends without close(): atexit (and PR_SET_PDEATHSIG) must stop QEMU
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    assert _gone(int(out.stdout.split()[-1]))


@needs_vm[0]
@needs_vm[1]
def test_an_interrupted_lab_run_stops_the_sessions_vm(monkeypatch):
    from reclaimlab.experiments import harness
    from reclaimlab.experiments.registry import ExperimentInterrupted
    from reclaimlab.vm.session import VmSession
    from reclaimlab.wsl import vm_autoreclaim

    seen = {}

    def interrupted(*_a, machine=None, **_k):
        seen["pid"] = machine.pid
        raise KeyboardInterrupt
    monkeypatch.setattr(vm_autoreclaim, "run_vm_autoreclaim", interrupted)
    session = VmSession()
    with pytest.raises(ExperimentInterrupted, match="the VM was stopped"):
        harness.run("auto-reclaim", mode="live", guest="vm", quiet=True, vm_session=session, policy="gradual",
                    variant="newer", size="128MiB")
    assert not session.alive and _gone(seen["pid"])


def test_only_reporting_on_runs_share_a_guest():
    from reclaimlab.vm.session import reusable
    assert reusable("compaction", True) and reusable("refault", True) and reusable("page-cache", True)
    # with reporting off the host keeps all a run touched: the next run could not start clean
    assert not reusable("calloc-reclaim", False) and not reusable("refault", True, session_reporting=False)
    assert not reusable("app-cache", True)


@needs_vm[0]
@needs_vm[1]
def test_a_lab_session_writes_the_order_at_runtime_and_a_reporting_off_run_boots_its_own(tmp_path):
    from reclaimlab.experiments import harness
    from reclaimlab.vm.session import VmSession, order_now
    session = VmSession()
    kw = dict(mode="live", guest="vm", quiet=True, vm_session=session, size="96MiB", mem="768MiB")
    try:
        first = harness.run("compaction", page_reporting_order=5, keep_every=64, observe_s=3.0, **kw)
        pid = session._machine.pid
        second = harness.run("compaction", page_reporting_order=9, keep_every=64, observe_s=3.0, **kw)
        assert session.boots == 1 and session._machine.pid == pid
        for rec, order in ((first, 5), (second, 9)):
            assert rec.meta["page_reporting_order"] == order == rec.meta["parameters"]["page_reporting_order"]
            assert rec.meta["parameters"]["page_reporting_order_set"].startswith("written at runtime")
        assert first.meta["results"]["clean_start"] is None        # the first run after the boot
        clean = second.meta["results"]["clean_start"]
        assert clean["runs_before_in_this_guest"] == 1 and clean["page_reporting_order"] == 9
        assert any("reused the guest" in n for n in second.meta["notices"])
        # one fragmentation at two orders: 9, then 5 written at runtime mid-run (then a small free starts a pass)
        both = harness.run("compaction", page_reporting_order=9, then_order=5, keep_every=64, observe_s=4.0,
                           tail_s=0.0, **kw)
        phases = both.meta["results"]["order_phases"]
        assert [p["order"] for p in phases] == [9, 5] and all(p["observed_s"] <= 4.5 for p in phases)
        assert both.meta["parameters"]["then_order"] == 5 and "order" in set(both.events["kind"])
        assert order_now(session._machine, timeout_s=30.0) == 5
        from reclaimlab.recording import recording
        recording.save(both, tmp_path / "both")   # a reused guest's run saves: clean_start is declared
        off = harness.run("calloc-reclaim", reporting=False, observe_s=2.0, **kw)
        assert off.meta["free_page_reporting"] == "off" and not session.alive and _gone(pid)
    finally:
        session.close()
