"""`reclaimlab watch`: bad input refused in one line before sampling, clean ends, saved recordings."""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import tree_roots
from reclaimlab.recording import recording
from reclaimlab.cli.app import main
from reclaimlab.cli import watch as watch_mod  # the module (the command is watch_command)

LIB = Path(__file__).resolve().parent.parent / "lib"


def tree_args(name: str = "firecracker-vm") -> list[str]:
    roots = tree_roots(name)
    return ["--proc-root", str(roots.proc), "--sys-root", str(roots.sys)]


def run(*args: str):
    return CliRunner().invoke(main, ["watch", *args])


@pytest.mark.parametrize("args, message", [
    (["--hz", "0"], "--hz"),
    (["--hz", "-5"], "--hz"),
    (["--hz", "nan"], "--hz"),
    (["--hz", "1e9"], "maximum"),
    (["--hz", "fast"], "not a number"),
    (["--duration", "0"], "--duration"),
    (["--duration", "-1"], "--duration"),
    (["--duration", "inf"], "--duration"),
    (["--proc-root", "/nonexistent-reclaimlab"], "--proc-root"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = run(*args, "--duration", "5") if "--duration" not in args else run(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reclaimlab watch: ") and message in lines[0]


def test_existing_non_empty_out_is_refused_before_sampling(tmp_path, monkeypatch):
    out = tmp_path / "rec"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    started = []
    monkeypatch.setattr(watch_mod.Sampler, "start", lambda self: started.append(1))
    result = run("--duration", "1", "--out", str(out), *tree_args())
    assert result.exit_code == 2 and "already exists" in result.stderr
    assert started == [] and [p.name for p in out.iterdir()] == ["keep.txt"]


def test_unwritable_out_is_refused_before_sampling(tmp_path):
    (tmp_path / "plain").write_text("x")
    t0 = time.monotonic()
    result = run("--duration", "3", "--out", str(tmp_path / "plain" / "rec"), *tree_args())
    assert result.exit_code == 2 and "cannot write" in result.stderr
    assert time.monotonic() - t0 < 2  # refused at once, not after three seconds of sampling
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain"]


def test_a_guest_without_meminfo_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "sys").mkdir()
    result = run("--duration", "1", "--proc-root", str(tmp_path / "proc"), "--sys-root", str(tmp_path / "sys"))
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [f"reclaimlab watch: {tmp_path / 'proc' / 'meminfo'}: not found; "
                                                   "this kernel or container does not provide it"]


def test_a_timed_watch_prints_lines_when_piped_and_saves(tmp_path):
    out = tmp_path / "rec"
    result = run("--hz", "20", "--duration", "1.2", "--out", str(out), *tree_args())
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    updates = [line for line in lines if line.startswith("t=")]
    assert 2 <= len(updates) <= 4  # one line a second when piped, plus the last
    assert "page_cache=" in updates[0] and "anonymous=" in updates[0] and "returned_to_host=" in updates[0]
    assert "GiB" in updates[0] and "\x1b[" not in result.stdout
    assert f"saved to {out}" in lines[-1]
    rec = recording.load(out)
    assert rec.complete and rec.meta["experiment"] == "watch" and rec.meta["stopped_by"] == "duration"
    assert rec.meta["parameters"] == {"hz": 20.0, "duration_s": 1.2}
    assert len(rec.samples) >= 20 and "host_reported_kib" in rec.samples.columns


def test_the_tty_view_redraws_one_block():
    stream = io.StringIO()
    display = watch_mod.Display(stream, tty=True)
    first = {"t_s": 0.0, "mem_total_kib": 24 << 20, "mem_free_kib": 20 << 20, "mem_available_kib": 22 << 20,
             "buffers_kib": 1024, "cached_kib": 1 << 20, "anon_kib": 512 << 10, "slab_reclaimable_kib": 100 << 10,
             "host_reported_kib": 1 << 20}
    later = dict(first, t_s=1.0, anon_kib=(512 << 10) + (1 << 20), mem_available_kib=21 << 20,
                 host_reported_kib=2 << 20)
    for now in (first, later):
        display.show(now["t_s"], watch_mod.view_rows(first, now, ["host_reported_kib"]), "header")
    text = stream.getvalue()
    block = text.split("\x1b[J")[-1].splitlines()
    assert text.count("\x1b[J") == 1 and len(block) == 2 + 9
    rows = {line[:18].strip(): line for line in block[2:]}
    assert "+1.00 GiB" in rows["anonymous"] and "1.50 GiB" in rows["anonymous"]
    assert "-1.00 GiB" in rows["available"] and "+1.00 GiB" in rows["used"]
    # Counted from the start of the watch; reported_kib's total since boot beside it, labelled.
    assert rows["returned to host"].split()[3:5] == ["1.00", "GiB"] and "since this watch started" in rows["returned to host"]
    assert "2.00 GiB" in rows["total since boot"] and "a running total" in rows["total since boot"]


def test_returned_to_host_starts_at_zero_and_the_line_form_labels_both():
    first = {"t_s": 0.0, "mem_total_kib": 1024, "host_reported_kib": 5 << 20}
    rows = watch_mod.view_rows(first, first, ["host_reported_kib"])
    line = watch_mod.render_line(0.0, rows)
    assert "returned_to_host=0B" in line or "returned_to_host=0" in line
    assert "total_since_boot=5.00GiB" in line


def test_without_a_host_view_it_says_unknown():
    now = {"t_s": 0.0, "mem_total_kib": 1024, "mem_available_kib": 512}
    rows = watch_mod.view_rows(now, now, [])
    assert ("returned to host", "unknown") == rows[-1][:2]
    assert dict((r[0], r[1]) for r in rows)["page cache"] == "-"  # absent, not invented


def _watch_process(out: Path, tree: bool = True) -> subprocess.Popen:
    # Python ignores SIGINT if its parent did (a background job): restore the default handler first.
    code = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from reclaimlab.cli.app import main; sys.argv[0] = 'reclaimlab'; main()")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(LIB), os.environ.get("PYTHONPATH", "")]))
    args = ["watch", "--hz", "20", "--out", str(out)] + (tree_args() if tree else [])
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("sig, stopped_by", [(signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")])
def test_ctrl_c_ends_cleanly_and_saves_a_complete_recording(tmp_path, sig, stopped_by):
    out = tmp_path / "rec"
    proc = _watch_process(out)
    try:
        deadline = time.monotonic() + 20
        first = proc.stdout.readline()  # the first update: sampling is under way
        assert first.startswith("t="), first + proc.stderr.read()
        while time.monotonic() < deadline and time.monotonic() < deadline - 19:
            time.sleep(0.05)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and f"saved to {out}" in stdout
    rec = recording.load(out)
    assert rec.complete and rec.meta["stopped_by"] == stopped_by
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


@pytest.mark.live
def test_live_watch_on_this_machine(tmp_path):
    result = run("--hz", "10", "--duration", "0.5", "--out", str(tmp_path / "rec"))
    assert result.exit_code == 0, result.output
    rec = recording.load(tmp_path / "rec")
    assert rec.samples["mem_total_kib"].iloc[0] > 0  # the whole guest's, but fixed: no neighbour moves MemTotal
