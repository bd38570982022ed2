#!/usr/bin/env python3
"""Set up and run reclaimlab with nothing but Python >= 3.10 (standard library only).

    python3 tasks.py labs [--port N]   # make .venv, install the kit, start JupyterLab, print its URL
    python3 tasks.py test              # make .venv, install the kit, run every test and check (one pytest run)
    python3 tasks.py site              # execute every lab in recorded mode, build the static site in build/site/
    python3 tasks.py setup             # only make .venv and install everything the tests use

Everything goes into ./.venv, so nothing outside the checkout is touched. `labs` never installs
system packages: where lab 05's VM lacks some, it names them and the command that installs them.
`test` installs them (ci/setup-*, as root): CI needs them.
"""
from __future__ import annotations

import argparse
import getpass
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".reclaimlab-installed"
FIRST_PORT = 8888  # JupyterLab's usual port; the first free one from here


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


LAB_EXTRAS = "labs,dev,browser"
TEST_EXTRAS = LAB_EXTRAS + ",hub"  # the hub check runs a real JupyterHub: only the tests need it


def setup(extras: str = LAB_EXTRAS) -> None:
    if sys.version_info < (3, 10):
        _fail(f"Python >= 3.10 is needed, this is {sys.version.split()[0]}; run it with a newer python3.")
    if not PY.exists():
        print(f"creating {VENV}", flush=True)
        try:
            venv.EnvBuilder(with_pip=True).create(VENV)
        except Exception as exc:  # e.g. Debian without python3-venv
            _fail(f"could not create {VENV} ({exc}); on Debian/Ubuntu: apt-get install python3-venv")
    fingerprint = _install_fingerprint()
    done = STAMP.read_text().split() if STAMP.exists() else []
    if done[:1] == [fingerprint] and set(extras.split(",")) <= set(done[1:2] and done[1].split(",")):
        return  # the same pyproject, and every extra asked for is installed already
    if _run(PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--upgrade", "pip") != 0:
        _fail("pip could not upgrade itself; see the output above")
    if _run(PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", f".[{extras}]") != 0:
        _fail("installing reclaimlab and its dependencies failed; see pip's output above")
    if done[:1] == [fingerprint] and done[1:2]:
        extras = ",".join(dict.fromkeys(done[1].split(",") + extras.split(",")))
    STAMP.write_text(f"{fingerprint} {extras}")


def install_system_packages() -> list[str]:
    """Run ci/setup-* (system packages: QEMU and a kernel for the kit's VM, chromium). Returns the ones that
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


def vm_packages_missing() -> bool:
    """Say which system packages lab 05's VM lacks here and the one command that installs them.
    Never installs them (`tasks.py test` does, for CI). True when some are missing."""
    if not sys.platform.startswith("linux") or not shutil.which("bash"):
        return False  # the kit's VM is Linux-only; lab 05 says so and shows its recordings
    check = subprocess.run(["bash", str(ROOT / "ci" / "setup-vm"), "--check"], cwd=ROOT,
                           capture_output=True, text=True)
    if check.returncode == 0:
        return False
    said = (check.stdout + check.stderr).strip().replace("setup-vm: ", "  ")
    print("\nLab 05 boots the kit's own small VM under QEMU; system packages it needs are missing here, so it\n"
          "will show its recordings and say why. Nothing was installed. To run it live, install them:\n"
          f"{said}\n", flush=True)
    return True


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As the server binds (SO_REUSEADDR): connections in TIME-WAIT do not count, a listener does.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _answers(port: int, token: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def labs(args: list[str]) -> int:
    """Start JupyterLab on the labs; print the URL once the server answers with its token."""
    parser = argparse.ArgumentParser(prog="tasks.py labs", add_help=False)
    parser.add_argument("--port", type=int)
    opts, extra = parser.parse_known_args(args)
    t0 = time.monotonic()
    setup()
    vm_packages_missing()
    headless = sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if opts.port is not None:
        if not port_free(opts.port):
            _fail(f"port {opts.port} on 127.0.0.1 is in use; pass another --port, or leave it out to pick a free one")
        ports = [opts.port]
    else:
        ports = [p for p in range(FIRST_PORT, FIRST_PORT + 100) if port_free(p)][:3]
        if not ports:
            _fail(f"no free port in {FIRST_PORT}-{FIRST_PORT + 99} on 127.0.0.1; pass --port N")
    token = secrets.token_hex(24)
    server: subprocess.Popen | None = None
    # Jupyter's and IPython's own files (settings, workspaces, the trust database, kernel connection
    # files, history) go into the checkout's .venv too, so nothing outside the checkout changes. The
    # token goes by the environment, not the command line other users can read in `ps`.
    state = VENV / "jupyter"
    # (jupyter-lsp runs `npm prefix --global`, and npm writes a log file into its cache.)
    env = {"JUPYTER_CONFIG_DIR": str(state / "config"), "JUPYTER_DATA_DIR": str(state / "data"),
           "JUPYTER_RUNTIME_DIR": str(state / "runtime"), "IPYTHONDIR": str(state / "ipython"),
           "NPM_CONFIG_CACHE": str(state / "npm"),
           **os.environ, "JUPYTER_TOKEN": token}  # directories the user set stay theirs
    stopping = []

    def stop(*_: object) -> None:  # SIGTERM (a service manager, a test): end the server with us
        stopping.append(True)
        if server is not None and server.poll() is None:
            server.terminate()

    signal.signal(signal.SIGTERM, stop)
    try:
        for port in ports:  # a port taken between the probe and the bind: the next free one
            cmd = [str(BIN / "jupyter"), "lab", "labs/00_start_here.ipynb", f"--ServerApp.root_dir={ROOT}",
                   f"--ServerApp.port={port}", "--ServerApp.port_retries=0"]
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                cmd.append("--allow-root")  # JupyterLab refuses root without it; only then
            if headless:  # no browser to open here; listen on loopback only (reach it through ssh -L)
                cmd += ["--no-browser", "--ServerApp.ip=127.0.0.1"]
            cmd += extra
            print("+", " ".join(cmd), flush=True)
            server = subprocess.Popen(cmd, cwd=ROOT, env=env)
            while server.poll() is None and not _answers(port, token):
                time.sleep(0.3)
            if stopping:
                return server.wait()
            if server.poll() is None:
                break
            if opts.port is not None or port == ports[-1]:
                _fail(f"JupyterLab exited (status {server.returncode}) before it answered on port {port}; "
                      "see its log above")
        url = f"http://127.0.0.1:{port}/lab/tree/labs/00_start_here.ipynb?token={token}"
        print(f"\nJupyterLab is ready ({time.monotonic() - t0:.0f} s). Open the labs at:\n\n    {url}\n", flush=True)
        if headless:
            fqdn = socket.getfqdn()  # "localhost" where the name has no DNS entry: the short name then
            user, host = getpass.getuser(), fqdn if "." in fqdn and not fqdn.startswith("localhost") else socket.gethostname()
            print("This machine has no display. From your laptop, forward the port, then open the URL above there:"
                  f"\n\n    ssh -L {port}:127.0.0.1:{port} {user}@{host}\n", flush=True)
        print("Stop it with Ctrl+C in this terminal (JupyterLab asks to confirm; twice stops at once).", flush=True)
        # From here Ctrl+C is JupyterLab's to handle (it gets it too: one terminal, one process group).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        return server.wait()
    except KeyboardInterrupt:  # Ctrl+C while starting
        if server is not None:
            if server.poll() is None:
                server.terminate()
            server.wait()
        return 130


def test(args: list[str]) -> int:
    setup(TEST_EXTRAS)
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    failed = install_system_packages()
    if failed:  # said before pytest, whose summary stays the last line; the run still fails
        print(f"\nFAILED to install: {', '.join(failed)} (see above); the tests that need it will fail or skip", flush=True)
    # One pytest run, every marker (-m ""): the fast tests, slow, live, vm, and the checks under
    # tests/checks (labs, browser, binder, hub, site) and tests/corpus (corpus); a bare pytest runs the
    # fast ones only (pyproject addopts). -rs: every skip with its reason; --durations: where the time went.
    # -n 0: one process, so the checks' progress reaches CI's log as it happens (xdist workers' output
    # would not) and nothing that uses the machine overlaps; a bare pytest spreads the fast set instead.
    print("\n=== pytest, every marker", flush=True)
    rc = _run(PY, "-m", "pytest", "-q", "-rs", "-m", "", "-n", "0", "--durations=30", *args, env=env)
    return 1 if rc != 0 or failed else 0


def site(args: list[str]) -> int:
    """Every lab executed in recorded mode (build/labs/recorded/), then the static site (build/site/)."""
    setup()
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if _run(BIN / "reclaimlab", "labs", "--mode", "recorded", env=env) != 0:
        _fail("a lab failed in recorded mode; see its output above (executed copies in build/labs/recorded/)")
    return _run(PY, "-m", "reclaimlab.publish.site", *args, env=env)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "setup":
        setup(TEST_EXTRAS)  # a developer's set-up: everything the tests use
        return 0
    if command == "labs":
        return labs(rest)
    if command == "test":
        return test(rest)
    if command == "site":
        return site(rest)
    _fail(f"unknown command {command!r}; use one of: labs, test, site, setup")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
