#!/usr/bin/env python3
"""The workshop check behind ci/check-hub: a room of participants running the labs at once on a real JupyterHub.

1. Plans the room: N participants x the per-user memory limit (= guarantee, as z2jh and TLJH are advised to
   set it) must fit in MemTotal less the 15 % this check keeps free; else it stops before starting anything.
2. Makes N local accounts, a user environment from binder/requirements.txt plus jupyterhub (what TLJH keeps
   in /opt/tljh/user), configurable-http-proxy from npm into build/hub/node_modules, and starts JupyterHub on
   127.0.0.1 with ci/hub_spawner.CgroupSpawner (each server in a memory cgroup limited to 2 GiB; why that
   spawner: see its docstring), RECLAIMLAB_SHARED=1 in the servers' environment, and jupyterhub-idle-culler
   as a hub service with a short timeout.
3. Starts every server through the hub's REST API; as soon as a participant's server is ready and runs in a
   cgroup with the limit (else their labs are not run), that participant runs labs 00-04 (auto mode) at the same time, plus lab 05 (the kit's CPU-bound VM) first for
   --vm-participants of them, more than the machine has VM slots, so their VM runs queue. A lab runs as a browser runs it: a session through the proxy, then each cell
   as an execute_request on the kernel's websocket (/user/<name>/api/kernels/<id>/channels) with the user's
   own token; outputs are collected into an executed copy (build/hub-labs/<user>/). While a cell runs the
   client polls the kernel's status every 10 s, as JupyterLab does, which is what keeps a busy server from
   looking idle to the culler.
4. Then half the servers are stopped through the REST API and the other half are left for the culler, which
   must remove them. Asserts and prints: every lab passed for every participant (and said the right
   LIVE/RECORDED thing); no OOM kill in any cgroup or in the kernel log; MemAvailable never below 15 % of
   MemTotal (sampled every 0.5 s in a thread); no participant wrote a system-wide knob (kernel log, the
   drop_pagecache/drop_slab counters; compaction counters shown); each live recording describes the
   participant's own cgroup; nothing left behind (processes, cgroups, users); wall times.

Needs root (accounts, cgroups) and skips without it. --break shows that a broken room is caught.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

CI = Path(__file__).resolve().parent
sys.path.insert(0, str(CI))
import binder_check as bc  # noqa: E402  (Cgroup, the user environment, the labs' banners)
from binder_check import CheckFailed  # noqa: E402
from reclaimlab.probe import procfs  # noqa: E402

ROOT = CI.parents[1]
HUB_DIR = ROOT / "build" / "hub"            # node_modules (the proxy); the user environment where others can reach it
OUT_DIR = ROOT / "build" / "hub-labs"
PREFIX = "reclaimlab-hub-"                  # + this process's PID: cgroups and the temporary folder
USER_RE = re.compile(r"^rlhub(\d+)p(\d+)$")  # participant accounts: rlhub<PID>p<NN>
GIB = 1024 ** 3
LIMIT_BYTES = 2 * GIB                       # TLJH's and z2jh's usual per-user limit; Binder's ceiling
MIN_AVAILABLE_SHARE = 0.15
CULL_TIMEOUT_S, CULL_EVERY_S = 60, 10
ACTIVITY_INTERVAL_S = 10
CONNECT_TIMEOUT_S = 60
SPAWN_TIMEOUT_S = 300
CELL_TIMEOUT_S = 900
BASE_LABS = ("00", "01", "02", "03", "04")
VM_LAB = "05"
# Those who run lab 05 run it first (its emulated VMs are the longest lab, so they overlap the others' labs),
# then labs 00-04 like everyone. They used to skip lab 03, whose order-5/9 section booted the kit's VM twice for
# every participant; it now shows lab 05's recordings of those runs, so only lab 05 boots the VM here.
# Labs 01-04 take guest="auto", which on a hub with QEMU runs them in the kit's VM. VM runs queue for the
# machine's slots (vm/slots.py: one per core, as many as MemAvailable holds; 2 here), waiting their turn up to
# 600 s, then showing the recording. Ten participants' labs 01-04 in the VM were ~400 s of VM time each, ~33
# minutes on two slots (lab 03's order-5/9 runs, ~120 s of it, are now recorded), so this check keeps those
# labs on the participant's own machine (guest="local": lab 01 live in the cgroup, 02-04 recorded) and exercises the queue with lab 05's participants (--vm-participants,
# default 3: one more than this 2-core machine's VM slots, so their runs wait their turn).
GUEST_LOCAL_LABS = ("01", "02", "03", "04")
PROBE_TAG = "RECLAIMLAB-HUB-PROBE "
# Run in each lab's kernel after its cells: what its live recordings say about where they were measured.
PROBE = r'''
import json as _j, os as _o
from reclaimlab.recording import recording as _r
from reclaimlab.probe import sources as _s
_cg = _s.memory_cgroup(_s.Roots())
_recs = [v for v in list(globals().values()) if isinstance(v, _r.Recording)]
print("''' + PROBE_TAG + r'''" + _j.dumps({
    "kernel_cgroup": str(_cg.path) if _cg else None,
    "drop_caches_writable": _o.access("/proc/sys/vm/drop_caches", _o.W_OK),
    "compact_memory_writable": _o.access("/proc/sys/vm/compact_memory", _o.W_OK),
    "recordings": [{"experiment": r.meta.get("experiment"), "mode": r.meta.get("mode"),
                    "guest_kind": r.meta.get("guest_kind"), "cgroup_limit_bytes": r.meta.get("cgroup_limit_bytes"),
                    "columns": [c for c in r.samples.columns if c.startswith("cgroup_")],
                    "cgroup_usage_max_bytes": float(r.samples["cgroup_usage_bytes"].max())
                    if "cgroup_usage_bytes" in r.samples.columns else None} for r in _recs]}, default=str))
'''


def say(message: str) -> None:
    print(f"check-hub {time.strftime('%H:%M:%S')}: {message}", flush=True)


# --------------------------------------------------------------------------- planning the room (pure)

def room_problems(participants: int, limit_bytes: int | None, mem_total_bytes: int,
                  reserve_share: float = MIN_AVAILABLE_SHARE) -> list[str]:
    """Why this room cannot be guaranteed its memory on this machine (empty: it can).

    Every participant is guaranteed their limit (guarantee = limit), so N x limit must fit in MemTotal less
    the share this check keeps free for the hub, the proxy and the kernel.
    """
    if participants < 1:
        return [f"--participants {participants}: at least 1 participant is needed"]
    if limit_bytes is None:
        return []  # nothing to plan with; the check of each server's cgroup refuses it
    room = mem_total_bytes * (1 - reserve_share)
    need = participants * limit_bytes
    if need > room:
        fit = int(room // limit_bytes)
        return [f"{participants} participants x {limit_bytes / GIB:.2f} GiB (memory limit = guarantee) = "
                f"{need / GIB:.1f} GiB, more than the {room / GIB:.1f} GiB this machine can promise "
                f"({100 - reserve_share * 100:.0f} % of MemTotal {mem_total_bytes / GIB:.1f} GiB): at most {fit} "
                f"such participants fit; lower the limit, the room, or use a larger machine"]
    return []


def limit_problem(user: str, cgroup_path: str | None, limit_bytes: int | None, wanted_bytes: int,
                  mem_total_bytes: int) -> str | None:
    """Why a participant's server is not held to its memory limit (None: it is)."""
    if cgroup_path is None:
        return f"{user}: the server is in no memory cgroup: nothing holds it to its {wanted_bytes / GIB:.0f} GiB"
    if limit_bytes is None or limit_bytes >= mem_total_bytes:
        return (f"{user}: the server's memory cgroup {cgroup_path} has no limit (the hub's mem_limit is "
                f"{wanted_bytes / GIB:.0f} GiB but the spawner does not enforce it); the kit would size each "
                f"participant's live runs from the machine's free memory, which everyone reads at once")
    if limit_bytes > wanted_bytes:
        return f"{user}: cgroup {cgroup_path} allows {limit_bytes / GIB:.2f} GiB, more than the {wanted_bytes / GIB:.2f} GiB planned"
    return None


