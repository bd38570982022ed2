"""Lab 05's guest and host maps: the shipped runs in the kit's VM carry both maps at each buddyinfo step,
the agreement the lab prints is computed from them, and a run without them says why."""
from __future__ import annotations

import copy
import html
import re

import pytest

from reclaimlab.notebook import lab
from reclaimlab.paths import recordings_dir
from reclaimlab.present import physmap_chart
from reclaimlab.recording import datasets
from reclaimlab.recording.recording import load
from reclaimlab.vm import hostmap


def vm_run(name: str, **params):
    return datasets.find(name, params, guest_kind="kit-vm")


@pytest.fixture(scope="module")
def on():
    return vm_run("calloc-reclaim", reporting=True)


@pytest.fixture(scope="module")
def off():
    return vm_run("calloc-reclaim", reporting=False)


@pytest.mark.parametrize("name, params, labels", [
    ("calloc-reclaim", {"reporting": True}, ["before", "after"]),
    ("calloc-reclaim", {"reporting": False}, ["before", "after"]),
    ("compaction", {"reporting": True}, ["before", "fragmented", "reported", "compacted"]),
    ("compaction", {"page_reporting_order": 5}, ["before", "fragmented", "reported", "compacted"]),
    ("compaction", {"page_reporting_order": 9}, ["before", "fragmented", "reported", "compacted"]),
    ("page-cache", {"reporting": True}, ["before", "cached", "dropped"]),
    # and after each touch, the buffer's frames as ours (findings.refault.touched_reported)
    ("refault", {"reporting": True}, ["before", "first_touched", "hot_touched", "before_cold", "cold_touched"]),
    ("refault", {"reporting": False}, ["before", "first_touched", "hot_touched", "before_cold", "cold_touched"]),
    # WSL's policies in the kit's VM: at the idle mark (before the gate's baseline) and after the tail
    *[("auto-reclaim", {"policy": policy, "variant": variant}, ["idle", "after"])
      for policy in ("dropCache", "gradual") for variant in ("newer", "released")],
])
def test_the_shipped_vm_runs_carry_both_maps_at_every_buddyinfo_step(name, params, labels):
    rec = vm_run(name, **params)
    assert [m.label for m in rec.physmaps] == labels
    assert set(rec.buddyinfo["label"]) <= set(labels)
    for m in rec.physmaps:
        assert m.host is not None and m.host.block_order == m.snapshot.block_order
        assert m.host.pages << 2 == rec.meta["guest_mem_mib"] << 10      # the host maps all of the guest's RAM
    cost = rec.meta["sampler_cost"]
    # the guest map's ~150-300 ms read under TCG never stalled the 10 Hz samples by 2 periods
    assert cost["physmap_snapshots"] == len(labels) and cost["physmap_max_gap_s"] < 2 / rec.meta["sample_hz"]


# every shipped run of calloc-reclaim and compaction, and every run in the kit's VM, whatever the lab
MAPPED = sorted(e["path"] for e in datasets.read_index()
                if e["experiment"] in ("calloc-reclaim", "compaction") or e.get("guest_kind") == "kit-vm")


@pytest.mark.parametrize("path", MAPPED)
def test_every_shipped_calloc_compaction_and_kit_vm_recording_carries_maps(path):
    rec = load(recordings_dir() / path)
    in_vm = rec.meta["guest_kind"] == "kit-vm"
    assert rec.physmaps, f"{path}: no map snapshots"
    labels = [m.label for m in rec.physmaps]
    if in_vm:
        assert rec.buddyinfo is not None, f"{path}: no buddyinfo steps"
    if rec.buddyinfo is not None:
        assert set(rec.buddyinfo["label"]) <= set(labels)       # a map at every buddyinfo step
    if in_vm:      # whole maps of both sides, not totals folded into results (auto-reclaim included)
        assert all(m.host is not None for m in rec.physmaps), f"{path}: a step without the host's map"
        assert all(m.host.pages << 2 == rec.meta["guest_mem_mib"] << 10 for m in rec.physmaps)


