"""A finished run is never thrown away: bad --out refused before the run, failed saves kept in the cache.

Each hostile case is its own test. HOME and XDG_CACHE_HOME point into tmp_path in every test, so the
fallback folder (<cache>/reclaimlab/unsaved/) is never the real cache. Disk-full and mount-point cases
mount a small tmpfs inside tmp_path (root only; skipped with the reason elsewhere).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import tree_roots
from test_recording import make_recording
from reclaimlab.recording import keep, recording
from reclaimlab.cli.app import main
from reclaimlab.cli import record as record_mod
from reclaimlab.cli import watch as watch_mod
from reclaimlab.vm import __main__ as vm_main

LIB = Path(__file__).resolve().parent.parent / "lib"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch) -> Path:
    """The user's cache, inside tmp_path: where a run that cannot go to --out is kept."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "reclaimlab" / "unsaved"


def _mount_tmpfs(where: Path, size: str) -> Path:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    where.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"mount -t tmpfs is not permitted here: {done.stderr.strip()}")
    return where


@pytest.fixture
def small_disk(tmp_path):
    """A real 64 KiB file system: a recording of a few thousand samples does not fit (ENOSPC)."""
    disk = _mount_tmpfs(tmp_path / "small-disk", "64k")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.fixture
def no_sampling(monkeypatch):
    """Fails the test if the watch starts sampling: a bad --out must be refused first."""
    started: list[int] = []
    monkeypatch.setattr(watch_mod.Sampler, "start", lambda self: started.append(1))
    return started


@pytest.fixture
def no_run(monkeypatch):
    """Fails the test if `record` runs its experiment: a bad --out must be refused first."""
    ran: list[str] = []
    monkeypatch.setattr(record_mod, "run", lambda name, *a, **k: ran.append(name))
    return ran


def tree_args() -> list[str]:
    roots = tree_roots("firecracker-vm")
    return ["--proc-root", str(roots.proc), "--sys-root", str(roots.sys)]


def watch(*args: str):
    return CliRunner().invoke(main, ["watch", *args, *tree_args()])


def leftovers(*folders: Path) -> list[Path]:
    return [p for folder in folders if folder.exists() for p in folder.iterdir() if p.name.endswith(".partial")]


# --- refused before the run ---------------------------------------------------------------------

def test_empty_out_is_refused_before_sampling(tmp_path, monkeypatch, no_sampling):
    """hostile-inputs review, case 7: `watch --out ''` (the current folder, here empty) is refused before sampling."""
    here = tmp_path / "empty-cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    result = watch("--duration", "1", "--out", "")
    assert result.exit_code == 2, result.output
    assert "--out '' (an empty name) means the current folder" in result.stderr
    assert "pass a new folder name such as runs/watch-1" in result.stderr
    assert no_sampling == [] and list(here.iterdir()) == []


def test_dot_out_is_refused_before_the_run(tmp_path, monkeypatch, no_run):
    """hostile-inputs review, case 7: `record --out .` in an empty current folder is refused before the run."""
    here = tmp_path / "empty-cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    result = CliRunner().invoke(main, ["record", "calloc-reclaim", "--out", "."])
    assert result.exit_code == 2, result.output
    assert "names the current folder" in result.stderr and "runs/calloc-reclaim-1" in result.stderr
    assert no_run == [] and list(here.iterdir()) == []


def test_a_mount_point_out_is_refused_before_sampling(tmp_path, no_sampling):
    """hostile-inputs review, case 7: `--out` naming an empty mount point (which a rename cannot replace) is refused."""
    mount = _mount_tmpfs(tmp_path / "mnt", "64k")
    try:
        result = watch("--duration", "1", "--out", str(mount))
        assert list(mount.iterdir()) == []
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
    assert result.exit_code == 2, result.output
    assert "is a mount point" in result.stderr and f"such as {mount}/watch-1" in result.stderr
    assert no_sampling == []