# --------------------------------------------------------------------------- the machine

def meminfo_kib() -> dict[str, int]:
    return procfs.parse_meminfo(Path("/proc/meminfo").read_text())


KNOB_COUNTERS = ("drop_pagecache", "drop_slab")


def vmstat() -> dict[str, int]:
    counters = procfs.parse_vmstat(Path("/proc/vmstat").read_text())
    return {k: v for k, v in counters.items() if k in KNOB_COUNTERS or k.startswith("compact_")}


class KernelLog:
    """New kernel log records since this was made (/dev/kmsg read from its end)."""

    def __init__(self) -> None:
        self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self.fd, 0, os.SEEK_END)

    def new_lines(self) -> list[str]:
        lines = []
        while True:
            try:
                record = os.read(self.fd, 8192)
            except BlockingIOError:
                break
            except BrokenPipeError:  # overwritten while we read: skip to what is there
                continue
            if not record:
                break
            lines.append(record.decode("utf-8", "replace").partition(";")[2].strip())
        return lines

    def close(self) -> None:
        os.close(self.fd)


class Watch(threading.Thread):
    """MemAvailable every 0.5 s, and every PID seen in the participants' cgroups (to attribute kernel log lines)."""

    def __init__(self, cgroup_glob: str) -> None:
        super().__init__(daemon=True)
        self.cgroup_glob = cgroup_glob
        self.stop_event = threading.Event()
        self.min_available_kib = None
        self.total_kib = meminfo_kib()["MemTotal"]
        self.samples = 0
        self.pids: set[int] = set()

    def run(self) -> None:
        while not self.stop_event.is_set():
            available = meminfo_kib()["MemAvailable"]
            self.min_available_kib = available if self.min_available_kib is None else min(self.min_available_kib, available)
            self.samples += 1
            for procs in Path("/sys/fs/cgroup").glob(self.cgroup_glob + "/cgroup.procs"):
                try:
                    self.pids.update(int(p) for p in procs.read_text().split())
                except OSError:
                    pass
            self.stop_event.wait(0.5)

    def stop(self) -> None:
        self.stop_event.set()
        self.join()

    @property
    def min_available_share(self) -> float:
        return (self.min_available_kib or 0) / self.total_kib


def processes_of(uids: set[int]) -> list[tuple[int, int, str]]:
    """(pid, uid, command line) of every process owned by one of uids."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            uid = d.stat().st_uid
            if uid in uids:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                found.append((int(d.name), uid, cmd[:120]))
        except OSError:
            pass
    return found


def memory_cgroup_of(pid: int) -> tuple[str | None, int | None]:
    """(path, limit in bytes or None for none) of the memory cgroup `pid` is in."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, rel = line.split(":", 2)
        if "memory" in controllers.split(","):
            d = Path("/sys/fs/cgroup/memory") / rel.lstrip("/")
            value = (d / "memory.limit_in_bytes").read_text().strip()
            return str(d), int(value)
        if controllers == "":
            for mount in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
                f = mount / rel.lstrip("/") / "memory.max"
                if f.exists():
                    value = f.read_text().strip()
                    return str(f.parent), None if value == "max" else int(value)
    return None, None


# --------------------------------------------------------------------------- accounts

def create_users(n: int) -> dict[str, int]:
    users = {}
    for i in range(1, n + 1):
        name = f"rlhub{os.getpid()}p{i:02d}"
        bc.run(["useradd", "--create-home", "--user-group", "--shell", "/bin/bash", name], 60, f"useradd {name}")
        users[name] = pwd.getpwnam(name).pw_uid
    return users


def remove_user(name: str) -> None:
    try:
        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        return
    for pid, _, _ in processes_of({uid}):
        bc._kill(pid)
    for _ in range(50):
        if subprocess.run(["userdel", "--remove", name], capture_output=True).returncode in (0, 12):  # 12: no home
            break
        time.sleep(0.2)  # "user is currently used by process": killed processes take a moment to go
    subprocess.run(["groupdel", name], capture_output=True)


