"""Your-turn checkers: right, wrong (with a hint aimed at the likely slip), and bad input; the
solution files in labs/solutions/ pass their own checker on the shipped recordings."""
from __future__ import annotations

from pathlib import Path

import pytest

from reclaimlab.recording import datasets
from reclaimlab.notebook import exercises

SOLUTIONS = Path(__file__).resolve().parents[1] / "labs" / "solutions"


@pytest.fixture(scope="module")
def rec():
    return datasets.find("calloc-reclaim")


@pytest.fixture(scope="module")
def rec_on():
    return datasets.find("calloc-reclaim", {"reporting": True}, guest_kind="kit-vm")


def _by_hand(rec, order, label=None):
    b = rec.buddyinfo
    label = label or list(dict.fromkeys(b["label"]))[-1]
    s = b[(b["label"] == label) & (b["order"] >= order)]
    return float((s["free_blocks"] * 2 ** s["order"] * 4).sum()) / 1024


def test_reportable_is_computed_from_the_snapshot(rec):
    mib9, mib5 = _by_hand(rec, 9), _by_hand(rec, 5)
    assert exercises.reportable_kib(rec, 9) / 1024 == pytest.approx(mib9)
    assert mib5 > mib9 > 0                  # the lesson: a lower order reports more


@pytest.mark.parametrize("order", [9, 5])
def test_right_answers_pass_rounded_or_as_a_size(rec, order):
    want = _by_hand(rec, order)
    for answer in (want, round(want), f"{want / 1024:.3f}GiB"):
        fb = exercises.reportable_feedback(answer, rec, order)
        assert fb.correct is True and "Right" in fb.markdown, answer


@pytest.mark.parametrize("slip, words", [
    (lambda r: _by_hand(r, 9) - _by_hand(r, 10), "or larger"),          # order 9 alone
    (lambda r: _by_hand(r, 9) * 1024, "KiB"),
    (lambda r: _by_hand(r, 9) * 256, "pages"),
    (lambda r: _by_hand(r, 9) * 3.3 + 17, "sum `free_blocks"),
])
def test_wrong_answers_get_a_hint_at_the_slip(rec, slip, words):
    fb = exercises.reportable_feedback(slip(rec), rec, 9)
    assert fb.correct is False and "Not quite" in fb.markdown and words in fb.markdown


@pytest.mark.parametrize("answer, words", [
    (..., "No answer yet"), (None, "No answer yet"), ("lots", "not a size"), ("3XB", "not a size"),
    (-5, "negative"), (float("nan"), "finite"), (True, "not a number"), ([1, 2], "not a number"),
])
def test_bad_answers_get_a_clear_message_not_a_traceback(rec, answer, words):
    fb = exercises.reportable_feedback(answer, rec, 9)
    assert fb.correct is None and words in fb.markdown


def test_bad_order_and_missing_snapshot_are_named(rec):
    with pytest.raises(ValueError, match="order=11 is not a buddy order"):
        exercises.reportable_kib(rec, 11)
    with pytest.raises(ValueError, match="no buddyinfo snapshot 'nope'; it has: observed"):
        exercises.buddy_snapshot(rec, "nope")


