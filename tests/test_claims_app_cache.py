"""findings.app_cache: `free`'s columns as procps-ng computes them, the verdicts at their edges, and the
shipped recording of a SQLite app (the blog's picture with a real application)."""
from __future__ import annotations

import pandas as pd
import pytest

from reclaimlab.present.findings import app_cache as ac
from reclaimlab.recording import datasets, recording

MIB = 1024
GIB = 1024 * MIB


def test_free_columns_match_procps_ng_4_on_this_kits_guest():
    # /proc/meminfo and `free -k` (procps-ng 4.0.2) read together on the kit's test guest, 2026-12-06
    cols = ac.free_columns(total_kib=24683772, free_kib=20983452, buffers_kib=23724, cached_kib=492404,
                           sreclaimable_kib=29068, available_kib=21194768)
    assert cols["buff_cache"] == 545196          # free's buff/cache column
    assert cols["used"] == 3489004               # free's used column: total - available
    assert cols["used_old"] == 24683772 - 20983452 - 545196   # procps-ng 3.3: total - free - buff/cache


def test_free_columns_fall_back_like_procps_when_used_would_be_negative():
    cols = ac.free_columns(total_kib=1000, free_kib=900, buffers_kib=0, cached_kib=500, sreclaimable_kib=0,
                           available_kib=1200)
    assert cols["used"] == 100 and cols["used_old"] == 100


def _view(step, t_s, *, used=50 * MIB, cache=1700 * MIB, held=2 * GIB, small=200 * MIB, rss=30 * MIB,
          db=1500 * MIB, free=20 * GIB):
    return ac.View(step, t_s, 24 * GIB, used, used, cache, 22 * GIB, free, held, small, rss, db, 9)


def _rec(available=(22 * GIB, 21 * GIB), results=None):
    samples = pd.DataFrame({"t_s": [0.0, 10.0], "mem_total_kib": [24 * GIB] * 2, "mem_available_kib": list(available)})
    return recording.Recording(samples=samples, events=pd.DataFrame({"t_s": [], "kind": [], "detail": []}),
                               meta={"experiment": "app-cache", "results": results or {"db_bytes": 1500 * GIB // 1024}})


def test_the_blogs_picture_cache_is_most_of_the_difference(monkeypatch):
    monkeypatch.setattr(ac, "views", lambda rec: {"queried": _view("queried", 5.0)})
    c = ac.picture(_rec())
    assert c.verdict == "cache_most" and c.value == 2 * GIB - 50 * MIB
    assert "2,048 MiB" in c.sentence and "50 MiB" in c.sentence and "1,700 MiB" in c.sentence
    monkeypatch.setattr(ac, "views", lambda rec: {"queried": _view("queried", 5.0, small=1701 * MIB)})
    assert ac.picture(_rec()).verdict == "small_blocks_most"
    monkeypatch.setattr(ac, "views", lambda rec: {"queried": _view("queried", 5.0, held=None)})
    assert ac.picture(_rec()).verdict == "no_host_view"


@pytest.mark.parametrize("rss_mib, verdict", [(149, "app_small"), (151, "app_large")])
def test_app_small_beside_its_cached_database_at_the_edge(monkeypatch, rss_mib, verdict):
    monkeypatch.setattr(ac, "views", lambda rec: {"queried": _view("queried", 5.0, rss=rss_mib * MIB)})
    assert ac.app_vs_cache(_rec()).verdict == verdict


@pytest.mark.parametrize("low_share, verdict", [(0.21, "no_pressure"), (0.19, "pressure")])
def test_no_reason_to_drop_follows_the_lowest_available(low_share, verdict):
    c = ac.no_reason_to_drop(_rec(available=(22 * GIB, low_share * 24 * GIB)))
    assert c.verdict == verdict and c.value == pytest.approx(low_share)


@pytest.mark.parametrize("back_mib, verdict", [(900, "host_got_most"), (400, "host_got_some"), (10, "host_got_none")])
def test_after_drop_how_much_the_host_got_back(monkeypatch, back_mib, verdict):
    monkeypatch.setattr(ac, "views", lambda rec: {
        "queried": _view("queried", 5.0, cache=1700 * MIB, held=10 * GIB),
        "dropped": _view("dropped", 15.0, cache=100 * MIB, held=10 * GIB - back_mib * MIB)})
    c = ac.after_drop(_rec())
    assert c.verdict == verdict and "1,600 MiB" in c.sentence and "10 s later" in c.sentence


def test_a_recording_without_maps_says_what_it_cannot_tell():
    rec = _rec()
    assert ac.views(rec) == {}
    assert [c.verdict for c in ac.all_claims(rec)] == ["not_run", "not_measurable", "no_pressure", "not_run"]
    rows, header = ac.free_table(rec)
    assert header == ("whole guest unless “our”",) and all(len(r) == 1 for r in rows)


def test_the_shipped_sqlite_run():
    rec = datasets.find("app-cache")
    v = ac.views(rec)
    assert list(v) == ["before", "queried", "dropped"]
    q = v["queried"]
    db_kib = rec.meta["results"]["db_bytes"] / 1024
    assert db_kib >= 1.4 * GIB
    # the app's own memory stayed in tens of MiB while its database sat in the page cache
    assert q.app_rss_kib < 64 * MIB and q.db_cached_kib >= 0.9 * db_kib
    assert q.buff_cache_kib - v["before"].buff_cache_kib >= 0.9 * db_kib
    # the host view is what the identity says it is
    assert q.host_held_kib == pytest.approx(q.used_old_kib + q.buff_cache_kib + q.free_unreported_kib)
    verdicts = {c.key: c.verdict for c in ac.all_claims(rec)}
    assert verdicts == {"app_cache.picture": "small_blocks_most", "app_cache.app_vs_cache": "app_small",
                        "app_cache.no_reason_to_drop": "no_pressure", "app_cache.after_drop": "host_got_some"}
    rows, header = ac.free_table(rec)
    by_label = {r[0]: r for r in rows}
    assert len(header) == 4 and by_label["our app's own memory (its RSS)"][2] == "18 MiB"
    assert by_label["our database in the page cache (mincore)"][2] == "1,536 MiB"


def test_the_shipped_run_without_its_maps_still_gives_frees_columns_and_says_the_host_is_unknown():
    rec = datasets.find("app-cache")
    rec.physmaps = []
    v = ac.views(rec)
    assert list(v) == ["before", "queried", "dropped"] and all(x.host_held_kib is None for x in v.values())
    assert v["queried"].buff_cache_kib - v["before"].buff_cache_kib >= 1.3 * GIB
    verdicts = {c.key: c.verdict for c in ac.all_claims(rec)}
    assert verdicts["app_cache.picture"] == "no_host_view" and verdicts["app_cache.after_drop"] == "no_host_view"
    assert verdicts["app_cache.app_vs_cache"] == "app_small"
    rows, _ = ac.free_table(rec)
    assert rows[3][1:] == ("—", "—", "—")


@pytest.mark.slow
def test_lab02_recorded_shows_the_sqlite_picture(executed_lab):
    from reclaimlab.present import claims

    found = claims.by_key(claims.from_notebook(executed_lab("02", "recorded")))  # the session's one execution
    expected = {c.key: c.verdict for c in ac.all_claims(datasets.find("app-cache"))}
    assert {k: found[k]["verdict"] for k in expected} == expected