def test_reported_blocks_are_the_hosts_empty_ones_in_the_reporting_run(on, off):
    after = {m.label: m for m in on.physmaps}["after"]
    a = hostmap.agreement(after.snapshot, after.host)
    assert a.both >= 0.95 * (a.both + a.guest_only) and a.both > 300   # hundreds of MiB reported, the host holds none
    quiet = {m.label: m for m in off.physmaps}["after"]
    assert hostmap.agreement(quiet.snapshot, quiet.host).both == 0      # reporting off: nothing reported


def test_the_sentence_and_alt_text_are_computed_from_the_maps(on):
    after = {m.label: m for m in on.physmaps}["after"]
    a = hostmap.agreement(after.snapshot, after.host)
    text = physmap_chart.agreement_sentence(after.snapshot, after.host)
    assert f"Of the {a.both + a.guest_only:,} blocks of 2.00 MiB the guest had reported, the host held no page of {a.both:,}" in text
    page = lab.guest_and_host_maps_html({"reporting on": on}, step="after")
    assert page.count("<img") == 1 and 'src="data:image/png;base64,' in page and "http" not in page.split("base64,")[0]
    alt = html.unescape(re.search(r'alt="([^"]*)"', page).group(1))
    assert text in alt and "The host's map of the VM's RAM" in alt and "Map of physical memory" in alt
    # an edited host map changes the words: the guest's reported blocks now held by the host
    edited = copy.deepcopy(after.host)
    edited.resident_pages[:] = 512
    assert "still held some page of" in physmap_chart.agreement_sentence(after.snapshot, edited)


def test_a_run_without_maps_says_why(on):
    old = copy.deepcopy(on)
    old.physmaps = []
    assert "recorded before reclaimlab took maps there" in lab.guest_and_host_maps_html(old)
    no_host = copy.deepcopy(on)
    no_host.physmaps = [type(m)(m.label, m.t_s, m.read_s, m.snapshot) for m in on.physmaps]
    no_host.meta["hostmap_unavailable"] = "a guest of 4096 MiB: RAM above 3 GiB sits above the PCI hole"
    assert "guest's maps only: a guest of 4096 MiB" in html.unescape(lab.guest_and_host_maps_html({"x": no_host}))
    local = datasets.find("calloc-reclaim")
    assert local.meta["guest_kind"] != "kit-vm"
    assert "exists only in the kit's VM" in html.unescape(lab.guest_and_host_maps_html(local))


def test_order_5_takes_smaller_holes_than_order_9():
    runs = {o: vm_run("compaction", page_reporting_order=o) for o in (5, 9)}
    part = {}
    for o, rec in runs.items():
        m = {s.label: s for s in rec.physmaps}["reported"]
        cats = physmap_chart.host_categories(m.host)
        part[o] = int((cats == 1).sum())
        said = physmap_chart.agreement_sentence(m.snapshot, m.host)
        assert (f"The host held only part of {part[o]:,} blocks" in said) == (part[o] > 0)
    assert part[5] > 10 * max(part[9], 1)   # order 5: 128 KiB holes given back inside blocks the host keeps in part


def test_one_run_at_two_orders_maps_each_watch():
    """The order 9-then-5 run maps the end of each watch: order 5 gives back holes inside 2 MiB blocks."""
    rec = datasets.find("compaction", {"page_reporting_order": 9, "then_order": 5}, guest_kind="kit-vm")
    m = {s.label: s for s in rec.physmaps}
    part = {o: int((physmap_chart.host_categories(m[f"reported_at_{o}"].host) == 1).sum()) for o in (9, 5)}
    assert part[5] > 10 * max(part[9], 1)
    html_ = lab.guest_and_host_maps_html({"order 9": rec, "order 5": rec},
                                         step={"order 9": "reported_at_9", "order 5": "reported_at_5"})
    assert "step 'reported_at_9'" in html.unescape(html_) and "step 'reported_at_5'" in html.unescape(html_)


def test_one_block_is_one_block_in_the_sentence():
    # the shipped order-5 run's 'fragmented' map: the host held part of exactly one block
    rec = datasets.find("compaction", {"page_reporting_order": 5, "keep_every": 64, "then_order": None},
                        guest_kind="kit-vm")
    m = {s.label: s for s in rec.physmaps}["fragmented"]
    said = physmap_chart.agreement_sentence(m.snapshot, m.host)
    assert "The host held only part of 1 block:" in said and "of 1 blocks" not in said