def sweep_leftover_users() -> None:
    for entry in pwd.getpwall():
        m = USER_RE.match(entry.pw_name)
        if m and not bc._alive(int(m[1])):
            remove_user(entry.pw_name)
            say(f"removed the account {entry.pw_name} of an earlier run")


# --------------------------------------------------------------------------- what the hub needs

def install_proxy() -> Path:
    """configurable-http-proxy from the npm registry into build/hub/node_modules, once."""
    chp = HUB_DIR / "node_modules" / ".bin" / "configurable-http-proxy"
    if chp.exists():
        return chp
    npm = shutil.which("npm")
    if npm is None:
        raise CheckFailed("npm is not installed, and JupyterHub's proxy (configurable-http-proxy) comes from npm: "
                          "install Node.js and npm (Debian: apt-get install nodejs npm)")
    HUB_DIR.mkdir(parents=True, exist_ok=True)
    bc.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(HUB_DIR), "configurable-http-proxy@5"], 600,
           "npm install configurable-http-proxy", log=HUB_DIR / "npm.log")
    return chp


def readable_kernels(boot: Path = Path("/boot")):
    """Let participants read the kernel lab 05 boots, as the kit asks an admin to (Debian ships it 0600).

    Returns the undo: the original modes come back at the end of the check.
    """
    changed = []
    for image in boot.glob("vmlinuz-*"):
        mode = image.stat().st_mode & 0o777
        if not mode & 0o004:
            image.chmod(mode | 0o044)
            changed.append((image, mode))
            say(f"made {image} readable for the participants' lab 05 (mode {oct(mode)} -> {oct(mode | 0o044)}) "
                f"until the check ends")
    return lambda: [image.chmod(mode) for image, mode in changed]


def reachable_by_everyone(path: Path) -> bool:
    return all(d.stat().st_mode & 0o001 for d in [path, *path.parents] if d.exists())


def user_environment(tmp: Path) -> tuple[Path, Path]:
    """(repo, venv): the kit and what the labs need, plus jupyterhub-singleuser, readable by every participant.

    Kept in build/hub/ between runs where every user can reach that folder (the venv is reused while its
    requirements are unchanged; the kit's copy is refreshed each time), else made in tmp for this run.
    """
    import jupyterhub
    base = HUB_DIR if reachable_by_everyone(ROOT) else tmp
    repo, venv = base / "repo", base / "user-env"
    shutil.rmtree(repo, ignore_errors=True)
    base.mkdir(parents=True, exist_ok=True)
    bc.copy_checkout(repo)
    pins = (repo / "binder" / "requirements.txt").read_text() + f"\njupyterhub=={jupyterhub.__version__}\n"
    stamp = venv / ".reclaimlab-hub-fingerprint"
    fingerprint = hashlib.sha256(pins.encode()).hexdigest()
    if not (stamp.exists() and stamp.read_text() == fingerprint):
        shutil.rmtree(venv, ignore_errors=True)
        python = bc.runtime_python(repo)
        say(f"making the participants' environment {venv} ({python}, binder/requirements.txt, "
            f"jupyterhub=={jupyterhub.__version__}) ...")
        bc.install(python, repo, venv, extra=(f"jupyterhub=={jupyterhub.__version__}",))  # one pip run for both
        stamp.write_text(fingerprint)
    else:  # the editable install points at repo/, refreshed above
        say(f"reusing the participants' environment {venv} (requirements unchanged)")
    for d in (base, repo, venv):
        d.chmod(0o755)
    return repo, venv


@dataclasses.dataclass
class Hub:
    port: int
    state: Path
    proc: subprocess.Popen | None = None
    service_token: str = dataclasses.field(default_factory=lambda: secrets.token_hex(32))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, method: str, path: str, token: str | None = None, ok=(200, 201, 202, 204), **kw):
        import requests
        r = requests.request(method, self.url + path, headers={"Authorization": f"token {token or self.service_token}"},
                             timeout=60, **kw)
        if r.status_code not in ok:
            raise CheckFailed(f"{method} {path}: HTTP {r.status_code}: {r.text[:300]}")
        return r.json() if r.content and r.headers.get("content-type", "").startswith("application/json") else None


def write_config(hub: Hub, chp: Path, repo: Path, venv: Path, users: dict[str, int], limit_bytes: int,
                 enforce_limit: bool) -> Path:
    """The hub's configuration: the tested starting point that docs/workshop.md explains."""
    ports = {name: hub.port + 10 + i for i, name in enumerate(users)}
    config = f'''
import sys
sys.path.insert(0, {str(CI)!r})
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {hub.port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub.port + 2}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{hub.port + 1}"
c.ConfigurableHTTPProxy.command = [{str(chp)!r}]
c.JupyterHub.db_url = "sqlite:///{hub.state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{hub.state}/jupyterhub_cookie_secret"
c.JupyterHub.last_activity_interval = {ACTIVITY_INTERVAL_S}   # how often the hub reads activity off the proxy
c.Authenticator.allowed_users = {set(users)!r}

# Each server in its own memory cgroup; limit = guarantee (the kit budgets for what it is promised)
c.JupyterHub.spawner_class = "hub_spawner.CgroupSpawner"
c.Spawner.mem_limit = {limit_bytes}
c.Spawner.mem_guarantee = {limit_bytes}
c.CgroupSpawner.enforce_limit = {enforce_limit}
c.CgroupSpawner.cgroup_prefix = "{PREFIX}{os.getpid()}-"
c.CgroupSpawner.counters_dir = "{hub.state}/cgroups"
c.CgroupSpawner.ports = {ports!r}
c.Spawner.cmd = [{str(venv / "bin" / "jupyterhub-singleuser")!r}]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 300
c.Spawner.http_timeout = 300
c.Spawner.environment = {{
    "RECLAIMLAB_SHARED": "1",                                # docs/workshop.md: the machine is shared
    "PATH": "{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
    "JUPYTERHUB_ACTIVITY_INTERVAL": "{ACTIVITY_INTERVAL_S}",   # the server tells the hub it is busy this often
}}

# The idle culler: the check uses a short timeout so that it can watch the culler work
c.JupyterHub.services = [
    {{"name": "check", "api_token": {hub.service_token!r}}},
    {{"name": "idle-culler", "command": [sys.executable, "-m", "jupyterhub_idle_culler",
                                        "--timeout={CULL_TIMEOUT_S}", "--cull-every={CULL_EVERY_S}"]}},
]
c.JupyterHub.load_roles = [
    {{"name": "admin", "services": ["check"]}},
    {{"name": "idle-culler", "services": ["idle-culler"],
      "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]}},
]
'''
    path = hub.state / "jupyterhub_config.py"
    path.write_text(config)
    return path


