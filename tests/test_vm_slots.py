"""The hub's queue for the kit's VM (vm/slots.py): how many slots a machine has, and two processes, one slot."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from reclaimlab.vm import slots

GIB = 1 << 30


@pytest.mark.parametrize("cores, avail_gib, vm_gib, want", [
    (2, 20, 2.4, 2),     # this machine: two cores, plenty of memory -> one per core
    (16, 20, 2.4, 8),    # a big hub: memory is the limit
    (2, 2, 2.4, 0),      # not even one fits: the labs show recordings
    (0, 20, 2.4, 1),     # os.cpu_count() unknown: one core
])
def test_slot_count_is_cores_capped_by_memory(cores, avail_gib, vm_gib, want):
    assert slots.slot_count(cores, int(avail_gib * GIB), int(vm_gib * GIB)) == want


def test_slot_count_refuses_a_vm_of_no_size():
    with pytest.raises(ValueError, match="vm_bytes must be positive"):
        slots.slot_count(2, GIB, 0)


HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from reclaimlab.vm import slots
    with slots.hold(5, count=lambda: 1, folder=Path(sys.argv[1])) as slot:
        print("held", slot.index, flush=True)
        time.sleep(float(sys.argv[2]))
""")


def _holder(folder: Path, hold_s: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), str(hold_s)], stdout=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held 0"
    return proc


def test_two_processes_one_slot_the_second_waits_its_turn(tmp_path):
    holder = _holder(tmp_path, 2.0)
    said: list[str] = []
    t0 = time.monotonic()
    with slots.hold(30, say=said.append, count=lambda: 1, folder=tmp_path) as slot:
        waited = time.monotonic() - t0
    holder.wait(10)
    assert slot.index == 0 and slot.count == 1
    assert 1.0 <= slot.waited_s <= 10 and abs(slot.waited_s - waited) < 0.5
    assert said[0].startswith("⏳ waiting for a slot") and "1 at once" in said[0]
    assert said[-1].startswith("▶ a slot for the kit's VM is free after")


def test_two_processes_one_slot_the_second_gives_up_after_its_wait(tmp_path):
    holder = _holder(tmp_path, 5.0)
    try:
        with pytest.raises(slots.VmSlotsFull, match=r"can run 1 kit's VM at once and it was busy") as err:
            with slots.hold(1.0, count=lambda: 1, folder=tmp_path):
                pytest.fail("took a slot another process holds")
        assert 1.0 <= err.value.waited_s < 4 and err.value.count == 1
    finally:
        holder.kill()
        holder.wait(10)
    with slots.hold(1.0, count=lambda: 1, folder=tmp_path) as slot:   # freed when its holder died
        assert slot.waited_s < 1.0


def test_a_machine_without_room_for_one_vm_waits_then_says_so(tmp_path):
    with pytest.raises(slots.VmSlotsFull, match="not one fits its free memory"):
        with slots.hold(0.0, count=lambda: 0, folder=tmp_path):
            pass


def test_a_planted_link_is_refused_not_followed(tmp_path):
    (tmp_path / f"{slots.FILE_PREFIX}0.lock").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError):
        with slots.hold(0.0, count=lambda: 1, folder=tmp_path):
            pass


def test_a_vm_run_that_never_gets_a_slot_shows_its_recording_and_says_it_waited(monkeypatch):
    from reclaimlab.experiments import harness

    def full(timeout_s, say=None, **_k):
        raise slots.VmSlotsFull("this machine can run 2 kit's VMs at once and all were busy while this run "
                                f"waited {timeout_s:.0f} s", timeout_s, 2)
    import contextlib
    monkeypatch.setattr(harness, "live_blocker", lambda *a, **k: None)
    monkeypatch.setattr(harness, "_guest_lock", lambda *a, **k: (contextlib.ExitStack(), None))  # not this test's
    monkeypatch.setattr(slots, "hold", full)
    rec = harness.run("auto-reclaim", mode="auto", guest="vm", quiet=True, lock_timeout_s=0, policy="gradual",
                      variant="newer")
    assert rec.is_recorded and rec.meta.get("guest_kind") == "kit-vm"
    assert "waited 0 s" in rec.why_shown and "so this is its recording" in rec.why_shown
    with pytest.raises(harness.ExperimentBusy, match="all were busy"):
        harness.run("auto-reclaim", mode="live", guest="vm", quiet=True, lock_timeout_s=0, policy="dropCache",
                    variant="newer")
