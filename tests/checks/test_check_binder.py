"""The Binder simulation (binder_check.py): a fresh environment from binder/ alone, every lab executed
as an unprivileged user in a 2 GiB memory cgroup with /boot's kernel readable by root only; lab 05 must
still run LIVE in the kit's VM. About 10 minutes; needs root."""
from __future__ import annotations

import pytest

from checks_support import needs_root, run_helper, shown  # noqa: F401  (shown: a fixture)

pytestmark = pytest.mark.binder


def test_every_lab_runs_as_a_binder_participant(shown):
    needs_root("make a memory cgroup and run the labs as an unprivileged user")
    with shown():
        run_helper("binder_check")
