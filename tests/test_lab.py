"""reclaimlab.notebook.lab: parameter checks, banners, prompts and the self-check feedback, without a kernel."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from reclaimlab.paths import recordings_dir
from reclaimlab.notebook import context, lab, output, plan
from reclaimlab.probe import consent
from reclaimlab.recording.recording import Recording


def _rec(recorded: bool = True, **meta) -> Recording:
    base = {"experiment": "calloc-reclaim", "parameters": {"size": "3GB"}, "mode": "live", "complete": True,
            "kernel_release": "6.18.0", "guest_kind": "vm", "hypervisor": "firecracker",
            "date_utc": "2025-11-25T19:30:00Z", "sample_hz": 10}
    why_shown = meta.pop("mode_reason", "")  # a loaded recording is shown for the loader's reason, not meta's
    base.update(meta)
    if not recorded and why_shown:
        base["mode_reason"] = why_shown
    return Recording(samples=pd.DataFrame({"t_s": [0.0, 0.1]}), meta=base, why_shown=why_shown,
                     path=recordings_dir() / "calloc-reclaim" / "x" if recorded else None)


@pytest.fixture
def quiet_setup(monkeypatch):
    """setup() without probing the real guest or planning real experiments."""
    monkeypatch.setattr(context, "probe_guest", lambda: (None, "no probe in this test"))
    monkeypatch.setattr(plan, "experiment_plan", lambda name, mode, allow, guest_info=None: ("recorded", f"planned {name} {mode}"))
    return lambda **kw: lab.setup(show=False, **kw)


@pytest.mark.parametrize("kwargs, names", [
    ({"mode": "fast"}, ["mode='fast'", "'auto'", "'live'", "'recorded'"]),
    ({"mode": None}, ["mode=None"]),
    ({"allow_system_changes": "yes"}, ["allow_system_changes='yes'", "True or False"]),
    ({"allow_system_changes": 1}, ["allow_system_changes=1"]),
    ({"presenter": "no"}, ["presenter='no'"]),
    ({"sample_hz": 0}, ["sample_hz=0", "above 0"]),
    ({"sample_hz": -5}, ["sample_hz=-5"]),
    ({"sample_hz": float("nan")}, ["sample_hz=nan"]),
    ({"sample_hz": 10_000}, ["sample_hz=10000", "at most"]),
    ({"sample_hz": "10"}, ["sample_hz='10'"]),
    ({"size": "3XB"}, ["parameter size", "unknown unit", "3 GiB"]),
    ({"refault_size": "-1GB"}, ["parameter refault_size", "negative"]),
    ({"size": ""}, ["parameter size"]),
])
def test_setup_rejects_bad_parameters_naming_them(quiet_setup, kwargs, names):
    with pytest.raises(lab.LabParameterError) as err:
        quiet_setup(**kwargs)
    message = str(err.value)
    assert "\n" not in message
    for name in names:
        assert name in message


def test_setup_accepts_the_defaults_and_parses_sizes(quiet_setup):
    ctx = quiet_setup(mode="recorded", sample_hz=10, experiments=["calloc-reclaim", "refault"],
                      size="3GB", refault_size="1GiB")
    assert ctx.mode == "recorded" and ctx.allow_system_changes is False
    assert ctx.size_bytes == {"size": 3_000_000_000, "refault_size": 1024 ** 3}
    assert ctx.sizes == {"size": "3GB", "refault_size": "1GiB"}
    assert ctx.sample_hz == 10.0
    assert set(ctx.plan) == {"calloc-reclaim", "refault"}
    assert ctx.guest is None and "no probe" in ctx.guest_note


def test_setup_accepts_a_single_experiment_name(quiet_setup):
    assert list(quiet_setup(experiments="page-cache").plan) == ["page-cache"]


def test_switch_off_leaves_the_decision_to_the_environment(quiet_setup, monkeypatch):
    monkeypatch.delenv(consent.ALLOW_ENV, raising=False)
    ctx = quiet_setup()
    assert ctx.allow_arg is None and not ctx.changes_allowed
    assert "OFF" in lab.status_html(ctx)
    monkeypatch.setenv(consent.ALLOW_ENV, "1")
    assert ctx.changes_allowed
    assert f"{consent.ALLOW_ENV}=1" in lab.status_html(ctx)
    on = quiet_setup(allow_system_changes=True)
    assert on.allow_arg is True and "allow_system_changes=True" in lab.status_html(on)


def test_plan_in_recorded_mode_needs_no_guest():
    assert plan.experiment_plan("calloc-reclaim", "recorded", None) == ("recorded", "you chose mode='recorded'")


def test_status_shows_the_guest_and_the_plan():
    class Info:
        kind = "wsl2"
        hypervisor = "Microsoft Hyper-V"
        kernel_release = "6.6.87.2-microsoft-standard-WSL2"

        def to_dict(self):
            return {"kind": self.kind}

    ctx = lab.LabContext(mode="auto", allow_system_changes=False, guest=Info(),
                         plan={"page-cache": ("recorded", "needs root <for drop_caches>")})
    text = lab.status_html(ctx)
    assert "wsl2 guest" in text and "Hyper-V" in text and "microsoft-standard-WSL2" in text
    assert "<b>RECORDED</b>" in text and "needs root &lt;for drop_caches&gt;" in text


def test_banner_says_recorded_with_provenance_and_notices():
    rec = _rec(notices=["size scaled down from 3GB to 1.2 GiB <safe>"], mode_reason="live is not possible here: x")
    text = lab.banner_html(rec)
    assert "RECORDED" in text and "2025-11-25 19:30" in text and "firecracker" in text and "6.18.0" in text
    assert "size=&#x27;3GB&#x27;" in text
    assert "scaled down" in text and "&lt;safe&gt;" in text
    assert "live is not possible here" in text


def test_banner_says_live_and_flags_partial_runs():
    text = lab.banner_html(_rec(recorded=False, complete=False))
    assert "LIVE on this machine" in text and "partial" in text and "RECORDED" not in text


def test_banner_tells_when_the_lab_parameters_differ_from_the_recording():
    text = lab.banner_html(_rec(), requested={"size": "1GB"})
    assert "apply to live runs only" in text and "1GB" in text
    assert "apply to live runs only" not in lab.banner_html(_rec(), requested={"size": "3GB"})


def test_banner_accepts_a_single_notice_string():
    assert "one notice" in lab.banner_html(_rec(notices="one notice"))


@pytest.mark.parametrize("chosen, correct, words", [
    (None, None, "Pick an answer"),
    ("barely moves", True, "Correct"),
    (1, True, "Correct"),
    ("rises by 3 GB", False, "Not quite"),
    (0, False, "rises by 3 GB"),
])
def test_check_answer(chosen, correct, words):
    options = ["rises by 3 GB", "barely moves"]
    got, text = lab.check_answer(options, 1, chosen, "calloc commits <nothing>")
    assert got is correct
    assert words in text
    if correct:
        assert "calloc commits &lt;nothing&gt;" in text
    else:
        assert "calloc commits" not in text  # a wrong answer does not give the explanation away


@pytest.mark.parametrize("options, index", [(["only one"], 0), ("ab", 0), (["a", "b"], 2), (["a", "b"], -1),
                                            (["a", "b"], "1")])
def test_question_rejects_malformed_questions(options, index):
    with pytest.raises(ValueError):
        lab.question("?", options, index, "")


def test_question_feedback_handler_in_a_kernel_like_setting(monkeypatch):
    """The Check button's handler writes the feedback into the Output widget."""
    pytest.importorskip("ipywidgets")
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: shown.extend(objs))
    lab.question("What does calloc commit?", ["all of it", "almost nothing"], 1, "pages come on first touch")
    box = shown[-1]
    radio, button, _out = box.children
    assert radio.options == (("(a)", 0), ("(b)", 1)) and radio.value is None
    button.click()
    assert "Pick an answer" in shown[-1].data
    radio.value = 0
    button.click()
    assert "Not quite" in shown[-1].data
    radio.value = 1
    button.click()
    assert "Correct" in shown[-1].data and "first touch" in shown[-1].data