def test_step_budget(rec_on):
    b = exercises.pass_budget(rec_on)
    assert b["top_order"] == 10 and b["block_mib"] == 4
    assert b["budget_mib"] == (-(-b["top_blocks"] // 512) + 1) * 32 * 4
    assert exercises.step_budget_feedback(b["budget_mib"], rec_on).correct is True
    fb = exercises.step_budget_feedback(b["calls"] * 32 * 4, rec_on)
    assert fb.correct is False and "additional call" in fb.markdown
    assert exercises.step_budget_feedback("x", rec_on).correct is None


def _run_solution(name, **ns):
    shown = []
    ns.update(exercises=type("E", (), {k: staticmethod(getattr(exercises, k)) for k in dir(exercises)
                                       if not k.startswith("_")}))
    ns["exercises"].check_reportable = staticmethod(lambda a, r, order: shown.append(exercises.reportable_feedback(a, r, order)))
    ns["exercises"].check_step_budget = staticmethod(lambda a, r: shown.append(exercises.step_budget_feedback(a, r)))
    exec(compile((SOLUTIONS / name).read_text(), name, "exec"), ns)
    return shown


def test_the_solutions_pass_their_checkers(rec, rec_on):
    shown = _run_solution("01_reportable.py", snap=exercises.buddy_snapshot(rec), rec_ex=rec)  # the lab names it rec_ex
    assert [fb.correct for fb in shown] == [True, True]
    shown = _run_solution("05_step_budget.py", budget=exercises.pass_budget(rec_on), rec_ex=rec_on)
    assert [fb.correct for fb in shown] == [True]


def _bare(rec):
    """The recording without its buddyinfo snapshots: a live run where /proc/buddyinfo was not read."""
    return type(rec)(samples=rec.samples, events=rec.events, meta=dict(rec.meta), buddyinfo=None)


def test_the_lab_05_solution_checks_the_recording_the_exercise_used(rec_on):
    """Teaching review: the lab-05 solution checked `rec_on`, so on a run without a buddyinfo snapshot it
    raised instead of checking the shipped recording the exercise fell back to (`rec_ex`)."""
    rec_ex = exercises.with_snapshot(_bare(rec_on), "before")
    shown = _run_solution("05_step_budget.py", budget=exercises.pass_budget(rec_ex), rec_on=_bare(rec_on),
                          rec_ex=rec_ex)
    assert [fb.correct for fb in shown] == [True]


def test_the_lab_03_solution_checks_the_recording_the_exercise_used():
    """Teaching review: the lab-03 solution checked `rec`, so on a run without a buddyinfo snapshot it
    raised instead of checking the shipped recording the exercise fell back to (`rec_ex`)."""
    rec = _bare(datasets.find("compaction"))
    rec_ex = exercises.with_snapshot(rec, "fragmented")
    shown = []
    ns = {"rec": rec, "rec_ex": rec_ex, "snap": exercises.buddy_snapshot(rec_ex, "fragmented"),
          "exercises": type("E", (), {"check_reportable": staticmethod(lambda a, r, order, label: shown.append(
              exercises.reportable_feedback(a, r, order, label)))})}
    exec(compile((SOLUTIONS / "03_reportable.py").read_text(), "03_reportable.py", "exec"), ns)
    assert [fb.correct for fb in shown] == [True, True]


def test_with_snapshot_falls_back_to_the_shipped_recording(rec, capsys):
    assert exercises.with_snapshot(rec) is rec
    bare = type(rec)(samples=rec.samples, events=rec.events, meta=dict(rec.meta), buddyinfo=None)
    used = exercises.with_snapshot(bare)
    assert used.buddyinfo is not None and not used.buddyinfo.empty
    assert "no `/proc/buddyinfo` snapshot" in capsys.readouterr().out


@pytest.fixture(scope="module")
def rec_pc():
    return datasets.find("page-cache")


def test_dropped_right_wrong_and_signed(rec_pc):
    from reclaimlab.present.findings import page_cache
    w = page_cache.around_drop(rec_pc, 1)
    want = (w["own_before_kib"] - w["own_after_kib"]) / 1024
    assert want > 0
    assert exercises.dropped_feedback(round(want), rec_pc).correct is True
    minus = exercises.dropped_feedback(-want, rec_pc)
    assert minus.correct is False and "minus sign" in minus.markdown
    guest = (w["cached_kib_before"] - w["cached_kib_after"]) / 1024
    if abs(guest - want) > 0.05 * want:
        assert "whole guest" in exercises.dropped_feedback(guest, rec_pc).markdown
    assert "KiB" in exercises.dropped_feedback(want * 1024, rec_pc).markdown
    assert exercises.dropped_feedback(..., rec_pc).correct is None


def test_dropped_without_our_own_figure_or_the_step_is_named(rec, rec_pc):
    bare = rec_pc.samples.drop(columns=[c for c in ("workload_file_resident_kib", "workload_cgroup_bytes")
                                        if c in rec_pc.samples.columns])
    with pytest.raises(ValueError, match="no figure of our own file"):
        exercises.dropped_kib(type(rec_pc)(samples=bare, events=rec_pc.events, meta=dict(rec_pc.meta),
                                           buddyinfo=rec_pc.buddyinfo))
    with pytest.raises(ValueError, match="no drop_caches=1 step"):
        exercises.dropped_kib(rec)   # a calloc-reclaim run drops no caches


def test_the_lab_02_and_03_solutions_pass_their_checkers(rec_pc):
    shown = []
    ns = {"rec": rec_pc, "exercises": type("E", (), {
        "check_dropped": staticmethod(lambda a, r, level: shown.append(exercises.dropped_feedback(a, r, level)))})}
    exec(compile((SOLUTIONS / "02_dropped.py").read_text(), "02_dropped.py", "exec"), ns)
    rec_c = datasets.find("compaction")
    ns = {"rec_ex": rec_c, "snap": exercises.buddy_snapshot(rec_c, "fragmented"), "exercises": type("E", (), {
        "check_reportable": staticmethod(lambda a, r, order, label: shown.append(
            exercises.reportable_feedback(a, r, order, label)))})}
    exec(compile((SOLUTIONS / "03_reportable.py").read_text(), "03_reportable.py", "exec"), ns)
    assert [fb.correct for fb in shown] == [True, True, True]


ROWS = [("01 · calloc and reclaim", "calloc-reclaim: LIVE; refault: RECORDED", "a cgroup of your own"),
        ("02 · page cache", "page-cache: RECORDED", "a shared machine"),
        ("05 · be the host", "the kit's VM: LIVE", "the kit's VM can boot here")]


def test_live_labs_right_wrong_and_bad_input():
    assert exercises.live_labs(ROWS) == [1, 5]
    assert exercises.live_labs_feedback([5, 1], ROWS).correct is True
    assert exercises.live_labs_feedback(["01", "05"], ROWS).correct is True
    extra = exercises.live_labs_feedback([1, 2, 5], ROWS)
    assert extra.correct is False and "lab 02 shows a recording" in extra.markdown
    missed = exercises.live_labs_feedback(1, ROWS)
    assert missed.correct is False and "lab 05 has an experiment marked LIVE" in missed.markdown
    assert "there is no lab 07" in exercises.live_labs_feedback([7], ROWS).markdown
    none = [(n, r.replace("LIVE", "RECORDED"), w) for n, r, w in ROWS]
    assert exercises.live_labs_feedback([], none).correct is True
    for bad, words in ((..., "No answer yet"), ({"a": 1}, "is not a list of labs"), (["one"], "'one'"),
                       ([1.5], "1.5"), ([True], "True")):
        fb = exercises.live_labs_feedback(bad, ROWS)
        assert fb.correct is None and words in fb.markdown, (bad, fb.markdown)


def test_the_lab_00_solution_passes_its_checker():
    shown = []
    lab = type("L", (), {"lab_rows": staticmethod(lambda ctx: ROWS)})
    ex = type("E", (), {"check_live_labs": staticmethod(lambda a, r: shown.append(exercises.live_labs_feedback(a, r)))})
    exec(compile((SOLUTIONS / "00_live_labs.py").read_text(), "00_live_labs.py", "exec"),
         {"lab": lab, "ctx": None, "exercises": ex})
    assert [fb.correct for fb in shown] == [True]