def start_hub(hub: Hub, config: Path) -> None:
    log = open(hub.state / "hub.log", "w")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    hub.proc = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(config)], cwd=hub.state, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if hub.proc.poll() is not None:
            raise CheckFailed(f"JupyterHub exited ({hub.proc.returncode}):\n{tail(hub.state / 'hub.log')}")
        try:
            hub.api("GET", "/hub/api/")
            return
        except Exception:
            time.sleep(1)
    raise CheckFailed(f"JupyterHub did not answer on {hub.url} within 120 s:\n{tail(hub.state / 'hub.log')}")


def stop_hub(hub: Hub) -> list[str]:
    """Stop the hub (it stops the servers it still runs and its proxy); return what is still alive."""
    proxy_pid = None
    pid_file = hub.state / "jupyterhub-proxy.pid"
    if pid_file.exists():
        proxy_pid = int(pid_file.read_text().strip() or 0) or None
    if hub.proc and hub.proc.poll() is None:
        hub.proc.send_signal(signal.SIGTERM)
        try:
            hub.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(hub.proc.pid, signal.SIGKILL)
            hub.proc.wait()
    left = []
    time.sleep(1)
    if proxy_pid and bc._alive(proxy_pid):
        left.append(f"the proxy (pid {proxy_pid})")
        bc._kill(proxy_pid)
    return left


def tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------- a participant, as a browser

@dataclasses.dataclass
class LabResult:
    lab: str
    ok: bool
    seconds: float
    error: str = ""
    probe: dict | None = None


@dataclasses.dataclass
class Participant:
    name: str
    uid: int
    labs: list[Path]
    token: str = ""
    results: list[LabResult] = dataclasses.field(default_factory=list)
    stop_when_done: bool = True   # False: left idle for the culler
    seconds: float = 0.0          # from their server's ready to their last lab's end
    crash: str = ""
    ready_s: float | None = None  # their server's start, from the REST API request to ready
    refused: str | None = None    # why their labs were not run: the server is not held to its limit


def run_participant(hub: Hub, p: Participant, limit: int, mem_total: int, t_spawn: float) -> None:
    """Once this participant's server is ready and held to its limit (else no lab runs: ten live runs would size
    from the machine), run their labs; the others' servers may still be starting, as in a room logging in."""
    t0 = time.monotonic()
    try:
        wait_ready(hub, [p.name], SPAWN_TIMEOUT_S)
        p.ready_s = time.monotonic() - t_spawn
        p.token = hub.api("POST", f"/hub/api/users/{p.name}/tokens", json={"note": "check-hub", "expires_in": 3600})["token"]
        p.refused = server_limit_problem(hub, p, limit, mem_total)
        t0 = time.monotonic()
        for nb in ([] if p.refused else p.labs):
            p.results.append(run_lab(hub, p, nb))
            if not p.results[-1].ok:
                break
    except Exception as exc:  # anything else: recorded against the participant, never lost in a thread
        p.crash = f"{type(exc).__name__}: {exc}"
    p.seconds = time.monotonic() - t0
    if p.stop_when_done:  # as a participant who closes the session; the others just leave (the culler's job)
        try:
            hub.api("DELETE", f"/hub/api/users/{p.name}/server")
        except Exception as exc:
            p.crash = p.crash or f"stopping the server: {exc}"


def server_limit_problem(hub: Hub, p: Participant, limit: int, mem_total: int) -> str | None:
    """Why this participant's running server is not held to its memory limit (None: it is)."""
    pids = [pid for pid, uid, cmd in processes_of({p.uid}) if "jupyterhub-singleuser" in cmd]
    if not pids:  # not a cgroup problem: its server is gone (the culler, on a slow start?)
        return f"{p.name}: no jupyterhub-singleuser process of this user is running; hub log: {tail(hub.state / 'hub.log')}"
    path, cg_limit = memory_cgroup_of(pids[0])
    return limit_problem(p.name, path, cg_limit, limit, mem_total)


def run_lab(hub: Hub, p: Participant, notebook: Path) -> LabResult:
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    t0 = time.monotonic()
    params = {"mode": "auto", "allow_system_changes": False}
    if notebook.name[:2] in GUEST_LOCAL_LABS:
        params["guest"] = "local"
    nb = parameterize_notebook(load_notebook_node(str(notebook)), params)  # papermill: as `reclaimlab labs` injects them
    base = f"/user/{p.name}/api"
    session = hub.api("POST", f"{base}/sessions", p.token,
                      json={"path": f"labs/{notebook.name}", "name": notebook.name, "type": "notebook",
                            "kernel": {"name": "python3"}})
    kernel_id = session["kernel"]["id"]
    client = KernelClient(hub, p, kernel_id)
    error, probe = "", None
    try:
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            outputs, reply = client.execute(cell.source)
            cell.outputs, cell.execution_count = outputs, reply.get("execution_count")
            if reply.get("status") != "ok":
                error = f"cell {i}: {reply.get('ename')}: {str(reply.get('evalue', '')).splitlines()[:1]}"
                break
        if not error:
            outputs, _ = client.execute(PROBE)
            text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
            line = next((ln for ln in text.splitlines() if ln.startswith(PROBE_TAG)), None)
            probe = json.loads(line[len(PROBE_TAG):]) if line else None
            if probe is None:
                error = f"the probe after the lab printed nothing usable: {text[:200] or outputs}"
    finally:
        client.close()
        hub.api("DELETE", f"{base}/sessions/{session['id']}", p.token)
    out = OUT_DIR / p.name / notebook.name
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)
    return LabResult(notebook.stem, not error, time.monotonic() - t0, error, probe)