def test_question_without_widgets_prints_the_question(monkeypatch, capsys):
    monkeypatch.setattr(output, "widgets", lambda: None)
    monkeypatch.setattr(output, "display_html", lambda text: print(text))
    lab.question("Which?", ["x", "y"], 0, "because")
    out = capsys.readouterr().out
    assert "Which?" in out and "(a) x" in out and "solution cell" in out


def test_predict_html_lists_the_choices():
    text = lab.predict_html("What will <AnonPages> do?", ["rise", "stay"])
    assert "&lt;AnonPages&gt;" in text and "<li>(a) rise</li>" in text and "not graded" in text


def test_table_html_escapes_cells():
    text = lab.table_html([("a<b", 1, "x&y")], caption="c")
    assert "a&lt;b" in text and "x&amp;y" in text and "<caption" in text


GUEST = {
    "schema_version": 1, "kind": "vm", "kind_reason": "CPU flag 'hypervisor'", "hypervisor": "Firecracker (KVM)",
    "hypervisor_evidence": ["x"], "container": None, "kernel_release": "6.18.44", "is_root": True,
    "virtio_balloon": True, "balloon_driver": "virtio_balloon", "free_page_reporting": True,
    "free_page_reporting_reason": "negotiated", "page_reporting_order": 9, "page_reporting_params": {"x": 1},
    "host_views": [{"name": "reported_kib", "column": "host_reported_kib", "source": "/sys/x"}],
    "host_view_notes": ["wsl_vmmem: not WSL 2"],
    "knobs": {"drop_caches": {"writable": True, "path": "/proc/sys/vm/drop_caches", "reason": "writable as root"},
              "memory.reclaim": {"writable": False, "path": None, "reason": "no cgroup v2"}},
    "cgroup_limit_writable": True, "shared_reason": None, "consent_given": False,
    "memory": {"mem_total_bytes": 24 * 1024 ** 3, "mem_available_bytes": 20 * 1024 ** 3, "cgroup_limit_bytes": None,
               "memory_budget_bytes": 16 * 1024 ** 3},
    "live_support": {"calloc-reclaim": {"live": True, "reason": "up to 20 GiB", "needs_consent": False},
                     "page-cache": {"live": True, "reason": "drop_caches writable", "needs_consent": True},
                     "compaction": {"live": False, "reason": "not root", "needs_consent": True}},
    "problems": [], "something_new": {"a": True},
}


