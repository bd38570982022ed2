"""One live experiment per guest: a second waits naming the first, or gives up; a killed holder's lock is free."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from reclaimlab.control import lock as guestlock
from reclaimlab.recording import recording
from reclaimlab.cli.app import main
from reclaimlab.experiments import ExperimentBusy, ExperimentError, run

from conftest import tree_roots

LIB = Path(__file__).resolve().parent.parent / "lib"
HOLDER = """
import sys, time
from reclaimlab.control import lock as guestlock
with guestlock.hold(sys.argv[1], timeout_s=0, directory=sys.argv[3]):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""
# The `reclaimlab` command with its lock in the test's private folder: this script replaces the
# lock's own function (the library reads no environment variable for it; LOCKS is this test's).
RECLAIMLAB_IN = """
import os
from reclaimlab.control import lock as guestlock
guestlock.machine_lock_dir = lambda: guestlock.Path(os.environ["LOCKS"])
from reclaimlab.cli.app import main
main()
"""


@pytest.fixture
def lock_env(tmp_path, monkeypatch):
    """A private lock folder, so these tests neither wait for nor block anyone else's runs: the
    lock's own function is replaced here and the folder passed to children as an argument."""
    where = tmp_path / "locks"
    where.mkdir()
    monkeypatch.setattr(guestlock, "machine_lock_dir", lambda: where)
    monkeypatch.delenv(guestlock.consent.SHARED_ENV, raising=False)
    return {**os.environ, "PYTHONPATH": str(LIB), "LOCKS": str(where)}


def hold_in_child(env: dict, seconds: float, experiment: str = "calloc-reclaim") -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", HOLDER, experiment, str(seconds), env["LOCKS"]], env=env,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    return child


def stop(child: subprocess.Popen) -> None:
    child.kill()
    child.wait()


def test_a_second_run_gives_up_after_the_timeout_naming_who_holds_it(lock_env):
    child = hold_in_child(lock_env, 60)
    said: list[str] = []
    try:
        t0 = time.monotonic()
        with pytest.raises(guestlock.GuestBusy) as info:
            with guestlock.hold("compaction", timeout_s=0.6, say=said.append):
                pytest.fail("the lock was held by the child")
        waited_s = time.monotonic() - t0
    finally:
        stop(child)
    assert 0.6 <= waited_s < 5
    message = str(info.value)
    assert f"pid {child.pid}" in message and "calloc-reclaim" in message and "started " in message
    assert "still busy after 0.6 s" in message and "--wait" in message and "mode='recorded'" in message
    assert info.value.holder["pid"] == child.pid and info.value.holder["user"]
    assert "-c" in info.value.holder["command"]   # who: the holder's own command line
    assert len(said) == 1 and "waiting" in said[0] and f"pid {child.pid}" in said[0]


def test_a_second_run_waits_and_starts_when_the_first_ends(lock_env):
    child = hold_in_child(lock_env, 1.5)
    said: list[str] = []
    try:
        t0 = time.monotonic()
        with guestlock.hold("refault", timeout_s=30, say=said.append) as me:
            waited_s = time.monotonic() - t0
            assert me["pid"] == os.getpid() and me["experiment"] == "refault"
            info = Path(lock_env["LOCKS"]) / "reclaimlab-machine.json"
            assert json.loads(info.read_text())["pid"] == os.getpid()
    finally:
        stop(child)
    assert 0.5 < waited_s < 25
    assert "waiting" in said[0] and "calloc-reclaim" in said[0] and "is free now" in said[-1]
    assert not info.exists()  # released: its note is gone, nobody is described as holding it


def test_a_lock_left_by_a_killed_run_is_taken_over_at_once(lock_env):
    child = hold_in_child(lock_env, 60)
    child.send_signal(signal.SIGKILL)
    child.wait()
    info = Path(lock_env["LOCKS"]) / "reclaimlab-machine.json"
    assert json.loads(info.read_text())["pid"] == child.pid  # its description is left behind...
    said: list[str] = []
    t0 = time.monotonic()
    with guestlock.hold("calloc-reclaim", timeout_s=0, say=said.append):
        pass
    assert time.monotonic() - t0 < 1 and said == []  # ...but the kernel dropped its flock
    assert guestlock.read_holder(info) is None


def test_a_dead_holders_description_is_never_shown_as_the_holder(tmp_path):
    info = tmp_path / "x.json"
    info.write_text(json.dumps({"pid": 999_999_999, "experiment": "compaction"}))
    assert guestlock.read_holder(info) is None
    assert "has not said which" in guestlock.describe_holder(None)


def test_lock_is_machine_wide_on_a_guest_the_kit_owns():
    assert guestlock.scope(tree_roots("firecracker-vm"), env={}).key == "machine"


