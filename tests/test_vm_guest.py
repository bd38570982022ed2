"""A lab's experiment in the kit's VM through the lab context: guest="vm" (issue 27). Boots QEMU: -m vm."""
from __future__ import annotations

import pytest

from reclaimlab.notebook import lab
from reclaimlab.present.findings import calloc_reclaim
from reclaimlab.vm import availability

pytestmark = [pytest.mark.vm, pytest.mark.skipif(availability() is not None, reason=availability() or "")]


def test_lab01_calloc_runs_live_in_the_kits_vm_through_the_lab_context():
    ctx = lab.setup(guest="vm", experiments=["calloc-reclaim"], size="3GB", show=False)
    placed = ctx.placements["calloc-reclaim"]
    assert (placed.how, placed.place) == ("live", "vm")
    rec = ctx.run("calloc-reclaim", size="3GB", show_banner=False)
    assert not rec.is_recorded and rec.meta["guest_kind"] == "kit-vm"
    assert rec.why_shown == placed.why  # the banner gives the lab's reason for this place
    # 3 GB cannot fit the kit's VM: scaled down, with the notice the banner shows
    assert any("scaled down" in n for n in rec.meta["notices"]) and rec.meta["parameters"]["size_bytes"] < 3e9
    html = lab.banner_html(rec)
    assert "LIVE in the kit&#x27;s VM" in html and "Notice:" in html
    # the same story as on this machine: calloc commits nothing, the touch commits it, the host gets it back
    assert calloc_reclaim.calloc(rec).verdict == "next_to_nothing"
    assert calloc_reclaim.touch(rec).verdict == "nearly_all"
    assert calloc_reclaim.reporting(rec).verdict in ("returned", "partial")
    assert calloc_reclaim.batches(rec).evidence["n"] >= 1