def test_a_bind_mount_out_on_the_same_disk_is_refused(tmp_path, no_run):
    """hostile-inputs review, case 7: `--out` naming a bind mount from the same disk (os.path.ismount misses it)."""
    if os.geteuid() != 0:
        pytest.skip("a bind mount needs root")
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir()
    target.mkdir()
    done = subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"mount --bind is not permitted here: {done.stderr.strip()}")
    try:
        assert not os.path.ismount(target)  # the case the check must catch by itself
        result = CliRunner().invoke(main, ["record", "calloc-reclaim", "--out", str(target)])
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)
    assert result.exit_code == 2, result.output
    assert "is a mount point" in result.stderr and no_run == []


def test_a_symlink_to_a_folder_is_refused_before_the_run(tmp_path, no_run):
    """hostile-inputs review, case 7: `--out` naming a symbolic link to an (empty) folder is refused."""
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    result = CliRunner().invoke(main, ["record", "calloc-reclaim", "--out", str(link)])
    assert result.exit_code == 2, result.output
    assert f"is a symbolic link (to {real})" in result.stderr and f"such as {link}/calloc-reclaim-1" in result.stderr
    assert no_run == [] and link.is_symlink() and list(real.iterdir()) == []


def test_vm_module_refuses_an_empty_out_before_booting(monkeypatch, capsys):
    """hostile-inputs review, case 7: `python -m reclaimlab.vm run NAME --out ''` is refused before the VM boots."""
    booted: list[str] = []
    monkeypatch.setattr(vm_main, "run_vm_experiment", lambda name, **k: booted.append(name))
    assert vm_main.main(["run", "calloc-reclaim", "--out", ""]) == 2
    assert "kit VM: --out '' (an empty name) means the current folder" in capsys.readouterr().err
    assert booted == []


def test_vm_module_refuses_a_non_empty_out_before_booting(tmp_path, monkeypatch, capsys):
    """hostile-inputs review, case 7: `python -m reclaimlab.vm run NAME --out DIR` with DIR not empty: refused first."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    booted: list[str] = []
    monkeypatch.setattr(vm_main, "run_vm_experiment", lambda name, **k: booted.append(name))
    assert vm_main.main(["run", "calloc-reclaim", "--out", str(out)]) == 2
    assert "already exists and is not an empty folder" in capsys.readouterr().err
    assert booted == [] and [p.name for p in out.iterdir()] == ["notes.txt"]


# --- a save that fails is kept ------------------------------------------------------------------

def test_a_disk_full_watch_save_is_kept_in_the_cache(small_disk, private_cache):
    """hostile-inputs review, case 7: `watch --out` on a full disk (ENOSPC) keeps the run in the cache, whole."""
    out = small_disk / "rec"
    result = watch("--hz", "2000", "--duration", "1", "--out", str(out))
    assert result.exit_code == 1, result.output
    kept = next(private_cache.iterdir())
    assert kept.name.startswith("watch-")
    assert f"could not save to {out}" in result.stderr and "No space left on device" in result.stderr
    assert f"kept whole in {kept} instead" in result.stderr and f"mv {kept} {out}" in result.stderr
    rec = recording.load(kept, require_manifest=True)  # written atomically, with its manifest, like any save
    assert rec.complete and len(rec.samples) > 1000
    assert not out.exists() and leftovers(small_disk, private_cache) == []


def test_a_disk_full_record_save_is_kept_in_the_cache(small_disk, private_cache, monkeypatch):
    """hostile-inputs review, case 7: `record --out` on a full disk keeps the finished run in the cache, whole."""
    monkeypatch.setattr(record_mod, "run", lambda *a, **k: make_recording(n=5000))
    out = small_disk / "rec"
    result = CliRunner().invoke(main, ["record", "calloc-reclaim", "--out", str(out)])
    assert result.exit_code == 1, result.output
    kept = next(private_cache.iterdir())
    assert kept.name.startswith("calloc-reclaim-") and f"kept whole in {kept} instead" in result.stderr
    assert len(recording.load(kept, require_manifest=True).samples) == 5000
    assert not out.exists() and leftovers(small_disk, private_cache) == []


def test_when_the_cache_is_full_too_the_message_says_what_was_lost(small_disk, monkeypatch):
    """hostile-inputs review, case 7: --out and the cache both on a full disk: says what was lost, and why."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(small_disk / "cache"))
    monkeypatch.setattr(record_mod, "run", lambda *a, **k: make_recording(n=5000))
    result = CliRunner().invoke(main, ["record", "calloc-reclaim", "--out", str(small_disk / "rec")])
    assert result.exit_code == 1, result.output
    assert "could not be saved anywhere" in result.stderr and "it is lost (5000 samples" in result.stderr
    assert result.stderr.count("No space left on device") == 2  # each place tried, with its reason
    assert leftovers(small_disk, small_disk / "cache" / "reclaimlab" / "unsaved") == []


