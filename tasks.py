#!/usr/bin/env python3
"""Set up and run reclaimlab with nothing but Python >= 3.10 (standard library only).

    python3 tasks.py labs    # make .venv, install the kit, open the labs in JupyterLab
    python3 tasks.py test    # make .venv, install the kit, run every check CI runs
    python3 tasks.py setup   # only make .venv and install

Everything goes into ./.venv, so nothing outside the checkout is touched.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".reclaimlab-installed"


def _fail(message: str) -> None:
    print(f"tasks.py: {message}", file=sys.stderr)
    sys.exit(2)


def _run(*cmd: str | Path, **kw) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.call([str(c) for c in cmd], cwd=ROOT, **kw)


def _install_fingerprint() -> str:
    # Reinstall only when what pip would install changes.
    h = hashlib.sha256()
    for name in ("pyproject.toml", "binder/requirements.txt"):
        p = ROOT / name
        if p.exists():
            h.update(p.read_bytes())
    return h.hexdigest()


def setup() -> None:
    if sys.version_info < (3, 10):
        _fail(f"Python >= 3.10 is needed, this is {sys.version.split()[0]}; run it with a newer python3.")
    if not PY.exists():
        print(f"creating {VENV}", flush=True)
        try:
            venv.EnvBuilder(with_pip=True).create(VENV)
        except Exception as exc:  # e.g. Debian without python3-venv
            _fail(f"could not create {VENV} ({exc}); on Debian/Ubuntu: apt-get install python3-venv")
    fingerprint = _install_fingerprint()
    if STAMP.exists() and STAMP.read_text() == fingerprint:
        return
    if _run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip") != 0:
        _fail("pip could not upgrade itself; see the output above")
    if _run(PY, "-m", "pip", "install", "--quiet", "-e", ".[labs,dev,browser]") != 0:
        _fail("installing reclaimlab and its dependencies failed; see pip's output above")
    STAMP.write_text(fingerprint)


def install_system_packages() -> list[str]:
    """Run ci/setup-* (system packages: QEMU and a kernel for the kit's VM). Returns the ones that
    failed where they should have worked (as root); elsewhere the labs and tests that need them fall
    back to recordings or skip, saying why."""
    failed = []
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    for script in sorted((ROOT / "ci").glob("setup-*")):
        print(f"\n=== {script.name}", flush=True)
        if _run(script) != 0:
            if is_root:
                failed.append(script.name)
            else:
                print(f"{script.name}: not installed (not root); what needs it will say so and use recordings")
    return failed


def labs(args: list[str]) -> int:
    setup()
    install_system_packages()  # lab 05 boots the kit's VM where QEMU and a kernel are installed
    cmd = [BIN / "jupyter", "lab", "labs/00_start_here.ipynb", "--ServerApp.root_dir", str(ROOT)]
    if not os.environ.get("DISPLAY") and sys.platform.startswith("linux"):
        # Headless box: no browser to open; JupyterLab prints the URL with its token.
        cmd += ["--no-browser", "--ip", "127.0.0.1"]
    return _run(*cmd, *args)


def test(args: list[str]) -> int:
    setup()
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    failed = install_system_packages()
    steps: list[tuple[str, list]] = [
        # -m "": every kind (fast, slow, live, vm); a bare pytest runs the fast ones only (pyproject addopts)
        ("unit, live and recorded tests", [PY, "-m", "pytest", "-q", "-m", "", *args]),
    ]
    for extra in sorted((ROOT / "ci").glob("check-*")):
        # ci/check-* are the further CI stages (labs, browser, binder); each is executable on its own.
        steps.append((extra.name, [extra]))
    for name, cmd in steps:
        print(f"\n=== {name}", flush=True)
        if _run(*cmd, env=env) != 0:
            failed.append(name)
    print()
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    print(f"all {len(steps)} stages passed")
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "setup":
        setup()
        return 0
    if command == "labs":
        return labs(rest)
    if command == "test":
        return test(rest)
    _fail(f"unknown command {command!r}; use one of: labs, test, setup")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
