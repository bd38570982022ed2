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