def test_guest_rows_put_the_probe_in_plain_words():
    class Info:
        def to_dict(self):
            return GUEST

    rows = dict(lab.guest_rows(Info()))
    assert rows["What this is"].startswith("vm (CPU flag")
    assert rows["Hypervisor"] == "Firecracker (KVM)"
    assert rows["Running as root"] == "yes"
    assert rows["Container"] == "no"
    assert "order 9 (blocks of 2.00 MiB and larger)" in rows["Free page reporting"]
    assert "reported_kib (/sys/x)" in rows["The host's side, seen from here"]
    assert rows["Memory"].startswith("24.00 GiB in total, 20.00 GiB available")
    assert "drop_caches: writable" in rows["System-wide knobs"] and "memory.reclaim: no (no cgroup v2)" in rows["System-wide knobs"]
    assert rows["something new"] == "a: yes"  # unknown keys are shown, not dropped
    assert "live support" not in rows and "schema version" not in rows


def test_guest_rows_name_memfree_outside_the_buddy_lists():
    """Fresh-guest read: lab 00's report gave MemTotal and MemAvailable while ~16 GiB of MemFree sat outside
    the buddy lists; it now gives that figure where it is 1 GiB or more, and nothing where it is not."""
    memory = {**GUEST["memory"], "mem_free_bytes": 22 * 1024 ** 3, "buddy_free_bytes": 6 * 1024 ** 3}
    text = dict(lab.guest_rows({**GUEST, "memory": memory}))["Memory"]
    assert "Of MemFree's 22.00 GiB" in text and "held 6.00 GiB" in text and "**16.00 GiB** sat in neither" in text
    for buddy in (21.5 * 1024 ** 3, None):
        memory = {**GUEST["memory"], "mem_free_bytes": 22 * 1024 ** 3, "buddy_free_bytes": buddy}
        assert "MemFree" not in dict(lab.guest_rows({**GUEST, "memory": memory}))["Memory"]


