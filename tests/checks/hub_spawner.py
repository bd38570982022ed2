"""The spawner the hub check (hub_check.py) gives JupyterHub: LocalProcessSpawner, with each user server in a memory cgroup.

Why this one: TLJH's SystemdSpawner asks systemd for a transient unit with MemoryMax, but here PID 1 is
not systemd (a Firecracker guest whose init is the sandbox's agent), so there is no systemd to ask;
DockerSpawner and KubeSpawner need a container runtime. What the kit depends on from all of them is one
thing: the user's server, kernels and children live in a memory cgroup whose limit is the user's
mem_limit. This spawner does exactly that and nothing else: before the server execs (as the user), it
joins a cgroup made for it (v1 memory.limit_in_bytes, or v2 memory.max), and on stop whatever is left
inside is killed and the cgroup removed, after its counters (OOM kills, peak) are saved for the check.
"""
from __future__ import annotations

import json
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Bool, Dict, Unicode

from binder_check import Cgroup  # tests/checks is on sys.path (the hub's config puts it there)


class CgroupSpawner(LocalProcessSpawner):
    cgroup_prefix = Unicode(help="Cgroup names are this + the user's name.").tag(config=True)
    counters_dir = Unicode(help="Where each cgroup's counters are saved (JSON) before it is removed.").tag(config=True)
    enforce_limit = Bool(True, help="False: a cgroup without a limit (the check's --break no-limit).").tag(config=True)
    ports = Dict(help="{user name: port} so the servers stay within the check's port range.").tag(config=True)

    _cgroup: Cgroup | None = None

    def make_preexec_fn(self, name):
        switch_user = super().make_preexec_fn(name)
        cgroup = self._cgroup

        def preexec() -> None:
            cgroup.join()   # still root here: join first, then drop to the user
            switch_user()

        return preexec

    async def start(self):
        if self.user.name in self.ports:
            self.port = int(self.ports[self.user.name])
        self._cgroup = Cgroup.create(self.cgroup_prefix + self.user.name,
                                     self.mem_limit if self.enforce_limit else None)
        try:
            return await super().start()
        except BaseException:
            self._remove_cgroup()
            raise

    async def stop(self, now: bool = False):
        try:
            await super().stop(now=now)
        finally:
            self._remove_cgroup()

    def _remove_cgroup(self) -> None:
        cgroup, self._cgroup = self._cgroup, None
        if cgroup is None:
            return
        counters = {"path": str(cgroup.path), "version": cgroup.version, **cgroup.counters()}
        if self.counters_dir:
            out = Path(self.counters_dir) / f"{self.user.name}.json"
            previous = json.loads(out.read_text()) if out.exists() else []
            out.write_text(json.dumps(previous + [counters]))
        cgroup.remove()
