"""A room of participants at once on a real JupyterHub (hub_check.py): a 2 GiB memory cgroup per user
server, RECLAIMLAB_SHARED=1, the idle culler, every lab through the proxy and each kernel's websocket.
About 10 minutes; needs root and the `hub` extra."""
from __future__ import annotations

import pytest

from checks_support import needs_root, run_helper, shown  # noqa: F401  (shown: a fixture)

pytestmark = pytest.mark.hub


def test_a_room_of_participants_runs_every_lab(shown):
    needs_root("make participant accounts and memory cgroups for a JupyterHub")
    for module in ("jupyterhub", "websocket", "jupyterhub_idle_culler"):
        pytest.importorskip(module, reason="the `hub` extra is missing: python3 tasks.py setup installs it")
    with shown():
        run_helper("hub_check")
