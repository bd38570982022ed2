"""findings.page_cache: verdicts at the thresholds' edges, and on the shipped and corpus recordings."""
from __future__ import annotations

import pandas as pd
import pytest

from reclaimlab.recording import recording
from reclaimlab.present.claims import THRESHOLDS
from reclaimlab.present.findings import page_cache as pc

MIB = 1024
FILE_KIB = 1000 * MIB


def _rec(*, own_before=FILE_KIB, own_after=0.0, cached=(5000 * MIB, 4000 * MIB), slab=(500 * MIB, 470 * MIB),
         window_s=6.0, host=None, own_col="workload_file_resident_kib") -> recording.Recording:
    """A drop_caches=1 at t=10 s with the figures just before (t=9.9) and just before the next step."""
    t_end = 10 + window_s
    samples = pd.DataFrame({"t_s": [0.0, 9.9, t_end - 0.05, t_end + 1],
                            "cached_kib": [cached[0], cached[0], cached[1], cached[1]],
                            "slab_reclaimable_kib": [slab[0], slab[0], slab[1], slab[1]],
                            "mem_free_kib": [0, 0, 0, 0], "anon_kib": [100 * MIB] * 4})
    if own_col:
        samples[own_col] = [own_before, own_before, own_after, own_after]
    if host is not None:
        samples["host_reported_kib"] = [0, 0, host, host]
    events = pd.DataFrame({"t_s": [1.0, 10.0, t_end], "kind": ["write_file", "drop_caches", "walk_fs"],
                           "detail": ["", "1", ""]})
    meta = {"experiment": "page-cache", "results": {"file_bytes": FILE_KIB * 1024}, "parameters": {}}
    return recording.Recording(samples=samples, events=events, meta=meta)


def test_our_file_is_the_primary_figure_and_the_guest_is_context():
    own, guest = pc.dropped(_rec(), 1)
    assert (own.key, own.verdict, own.value) == ("page_cache.drop_1", "nearly_all", 1.0)
    assert guest.key == "page_cache.drop_1_guest"
    # the guest dropped 1000 MiB, our file 1000 MiB: about the same
    assert guest.verdict == "ours_only"


@pytest.mark.parametrize("extra_share, verdict", [
    (THRESHOLDS["page_cache_others_share"] * 1.01, "others_too"),
    (THRESHOLDS["page_cache_others_share"] * 0.99, "ours_only"),
    (-THRESHOLDS["page_cache_others_share"] * 1.01, "others_grew"),
])
def test_guest_context_edges(extra_share, verdict):
    fall = FILE_KIB * (1 + extra_share)
    _, guest = pc.dropped(_rec(cached=(5000 * MIB, 5000 * MIB - fall)), 1)
    assert guest.verdict == verdict


def test_no_own_figure_says_so_and_labels_the_guest():
    own, guest = pc.dropped(_rec(own_col=None), 1)
    assert own.verdict == "not_measurable" and guest.verdict == "guest_only"
    assert "every file of the machine" in guest.sentence


def test_a_cgroup_figure_is_used_where_there_is_no_mincore_column():
    own, _ = pc.dropped(_rec(own_col="workload_cgroup_bytes", own_before=FILE_KIB * 1024, own_after=0), 1)
    assert own.verdict == "nearly_all" and "cgroup" in own.sentence


@pytest.mark.parametrize("window, verdict", [(THRESHOLDS["page_cache_min_window_s"] * 0.9, "cut_short"),
                                             (THRESHOLDS["page_cache_min_window_s"] * 1.2, "nearly_all")])
def test_a_cut_tail_concludes_nothing(window, verdict):
    assert pc.dropped(_rec(window_s=window), 1)[0].verdict == verdict


def _slab_fall_for(ours_kib: float) -> tuple[float, float]:
    low = high = pc.SLAB_KIB_PER_KIB * ours_kib   # the guest dropped only our file: one bound
    return low, high


@pytest.mark.parametrize("fall_of, verdict", [
    ("inside", "buffer_heads"),
    ("above", "more"),
    ("below", "less"),
    ("still", "still"),
    ("rise", "rose"),
])
def test_slab_at_level_1_edges(fall_of, verdict):
    low, high = _slab_fall_for(FILE_KIB)   # the guest dropped exactly our file here
    r = THRESHOLDS["slab_explained_ratio"]
    fall = {"inside": (low + high) / 2, "above": high * r * 1.01, "below": low / r * 0.99,
            "still": THRESHOLDS["slab_still_kib"] * 0.99, "rise": -THRESHOLDS["slab_still_kib"] * 2}[fall_of]
    if fall_of == "below":
        assert fall > THRESHOLDS["slab_still_kib"]
    c = pc.slab_at_level_1(_rec(cached=(5000 * MIB, 5000 * MIB - FILE_KIB), slab=(500 * MIB, 500 * MIB - fall)))
    assert c.verdict == verdict, c.sentence


def test_host_after_drop_share_and_no_view():
    assert pc.host_after_drop(_rec()).verdict == "no_host_view"
    assert pc.host_after_drop(_rec(host=0.95 * FILE_KIB)).verdict == "nearly_all"
    assert pc.host_after_drop(_rec(host=0.05 * FILE_KIB)).verdict == "little"


def test_blog_picture_follows_the_larger_part():
    assert pc.blog_picture(_rec()).verdict == "cache_larger"
    assert pc.blog_picture(_rec(cached=(50 * MIB, 10 * MIB))).verdict == "anon_larger"


def test_shipped_local_recording_quotes_our_file_not_the_guest():
    from reclaimlab.paths import recordings_dir
    recs = [recording.load(p.parent) for p in sorted((recordings_dir() / "page-cache").glob("*local*/meta.json"))]
    rec = next((r for r in recs if "workload_file_resident_kib" in r.samples.columns), None)
    if rec is None:
        pytest.skip("no shipped page-cache recording with the file's own figure yet")
    claims = pc.all_claims(rec)
    assert claims["drop_1"][0].verdict == "nearly_all"
    # the contradiction of issue 11: the figure quoted for our file is never bigger than the file
    assert claims["drop_1"][0].evidence["dropped_kib"] <= pc.file_kib(rec) * 1.01
