"""ci/busy-guest: the other program of a busy-guest run (corpus calloc-local-busy) allocates, touches and frees in a
loop, refuses a bad size with the fix, and leaves nothing mapped when stopped."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "ci" / "busy-guest"


def test_it_rounds_and_stops_on_time():
    out = subprocess.run([sys.executable, str(SCRIPT), "--size", "16MiB", "--pause", "0.05", "--seconds", "0.5"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "round 1: touched 16 MiB" in out.stdout and "nothing left mapped" in out.stdout


def test_a_bad_size_is_refused_with_the_fix():
    out = subprocess.run([sys.executable, str(SCRIPT), "--size", "3XB"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "'3XB' is not a size: give e.g. 512MiB" in out.stderr


def test_sigint_unmaps_and_says_so():
    p = subprocess.Popen([sys.executable, str(SCRIPT), "--size", "64MiB", "--pause", "0.2", "--seconds", "0"],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert "round 1" in p.stdout.readline()
        p.send_signal(signal.SIGINT)
        rest = p.communicate(timeout=30)[0]
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130 and "nothing left mapped" in rest