def test_probe_reads_the_buddy_and_per_cpu_free_memory(tmp_path):
    from reclaimlab.probe import guest, sources
    (tmp_path / "buddyinfo").write_text("Node 0, zone   Normal   2   1   0   0   0   0   0   0   0   0   1\n")
    (tmp_path / "zoneinfo").write_text("Node 0, zone   Normal\n  pagesets\n    cpu: 0\n              count: 3\n")
    got = guest._buddy_free_bytes(sources.Roots(proc=tmp_path, sys=tmp_path))
    page = sources.page_bytes()
    assert got == (2 + 2 + 1024) * page + 3 * page


def test_live_rows():
    assert lab.live_rows(GUEST) == [("calloc-reclaim", "yes", "up to 20 GiB"),
                                    ("page-cache", "yes, with consent", "drop_caches writable"),
                                    ("compaction", "no", "not root")]


def test_show_guest_without_a_probe(monkeypatch):
    shown = []
    monkeypatch.setattr(output, "display_html", shown.append)
    lab.show_guest(lab.LabContext(mode="auto", allow_system_changes=False, guest_note="probe missing"))
    assert "probe missing" in shown[0]


def _timeline() -> Recording:
    samples = pd.DataFrame({"t_s": [0.0, 1.0, 2.0, 2.1, 2.2, 3.0, 4.5, 4.6, 6.0],
                            "host_reported_kib": [10, 10, 10, 20, 30, 30, 50, 60, 60]})
    events = pd.DataFrame({"t_s": [0.5, 1.5, 5.0], "kind": ["calloc", "drop_caches", "drop_caches"],
                           "detail": ["", "1", "3"]})
    return Recording(samples=samples, events=events, meta={"experiment": "x"})


def test_when_finds_events_by_kind_and_detail():
    rec = _timeline()
    assert lab.when(rec, "calloc") == 0.5
    assert lab.when(rec, "drop_caches", "3") == 5.0
    assert lab.when(rec, "drop_caches", nth=1) == 5.0
    with pytest.raises(KeyError) as err:
        lab.when(rec, "drop_caches", "2")
    assert "detail '2'" in str(err.value) and "drop_caches(1)" in str(err.value)


def test_next_event():
    rec = _timeline()
    assert lab.next_event(rec, 0.5) == 1.5
    assert lab.next_event(rec, 5.0) == 6.0  # none follows: the last sample


def test_bursts_group_close_rises():
    b = lab.bursts(_timeline(), "host_reported_kib", 1.0)
    assert b.to_dict("list") == {"start_s": [2.1, 4.5], "end_s": [2.2, 4.6], "rise": [20.0, 30.0]}
    assert lab.bursts(_timeline(), "host_reported_kib", 5.0).empty


def test_has():
    rec = _timeline()
    rec.samples["empty"] = float("nan")
    assert lab.has(rec, "host_reported_kib") and not lab.has(rec, "empty") and not lab.has(rec, "absent")


def test_reclaimlab_mode_pins_every_labs_mode_and_says_so(quiet_setup, monkeypatch):
    monkeypatch.delenv("RECLAIMLAB_MODE", raising=False)
    own = quiet_setup(mode="live")
    assert own.mode == "live" and own.mode_source == "the lab's mode parameter"
    assert "set by" not in lab.status_html(own)
    monkeypatch.setenv("RECLAIMLAB_MODE", "recorded")
    pinned = quiet_setup(mode="live")
    assert pinned.mode == "recorded"
    assert pinned.mode_source == "RECLAIMLAB_MODE=recorded in the environment (it overrides the lab's mode='live')"
    assert "set by RECLAIMLAB_MODE=recorded in the environment (it overrides the lab&#x27;s mode=&#x27;live&#x27;)" \
        in lab.status_html(pinned)
    monkeypatch.setenv("RECLAIMLAB_MODE", "sometimes")
    with pytest.raises(lab.LabParameterError, match=r"RECLAIMLAB_MODE='sometimes' in the environment is not a mode"):
        quiet_setup(mode="auto")


# --------------------------------------------------------------------------- replaying a chosen recording

def _shipped(experiment: str, kind: str = "local") -> Path:
    return next(p for p in sorted((recordings_dir() / experiment).iterdir()) if kind in p.name)


