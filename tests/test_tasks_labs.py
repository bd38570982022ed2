"""`python3 tasks.py labs` for real: it starts JupyterLab and prints a URL that answers with its token;
ci/setup-vm --check names what lab 05's VM lacks and never installs it."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"


def _venv_ready() -> str | None:
    if not (VENV_BIN / "jupyter-lab").exists():
        return f"JupyterLab is not installed in {ROOT / '.venv'} (run: python3 tasks.py setup)"
    sys.path.insert(0, str(ROOT))
    try:
        import tasks
    finally:
        sys.path.pop(0)
    if not tasks.STAMP.exists() or tasks.STAMP.read_text().split()[:1] != [tasks._install_fingerprint()]:
        return "the .venv is not up to date with pyproject.toml (run: python3 tasks.py setup); not reinstalling from a test"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.skipif(_venv_ready() is not None, reason=_venv_ready() or "")
def test_labs_prints_a_url_that_answers_with_its_token():
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}  # headless
    proc = subprocess.Popen([sys.executable, str(ROOT / "tasks.py"), "labs", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    out: list[str] = []
    try:
        deadline = time.monotonic() + 180
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            out.append(line)
            m = re.search(r"(http://127\.0\.0\.1:(\d+)/lab/tree/labs/00_start_here\.ipynb\?token=([0-9a-f]+))", line)
            if m:
                url, token = m.group(1), m.group(3)
                assert int(m.group(2)) == port
        assert url, "tasks.py labs printed no URL:\n" + "".join(out)
        while out[-1] and not out[-1].startswith("Stop it") and time.monotonic() < deadline:
            out.append(proc.stdout.readline())  # the ssh line comes before the stop hint
        text = "".join(out)
        started = next(line for line in out if line.startswith("+ ") and "jupyter" in line)
        assert ("--allow-root" in started) == (os.geteuid() == 0), started
        assert f"ssh -L {port}:127.0.0.1:{port} " in text
        base = f"http://127.0.0.1:{port}"
        assert _status(f"{base}/api/status?token={token}") == 200
        assert _status(f"{base}/api/status") == 403  # the token is what lets one in
        assert _status(url) == 200
        assert token not in started, "the token must not be on the command line (ps shows it to every user)"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # tasks.py ends the server with it
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        proc.stdout.close()
    assert proc.returncode == 0 or proc.returncode == -signal.SIGTERM or proc.returncode == 143, proc.returncode
    deadline = time.monotonic() + 15
    while _listening(port) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not _listening(port), "the server outlived tasks.py"


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.skipif(shutil.which("bash") is None, reason="ci/setup-vm is a bash script")
def test_setup_vm_check_names_what_is_missing_and_installs_nothing(tmp_path):
    # A copy whose probe for gcc points nowhere, and an apt-get on PATH that records being called.
    script = tmp_path / "setup-vm"
    text = (ROOT / "ci" / "setup-vm").read_text()
    assert "[gcc]=/usr/bin/gcc" in text
    script.write_text(text.replace("[gcc]=/usr/bin/gcc", "[gcc]=/nonexistent/gcc"))
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    called = tmp_path / "apt-get-called"
    (fake_bin / "apt-get").write_text(f"#!/bin/sh\ntouch {called}\n")
    (fake_bin / "apt-get").chmod(0o755)
    env = dict(os.environ, PATH=f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    r = subprocess.run(["bash", str(script), "--check"], capture_output=True, text=True, env=env)
    assert r.returncode == 1
    assert re.search(r"missing: .*\bgcc\b", r.stdout)
    assert "apt-get update && apt-get install -y --no-install-recommends" in r.stdout and "gcc" in r.stdout.splitlines()[-1]
    assert not called.exists(), "--check must never install"


def test_without_qemu_lab05_auto_shows_its_recording_with_the_install_command(tmp_path, monkeypatch):
    # What `tasks.py labs` leaves a newcomer with when it installed nothing: lab 05 in auto mode.
    from reclaimlab.experiments import harness as experiments
    monkeypatch.setenv("PATH", str(tmp_path))  # no qemu-system-x86_64 (nor anything else) on PATH
    rec = experiments.run("calloc-reclaim", mode="auto", guest="vm", quiet=True)
    reason = rec.why_shown  # why a recording stands in for the live run
    assert len(rec.samples) > 0
    assert "the kit's VM cannot run here" in reason and "qemu-system-x86_64 not found" in reason
    assert "apt-get install -y --no-install-recommends qemu-system-x86" in reason