def test_lock_is_per_memory_cgroup_on_a_shared_machine(tree_copy):
    # Participants of a workshop box each measure their own cgroup: they must not wait for each other.
    wsl = tree_copy("wsl2")
    one = guestlock.scope(wsl, env={"RECLAIMLAB_SHARED": "1"})
    assert one.key.startswith("cgroup-") and "session-2.scope" in one.description
    (wsl.proc / "self/cgroup").write_text("0::/user.slice/user-1001.slice/session-7.scope\n")
    other_dir = wsl.sys / "fs/cgroup/user.slice/user-1001.slice/session-7.scope"
    other_dir.mkdir(parents=True)
    (other_dir / "memory.current").write_text("0\n")
    (other_dir / "memory.max").write_text("max\n")
    two = guestlock.scope(wsl, env={"RECLAIMLAB_SHARED": "1"})
    assert two.key.startswith("cgroup-") and two.key != one.key
    binder = guestlock.scope(tree_roots("container-v2"), env={"BINDER_REPO_URL": "x"})
    assert binder.key.startswith("cgroup-")


def test_bad_timeout_is_refused_at_the_boundary(lock_env):
    with pytest.raises(ExperimentError, match="lock_timeout_s must be a number of seconds >= 0"):
        run("calloc-reclaim", mode="recorded", quiet=True, lock_timeout_s=-1)
    with pytest.raises(ExperimentError, match="lock_timeout_s"):
        run("calloc-reclaim", mode="recorded", quiet=True, lock_timeout_s="soon")


def test_recorded_mode_never_waits(lock_env):
    child = hold_in_child(lock_env, 60)
    try:
        t0 = time.monotonic()
        rec = run("calloc-reclaim", mode="recorded", quiet=True, lock_timeout_s=600)
        assert rec.is_recorded and time.monotonic() - t0 < 10
    finally:
        stop(child)


def test_live_mode_refuses_and_auto_mode_shows_the_recording_when_the_guest_stays_busy(lock_env, capsys):
    child = hold_in_child(lock_env, 60)
    try:
        with pytest.raises(ExperimentBusy, match=rf"still busy after 0\.3 s with calloc-reclaim.*pid {child.pid}"):
            run("refault", mode="live", quiet=True, lock_timeout_s=0.3, size="64MiB")
        rec = run("refault", mode="auto", quiet=True, lock_timeout_s=0.3, size="64MiB")
    finally:
        stop(child)
    assert rec.is_recorded and "still busy" in rec.why_shown
    assert f"pid {child.pid}" in capsys.readouterr().out  # the waiting message shows even when quiet


def test_record_command_gives_up_after_wait_with_one_clear_line(lock_env):
    child = hold_in_child(lock_env, 60)
    try:
        result = CliRunner().invoke(main, ["record", "refault", "--size", "64MiB", "--wait", "0.3"])
    finally:
        stop(child)
    assert result.exit_code == 2, result.output
    assert f"pid {child.pid}" in result.output and "still busy" in result.output
    assert "Traceback" not in result.output


@pytest.mark.live
def test_two_live_runs_at_once_the_second_waits_for_the_first(lock_env, tmp_path):
    # A notebook-style run() while `reclaimlab record` runs on the same guest: the second waits, says who.
    command = tmp_path / "reclaimlab"
    command.write_text(RECLAIMLAB_IN)
    first = subprocess.Popen([sys.executable, str(command), "record", "calloc-reclaim", "--size", "64MiB",
                              "--param", "observe_s=2", "--param", "hold_s=0.5", "--out", str(tmp_path / "first")],
                             env=lock_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    info = Path(lock_env["LOCKS"]) / "reclaimlab-machine.json"
    deadline = time.monotonic() + 60
    while guestlock.read_holder(info) is None and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    said: list[str] = []
    try:
        holder = guestlock.read_holder(info)
        assert holder is not None and holder["pid"] == first.pid, first.stdout.read() if first.poll() is not None else ""
        import reclaimlab.experiments.harness as experiments
        original = experiments._say_always
        experiments._say_always = lambda m: said.append((time.time(), m))
        try:
            rec = run("calloc-reclaim", mode="live", quiet=True, size="64MiB", observe_s=1, hold_s=0.2,
                      lock_timeout_s=120)
        finally:
            experiments._say_always = original
        assert first.wait(timeout=120) == 0
    finally:
        first.kill()
        first.wait()
    assert not rec.is_recorded and rec.complete
    (_, waiting), (started_at, free) = said[0], said[-1]
    assert "waiting" in waiting and f"pid {first.pid}" in waiting and "record calloc-reclaim" in waiting
    assert "is free now" in free
    # The second started only after the first had stopped sampling: the two never measured each other.
    first_rec = recording.load(tmp_path / "first")
    first_sampling_end = holder["since_epoch_s"] + first_rec.meta["sampler_cost"]["wall_s"]
    assert started_at >= first_sampling_end