def test_recordings_parameter_replays_the_chosen_folder(tmp_path):
    import shutil
    from reclaimlab.experiments import harness as experiments
    mine = tmp_path / "my-laptop-run"
    shutil.copytree(_shipped("page-cache"), mine)
    ctx = lab.setup(show=False, mode="auto", experiments=["page-cache"], recordings={"page-cache": str(mine)})
    assert ctx.plan["page-cache"][0] == "replayed"
    rec = ctx.run("page-cache", show_banner=False)
    assert rec.path == mine
    assert rec.why_shown == "replaying a recording you chose (my-laptop-run)"
    html = lab.banner_html(rec)
    assert "REPLAYED" in html and "my-laptop-run" in html and rec.meta["kernel_release"] in html
    # a lab that calls experiments.run directly passes the lab's recordings on, explicitly
    assert experiments.run("page-cache", quiet=True, recordings=ctx.recordings).path == mine
    assert experiments.run("page-cache", mode="recorded", quiet=True).path != mine  # no hidden table


def test_recordings_parameter_refuses_a_wrong_experiment_or_folder(tmp_path):
    with pytest.raises(lab.LabParameterError, match="recordings\\['page-cache'\\].*not of 'page-cache'"):
        lab.setup(show=False, recordings={"page-cache": str(_shipped("compaction"))})
    with pytest.raises(lab.LabParameterError, match="no such recording folder"):
        lab.setup(show=False, recordings={"page-cache": str(tmp_path / "nothing")})
    with pytest.raises(lab.LabParameterError, match="'pagecache' is not an experiment"):
        lab.setup(show=False, recordings={"pagecache": str(tmp_path)})
    with pytest.raises(lab.LabParameterError, match="use a dict"):
        lab.setup(show=False, recordings="somewhere")


def test_replay_keys_pick_the_most_specific_run():
    from reclaimlab.experiments import harness as experiments
    table = {"auto-reclaim": "a", "auto-reclaim:policy=dropCache": "b", "vm:refault:reporting=off": "c"}
    assert experiments.replay_for("auto-reclaim", "local", {"policy": "gradual"}, table) == "a"
    assert experiments.replay_for("auto-reclaim", "local", {"policy": "dropCache"}, table) == "b"
    assert experiments.replay_for("refault", "vm", {"reporting": False}, table) == "c"
    assert experiments.replay_for("refault", "vm", {"reporting": True}, table) is None
    assert experiments.replay_for("refault", "local", {}, table) is None


def test_lab_rows_say_what_each_lab_runs_here(tmp_path):
    import shutil
    mine = tmp_path / "cp"
    shutil.copytree(_shipped("compaction"), mine)
    ctx = lab.setup(show=False, mode="recorded", experiments=["calloc-reclaim", "refault", "page-cache"],
                    recordings={"compaction": str(mine)})
    rows = {name: (what, why) for name, what, why in lab.lab_rows(ctx)}
    assert set(rows) == set(lab.LAB_EXPERIMENTS)
    assert rows["01 · calloc and reclaim"][0] == "calloc-reclaim: RECORDED; refault: RECORDED"
    assert rows["03 · compaction"][0] == "compaction: REPLAYED" and str(mine) in rows["03 · compaction"][1]
    assert rows["05 · be the host"] == ("the kit's VM: RECORDED", "you chose mode='recorded'")


def test_a_run_the_lab_shows_recorded_by_design_says_so_and_never_runs_live(capsys):
    from reclaimlab.notebook.context import RECORDED_BY_LAB
    live = lab.LabContext(mode="auto", allow_system_changes=True, plan={"auto-reclaim": ("live", "it can")})
    rec = live.run("auto-reclaim", show_banner=False, recorded_because="only one version runs live",
                   policy="gradual", variant="released")
    assert rec.is_recorded and rec.why_shown == RECORDED_BY_LAB + "only one version runs live"
    assert "running live" not in capsys.readouterr().out
    # where the plan shows the recording anyway, its own reason stands
    shown = lab.LabContext(mode="auto", allow_system_changes=False, plan={"auto-reclaim": ("recorded", "shared")})
    rec = shown.run("auto-reclaim", show_banner=False, recorded_because="x", policy="gradual", variant="released")
    assert rec.is_recorded and not rec.why_shown.startswith(RECORDED_BY_LAB)