class KernelClient:
    """execute_request over the kernel's websocket through the proxy, collecting outputs as nbformat does."""

    def __init__(self, hub: Hub, p: Participant, kernel_id: str) -> None:
        import websocket
        self.hub, self.p, self.kernel_id, self.session = hub, p, kernel_id, uuid.uuid4().hex
        url = (f"ws://127.0.0.1:{hub.port}/user/{p.name}/api/kernels/{kernel_id}/channels"
               f"?session_id={self.session}")
        # The handshake gets longer than a receive: ten kernels starting at once on two busy cores can hold it
        # past 10 s (a participant's client once stopped on "Connection timed out" there).
        self.ws = websocket.create_connection(url, header=[f"Authorization: token {p.token}"], timeout=CONNECT_TIMEOUT_S)
        self.ws.settimeout(ACTIVITY_INTERVAL_S)

    def execute(self, code: str) -> tuple[list, dict]:
        import nbformat
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": self.p.name, "session": self.session, "msg_type": "execute_request",
                       "version": "5.3", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        outputs: list = []
        displays: dict[str, list] = {}
        reply, idle, clear_pending = None, False, False
        deadline = time.monotonic() + CELL_TIMEOUT_S
        while reply is None or not idle:
            if time.monotonic() > deadline:
                raise CheckFailed(f"a cell ran longer than {CELL_TIMEOUT_S} s")
            msg = self._receive()
            if msg is None or msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if msg.get("channel") == "shell" and kind == "execute_reply":
                reply = content
            elif kind == "status":
                idle = content.get("execution_state") == "idle"
            elif kind == "clear_output":
                if content.get("wait"):
                    clear_pending = True
                else:
                    outputs.clear()
            elif kind == "update_display_data":
                for out in displays.get(content.get("transient", {}).get("display_id"), []):
                    out["data"], out["metadata"] = content["data"], content.get("metadata", {})
            elif kind in ("stream", "display_data", "execute_result", "error"):
                if clear_pending:
                    outputs.clear()
                    clear_pending = False
                out = nbformat.v4.output_from_msg(msg)
                outputs.append(out)
                display_id = content.get("transient", {}).get("display_id")
                if display_id:
                    displays.setdefault(display_id, []).append(out)
        return outputs, reply

    def _receive(self) -> dict | None:
        import websocket
        try:
            data = self.ws.recv()
        except websocket.WebSocketTimeoutException:
            # As JupyterLab polls a busy kernel's status: it is also what tells the server (and so the hub and
            # its culler) that someone is still here while a long cell prints nothing.
            self.hub.api("GET", f"/user/{self.p.name}/api/kernels/{self.kernel_id}", self.p.token)
            return None
        if isinstance(data, bytes):  # binary frame (a message with buffers): offsets, then the JSON parts
            nbufs = int.from_bytes(data[:4], "big")
            offsets = [int.from_bytes(data[4 * (i + 1):4 * (i + 2)], "big") for i in range(nbufs)]
            data = data[offsets[0]:offsets[1]].decode()
        return json.loads(data)

    def close(self) -> None:
        self.ws.close()


# --------------------------------------------------------------------------- the whole check

@dataclasses.dataclass
class Figures:
    participants: int = 0
    passed_participants: int = 0
    labs_passed: int = 0
    labs_total: int = 0
    oom_kills: int = 0
    min_available_share: float = 0.0
    seconds: float = 0.0
    vm_live: int = 0              # experiments that ran LIVE in a kit's VM (each waited for a slot: vm/slots.py)
    vm_recorded: int = 0          # experiments meant for the VM that showed the recording instead
    vm_longest_wait_s: float = 0.0


WAIT_RE = re.compile(r"waited (\d+) s")


def vm_queue_figures(seen: list) -> tuple[int, int, float, list[str]]:
    """(LIVE in the kit's VM, RECORDED for want of a VM slot, the longest wait in s, problems) from the labs'
    banners: a VM run either ran (its notice says how long it waited for a slot) or showed its recording
    saying it waited; any other reason for a VM run to be recorded is a problem."""
    live = recorded = 0
    longest = 0.0
    problems = []
    for b in seen:
        if b.guest_kind != "kit-vm":
            continue
        waits = [float(w) for text in (b.reason, *b.notices) for w in WAIT_RE.findall(text)]
        longest = max([longest, *waits])
        if b.live:
            live += 1
        elif b.reason.startswith(bc.RECORDED_BY_LAB):   # lab 04's other version, recorded by design
            continue
        elif bc.recorded_by_design(b):
            continue   # lab 03's order 5 against 9: never meant to boot the VM (lab 05 runs it live)
        elif "kit's VM" in b.reason and waits:
            recorded += 1
        else:
            problems.append(f"{b.lab}: {b.experiment} in the kit's VM was RECORDED for another reason "
                            f"than its turn: {b.reason or 'no reason shown'}")
    return live, recorded, longest, problems