def test_ctrl_c_during_a_save_is_held_until_the_recording_is_whole(tmp_path, monkeypatch):
    """hostile-inputs review, case 7: a Ctrl-C that arrives mid-save no longer aborts it; it is reported after."""
    real = recording._write

    def write_then_ctrl_c(path: Path, text: str) -> None:
        real(path, text)
        if path.name == "samples.csv":
            os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C halfway through the save

    monkeypatch.setattr(recording, "_write", write_then_ctrl_c)
    # A process started in the background by a non-interactive shell (nohup ... &) inherits SIGINT ignored, and
    # keep leaves an ignored signal ignored: the test is about a learner's Ctrl-C, so it handles SIGINT as Python does.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        kept = keep.save_or_keep(make_recording(), tmp_path / "rec", "demo")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert kept.where_asked and kept.signals == (signal.SIGINT,) and kept.exit_status == 130
    assert recording.load(tmp_path / "rec", require_manifest=True).complete


def _watch_process(out: Path, env: dict) -> subprocess.Popen:
    code = "import sys; from reclaimlab.cli.app import main; sys.argv[0] = 'reclaimlab'; main()"
    args = ["watch", "--hz", "2000", "--out", str(out), *tree_args()]
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_sigterm_during_the_watch_save_finishes_the_save_then_exits_143(tmp_path, private_cache):
    """hostile-inputs review, case 7: a second SIGTERM (a supervisor's) landing during watch's save: saved, 143."""
    out = tmp_path / "rec"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(LIB), os.environ.get("PYTHONPATH", "")]))
    proc = _watch_process(out, env)
    try:
        assert proc.stdout.readline().startswith("t="), proc.stderr.read()
        time.sleep(4)  # ~8,000 samples at 2000 Hz: a save that takes tens of milliseconds here
        proc.send_signal(signal.SIGTERM)  # the first ends the watch, as `kill` does
        deadline = time.monotonic() + 20
        while not leftovers(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
            pass  # a tight loop: the hidden .partial folder exists only while the save runs
        if not leftovers(tmp_path):
            pytest.skip("the save finished before this test saw it start (a very fast disk)")
        proc.send_signal(signal.SIGTERM)  # the second lands during the save
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert "SIGTERM arrived while the recording was being saved: the save was finished first" in stderr
    assert f"saved to {out}" in stdout
    rec = recording.load(out, require_manifest=True)
    assert rec.complete and rec.meta["stopped_by"] == "SIGTERM"
    assert leftovers(tmp_path) == [] and not private_cache.exists()


def test_mount_points_are_read_from_mountinfo_with_escaped_names():
    """hostile-inputs review, case 7: a mount point whose name has a space (mountinfo writes it as \\040)."""
    text = ("22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
            "40 22 0:35 / /tmp/my\\040runs rw,relatime - tmpfs tmpfs rw,size=64k\n")
    assert recording.mount_points(text) == {"/", "/tmp/my runs"}