def wait_ready(hub: Hub, users: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    pending = set(users)
    while pending:
        for name in sorted(pending):
            server = hub.api("GET", f"/hub/api/users/{name}")["servers"].get("")
            if server and server.get("ready"):
                pending.discard(name)
            elif not server:  # a failed spawn is removed; ready=False with pending=None is a step on the way
                raise CheckFailed(f"{name}'s server failed to start:\n{tail(hub.state / 'hub.log')}")
        if pending and time.monotonic() > deadline:
            raise CheckFailed(f"servers not ready within {timeout_s:.0f} s: {', '.join(sorted(pending))}")
        time.sleep(1)


def wait_gone(hub: Hub, users: list[str], timeout_s: float) -> list[str]:
    deadline = time.monotonic() + timeout_s
    running = list(users)
    while running and time.monotonic() < deadline:
        time.sleep(2)
        running = [u for u in running if hub.api("GET", f"/hub/api/users/{u}")["servers"].get("")]
    return running


def check(args: argparse.Namespace, tmp: Path, figures: Figures, cleanup: list) -> list[str]:
    """Run the room; return the problems found (empty: passed). Raises CheckFailed where it cannot go on."""
    figures.participants = args.participants
    mem_total = meminfo_kib()["MemTotal"] * 1024
    limit = int(3e9) if args.break_ == "oversubscribe" else LIMIT_BYTES
    problems = room_problems(args.participants, limit, mem_total)
    if problems:
        raise CheckFailed("the room does not fit this machine: " + "; ".join(problems))
    shutil.rmtree(OUT_DIR, ignore_errors=True)
    chp = install_proxy()
    repo, venv = user_environment(tmp)
    knobs = bc.experiment_knobs(venv, repo)
    labs = sorted((repo / "labs").glob("[0-9][0-9]_*.ipynb"))
    base_labs = [nb for nb in labs if nb.name[:2] in BASE_LABS]
    vm_lab = [nb for nb in labs if nb.name[:2] == VM_LAB]

    if args.vm_participants:
        cleanup.append(readable_kernels())
    users = create_users(args.participants)
    cleanup.append(lambda: [remove_user(u) for u in users])
    for name in users:  # each participant gets the labs in their home, as a workshop hands them out
        home = Path(pwd.getpwnam(name).pw_dir)
        shutil.copytree(repo / "labs", home / "labs")
        bc.run(["chown", "-R", f"{name}:{name}", str(home / "labs")], 60, "chown")
    hub = Hub(args.port, tmp / "hub")
    hub.state.mkdir(mode=0o700)
    (hub.state / "cgroups").mkdir()
    config = write_config(hub, chp, repo, venv, users, limit, enforce_limit=args.break_ != "no-limit")
    cleanup.append(lambda: stop_hub(hub))
    say(f"starting JupyterHub {hub.url} (CgroupSpawner, {limit / GIB:.2f} GiB per server, idle culler "
        f"{CULL_TIMEOUT_S} s) for {len(users)} participants ...")
    start_hub(hub, config)
    participants = [Participant(name, uid, vm_lab + base_labs if i < args.vm_participants else base_labs,
                                # The first half (lab 05's participants among them, who finish last) stop their
                                # servers; the second half finish with the room and idle out while lab 05 still
                                # runs, so the culler's timeout no longer adds to the check's time.
                                stop_when_done=i < len(users) - len(users) // 2)
                    for i, (name, uid) in enumerate(users.items())]
    kmsg, counters_before = KernelLog(), vmstat()
    cleanup.append(kmsg.close)
    watch = Watch(f"*/{PREFIX}{os.getpid()}-*")
    watch.start()
    plans = {" ".join(nb.name[:2] for nb in p.labs) for p in participants}
    say(f"starting {len(users)} servers through the REST API; each participant runs their labs as soon as their "
        f"server is ready and held to its limit (" + "; ".join(
        f"{sum(' '.join(nb.name[:2] for nb in p.labs) == plan for p in participants)} run {plan}" for plan in sorted(plans))
        + "), through the proxy and each kernel's websocket ...")
    t_spawn = time.monotonic()

    def log_in(group: list[Participant]) -> list[threading.Thread]:
        for p in group:
            hub.api("POST", f"/hub/api/users/{p.name}/server")
        threads = [threading.Thread(target=run_participant, args=(hub, p, limit, mem_total, t_spawn), daemon=True)
                   for p in group]
        for t in threads:
            t.start()
        return threads

    # Lab 05's participants log in first: theirs is the longest lab, and ten servers started at once share the
    # two cores evenly, so all were ready together after ~70 s (2026-12-07). The others log in once these are ready.
    first, rest = participants[:args.vm_participants], participants[args.vm_participants:]
    threads = log_in(first)
    deadline = time.monotonic() + SPAWN_TIMEOUT_S
    while any(p.ready_s is None and not p.crash for p in first) and time.monotonic() < deadline:
        time.sleep(0.5)
    threads += log_in(rest)
    for t in threads:
        t.join()
    t_done = time.monotonic()
    watch.stop()
    ready = [p.ready_s for p in participants if p.ready_s is not None]
    if ready:
        say(f"{len(ready)}/{len(users)} servers started through the REST API, ready {min(ready):.0f}-{max(ready):.0f} s "
            f"after the requests")
    refused = [p.refused for p in participants if p.refused]
    if refused:
        problems_before = ["a participant's server is not held to its memory limit, so their labs were not run:\n  - "
                           + "\n  - ".join(refused)]
    else:
        problems_before = []
        say(f"every server ran as its participant in its own memory cgroup of {limit / GIB:.2f} GiB "
            f"({PREFIX}{os.getpid()}-<user>), RECLAIMLAB_SHARED=1")
    stopped = [p.name for p in participants if p.stop_when_done]
    left_to_culler = [p.name for p in participants if not p.stop_when_done]
    say(f"servers and labs done in {t_done - t_spawn:.0f} s; as each participant finished, {len(stopped)} servers were stopped "
        f"through the REST API and {len(left_to_culler)} left idle for the culler ({CULL_TIMEOUT_S} s) ...")
    not_stopped = wait_gone(hub, stopped, 120)
    not_culled = wait_gone(hub, left_to_culler, CULL_TIMEOUT_S + 4 * max(CULL_EVERY_S, ACTIVITY_INTERVAL_S) + 60)
    culled_log = [ln for ln in (hub.state / "hub.log").read_text(errors="replace").splitlines() if "Culling server" in ln]
    log_lines, counters_after = kmsg.new_lines(), vmstat()

    # ---- the figures and what went wrong
    problems = problems_before
    figures.labs_total = sum(len(p.labs) for p in participants)
    for p in participants:
        passed = [r for r in p.results if r.ok]
        figures.labs_passed += len(passed)
        if len(passed) == len(p.labs):
            figures.passed_participants += 1
        times = ", ".join(f"{r.lab[:2]} {r.seconds:.0f} s" + ("" if r.ok else " FAILED") for r in p.results)
        ready = f"server ready after {p.ready_s:.0f} s, " if p.ready_s is not None else ""
        say(f"  {p.name}: {ready}{len(passed)}/{len(p.labs)} labs in {p.seconds:.0f} s ({times})")
        for r in p.results:
            if not r.ok:
                problems.append(f"{p.name} {r.lab}: {r.error} (executed copy: {OUT_DIR / p.name / (r.lab + '.ipynb')})")
        if p.crash:
            problems.append(f"{p.name}: the participant's client stopped: {p.crash}")
        elif len(p.results) < len(p.labs) and all(r.ok for r in p.results) and not p.refused:
            problems.append(f"{p.name}: only {len(p.results)} of {len(p.labs)} labs ran")
        seen = [b for r in p.results for b in bc.banners(OUT_DIR / p.name / f"{r.lab}.ipynb")]
        vm_live, vm_recorded, vm_wait, vm_problems = vm_queue_figures(seen)
        figures.vm_live += vm_live
        figures.vm_recorded += vm_recorded
        figures.vm_longest_wait_s = max(figures.vm_longest_wait_s, vm_wait)
        problems += [f"{p.name}: {x}" for x in vm_problems]
        problems += [f"{p.name}: {x}" for x in bc.banner_problems(seen, knobs)] if passed else []
        problems += own_cgroup_problems(p, limit)
    vm_runners = [p for p in participants if any(nb.name[:2] == VM_LAB for nb in p.labs)]
    say(f"the kit's VM (queued to this machine's slots, vm/slots.py): {figures.vm_live} experiment(s) ran LIVE, "
        f"{figures.vm_recorded} showed the recording after waiting, for {len(vm_runners)} participant(s) who ran "
        f"lab 05; longest wait {figures.vm_longest_wait_s:.0f} s")
    if vm_runners and not figures.vm_live:
        problems.append("no participant's experiment ran LIVE in the kit's VM: the queue let none through")
    live = [(p.name, rec) for p in participants for r in p.results if r.probe for rec in r.probe["recordings"]
            if rec.get("mode") == "live" and rec.get("guest_kind") == "container"]
    say(f"live recordings in the participants' containers: {len(live)}, each checked against its participant's "
        f"cgroup (limit {limit / GIB:.2f} GiB, cgroup_* columns; peak in a recording "
        f"{max((rec.get('cgroup_usage_max_bytes') or 0 for _, rec in live), default=0) / GIB:.2f} GiB)"
        if live else "no live recording in any participant's container")
    if not live:
        problems.append("no lab ran live in a participant's container: nothing showed the claims are about their cgroup")

    # OOM kills: each cgroup's counters (saved by the spawner as it removed it), and the kernel log
    saved = {}
    for f in (hub.state / "cgroups").glob("*.json"):
        saved[f.stem] = json.loads(f.read_text())
    peaks = []
    for p in participants:
        for c in saved.get(p.name, []):
            figures.oom_kills += c.get("oom_kill") or 0
            if c.get("peak_bytes"):
                peaks.append(c["peak_bytes"])
        if p.name not in saved:
            problems.append(f"{p.name}: no counters saved for its cgroup (was its server stopped by the spawner?)")
    oom_lines = [ln for ln in log_lines if "oom-kill" in ln or "Out of memory" in ln or "Killed process" in ln]
    ours = [ln for ln in oom_lines if f"{PREFIX}{os.getpid()}-" in ln or any(f"uid={u}," in ln for u in users.values())]
    if figures.oom_kills or ours:
        problems.append(f"{figures.oom_kills} OOM kill(s) in the participants' cgroups; kernel log: {ours[:3]}")
    elif oom_lines:
        problems.append(f"the kernel OOM-killed outside the participants' cgroups during the run: {oom_lines[:3]}")
    if peaks:
        say(f"cgroup peaks: {min(peaks) / GIB:.2f}-{max(peaks) / GIB:.2f} GiB of {limit / GIB:.2f} GiB, "
            f"OOM kills {figures.oom_kills}")

    figures.min_available_share = watch.min_available_share
    say(f"MemAvailable: lowest {watch.min_available_kib / 1024 ** 2:.1f} GiB of {watch.total_kib / 1024 ** 2:.1f} GiB "
        f"({watch.min_available_share:.1%}) over {watch.samples} samples")
    if watch.min_available_share < MIN_AVAILABLE_SHARE:
        problems.append(f"MemAvailable fell to {watch.min_available_share:.1%} of MemTotal, below {MIN_AVAILABLE_SHARE:.0%}")

    problems += knob_problems(counters_before, counters_after, log_lines, watch.pids, participants)

    culled = [u for u in left_to_culler if u not in not_culled and any(u in ln for ln in culled_log)]
    say(f"idle culler: removed {len(culled)}/{len(left_to_culler)} idle servers"
        + (f"; the check stopped the other {len(stopped) - len(not_stopped)}" if stopped else ""))
    if not_stopped:
        problems.append(f"servers still running after the REST API stopped them: {not_stopped}")
    if len(culled) < len(left_to_culler):
        problems.append(f"the idle culler did not remove {sorted(set(left_to_culler) - set(culled))} within "
                        f"{CULL_TIMEOUT_S} s of idleness (+ its polling); hub log: {hub.state / 'hub.log'}")

    # Nothing left behind: processes, the proxy, cgroups, accounts
    left = stop_hub(hub)
    time.sleep(1)
    left += [f"pid {pid} of uid {uid}: {cmd}" for pid, uid, cmd in processes_of(set(users.values()))]
    left += [str(d) for d in Path("/sys/fs/cgroup").glob(f"*/{PREFIX}{os.getpid()}-*")]
    for name in users:
        remove_user(name)
    left += [f"account {n}" for n in users if _user_exists(n)]
    if left:
        problems.append(f"left behind: {left}")
    else:
        say("nothing left behind: no participant process, no proxy, no cgroup, no account")
    return problems


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def own_cgroup_problems(p: Participant, limit: int) -> list[str]:
    """Each live recording a participant's lab made must describe that participant's cgroup."""
    problems, mine = [], f"{PREFIX}{os.getpid()}-{p.name}"
    for r in p.results:
        if not r.probe:
            continue
        if r.probe.get("drop_caches_writable") or r.probe.get("compact_memory_writable"):
            problems.append(f"{p.name} {r.lab}: the participant's kernel can write a system-wide knob")
        if not (r.probe.get("kernel_cgroup") or "").endswith(mine):
            problems.append(f"{p.name} {r.lab}: the kernel sees the memory cgroup {r.probe.get('kernel_cgroup')}, not {mine}")
        for rec in r.probe.get("recordings", []):
            if rec.get("mode") != "live" or rec.get("guest_kind") != "container":
                continue
            where = f"{p.name} {r.lab} {rec.get('experiment')} (live)"
            if rec.get("cgroup_limit_bytes") != limit:
                problems.append(f"{where}: recorded a cgroup limit of {rec.get('cgroup_limit_bytes')}, not the "
                                f"participant's {limit}")
            if "cgroup_usage_bytes" not in rec.get("columns", []):
                problems.append(f"{where}: no cgroup columns: its numbers are the machine's, not the participant's")
            elif (rec.get("cgroup_usage_max_bytes") or 0) > limit:
                problems.append(f"{where}: recorded {rec['cgroup_usage_max_bytes'] / GIB:.2f} GiB in its cgroup, "
                                f"above the limit: not the participant's cgroup")
    return problems


def knob_problems(before: dict[str, int], after: dict[str, int], log_lines: list[str], participant_pids: set[int],
                  participants: list[Participant]) -> list[str]:
    """No participant wrote drop_caches (the kernel logs each write with its PID; drop_pagecache/drop_slab count
    them); compaction counters are shown, not judged: compact_stall and friends also move when any allocation on
    the machine compacts directly, and a compact_memory write leaves no counter of its own."""
    problems = []
    writes = [ln for ln in log_lines if "drop_caches" in ln]
    by_participant = [ln for ln in writes if any(f"({pid})" in ln for pid in participant_pids)]
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in sorted(after)}
    moved = {k: v for k, v in delta.items() if v}
    drops = {k: delta.get(k, 0) for k in KNOB_COUNTERS}
    if by_participant:
        problems.append(f"a participant wrote drop_caches: {by_participant}")
    if sum(drops.values()) and not writes:
        problems.append(f"drop_caches was written ({drops}) but the kernel log has no line saying by whom")
    say("system-wide knobs: drop_caches " + (
        f"written {sum(drops.values())} time(s) during the run, by others on this shared machine, never by a "
        f"participant ({'; '.join(writes[:3])})" if writes and not by_participant else
        "not written" if not writes else f"written by a participant ({by_participant[:2]})")
        + "; compaction counters moved: " + (", ".join(f"{k} +{v}" for k, v in moved.items() if k.startswith("compact_"))
                                             or "none"))
    if not any(p.results and all(r.probe and not r.probe.get("drop_caches_writable") for r in p.results if r.ok)
               for p in participants):
        problems.append("no participant's kernel confirmed that the knobs are out of its reach")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ci/check-hub", description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=10, help="participants at once (default 10)")
    parser.add_argument("--vm-participants", type=int, default=3,
                        help="how many of them also run lab 05, the kit's CPU-bound VM (default 3: they queue "
                             "for a 2-core machine's two VM slots)")
    parser.add_argument("--port", type=int, default=9000,
                        help="the hub's public port; the proxy API, the hub and the servers use the next ones")
    parser.add_argument("--break", dest="break_", choices=("no-limit", "oversubscribe"),
                        help="a deliberately broken room, to see it caught: servers without a memory limit, or "
                             "participants asking 3 GB each")
    args = parser.parse_args(argv)
    if args.participants < 1 or not 0 <= args.vm_participants <= args.participants:
        parser.error("--participants must be at least 1 and --vm-participants between 0 and --participants")
    if os.geteuid() != 0:
        say("SKIPPED: needs root, to make participant accounts and memory cgroups for a JupyterHub")
        return 0
    try:
        import jupyterhub, websocket, jupyterhub_idle_culler  # noqa: F401
    except ImportError as exc:
        say(f"FAILED: {exc.name} is not installed; run `python3 tasks.py setup` (the `hub` extra), then use .venv's python")
        return 1
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, bc._raise_exit)
    bc.sweep_leftovers(PREFIX)
    sweep_leftover_users()
    tmp = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
    tmp.chmod(0o755)
    figures, cleanup, problems, t0 = Figures(), [], [], time.monotonic()
    try:
        problems = check(args, tmp, figures, cleanup)
    except CheckFailed as exc:
        problems = [str(exc)]
    finally:
        for undo in reversed(cleanup):
            try:
                undo()
            except Exception as exc:  # keep cleaning up
                say(f"while cleaning up: {exc}")
        for d in Path("/sys/fs/cgroup").glob(f"*/{PREFIX}{os.getpid()}-*"):
            bc.Cgroup(d, 1).remove()
        shutil.rmtree(tmp, ignore_errors=True)
    figures.seconds = time.monotonic() - t0
    for problem in problems:
        say(f"FAILED: {problem}")
    print(f"hub: {figures.passed_participants}/{figures.participants} participants, {figures.labs_passed}/"
          f"{figures.labs_total} labs passed, {figures.oom_kills} OOM kills, min MemAvailable "
          f"{f'{figures.min_available_share * 100:.1f}' if figures.min_available_share else '-'} %, "
          f"{figures.seconds:.0f} s; kit's VM: {figures.vm_live} LIVE, {figures.vm_recorded} recorded after their "
          f"wait, longest wait {figures.vm_longest_wait_s:.0f} s", flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
