"""The hostile-inputs review of 2026-12-06, case by case, where test_hostile_{locks,recordings,saves,boundaries}
did not already hold a case: the generated corpus (tests/corpus/hostile.py), --out for every command that
saves, replay keys, /proc files that are not text, hidden folders, and the README's consent rules.
"""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import tree_roots
from test_recording import make_recording
from test_hostile_recordings import copy_of
from test_hostile_saves import _mount_tmpfs
from reclaimlab.cli import record as record_mod, watch as watch_mod
from reclaimlab.cli.app import main
from reclaimlab.notebook import lab
from reclaimlab.paths import recordings_dir
from reclaimlab.probe import consent
from reclaimlab.recording import datasets, recording, schema
from reclaimlab.recording.recording import RecordingError
from reclaimlab.sampling import sampler
from reclaimlab.vm import __main__ as vm_main

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("hostile_corpus", ROOT / "tests" / "corpus" / "hostile.py")
corpus = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = corpus  # dataclasses look their module up there
_spec.loader.exec_module(corpus)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch) -> Path:
    """Where a run that cannot go to --out is kept: inside tmp_path, never the real cache."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "reclaimlab" / "unsaved"


@pytest.fixture
def no_replays():
    yield  # nothing to undo: a lab's recordings travel in its context (there is no module-level table)


# --- the generated corpus: one test per hostile folder ------------------------------------------------

@pytest.mark.parametrize("case", corpus.cases(), ids=lambda c: c.name)
def test_hostile_recording_from_the_corpus_is_refused_at_load(case, tmp_path):
    """hostile-inputs review, cases 9 and 13: each generated folder is one RecordingError naming the file and
    the value, never a KeyError, OverflowError or MemoryError in a lab."""
    folder = corpus.build(case, tmp_path / "rec")
    with pytest.raises(RecordingError, match=case.error) as info:
        recording.load(folder)
    assert str(folder) in str(info.value) and len(str(info.value)) < 1000


def test_the_schemas_slowest_sample_rate_is_the_samplers():
    """hostile-inputs review, case 9: load() accepts the rates the sampler takes, and no slower one."""
    assert schema.MIN_SAMPLE_HZ == sampler.MIN_HZ


# --- case 7: --out checked before the run, for every command that saves ------------------------------

def _out(case: str, tmp_path: Path, monkeypatch) -> tuple[str, str]:
    """(--out as typed, a phrase the refusal must hold) for one hostile --out."""
    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    if case == "empty":
        return "", "(an empty name) means the current folder"
    if case == "dot":
        return ".", "names the current folder"
    if case == "parent":
        return "..", "names the current folder or one above it"
    if case == "cwd-by-path":
        return str(here), "names the current folder"
    if case == "symlink-to-folder":
        (tmp_path / "real").mkdir()
        (tmp_path / "link").symlink_to(tmp_path / "real")
        return str(tmp_path / "link"), "is a symbolic link"
    if case == "dangling-symlink":
        (tmp_path / "link").symlink_to(tmp_path / "nowhere")
        return str(tmp_path / "link"), "is a symbolic link"
    if case == "mount-point":
        return str(_mount_tmpfs(tmp_path / "mnt", "64k")), "is a mount point"
    if case == "read-only-fs":
        mount = _mount_tmpfs(tmp_path / "mnt", "64k")
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        return str(mount / "rec"), "(Read-only file system)"
    if case == "non-empty":
        (tmp_path / "mine").mkdir()
        (tmp_path / "mine" / "notes.txt").write_text("keep me")
        return str(tmp_path / "mine"), "already exists and is not an empty folder"
    raise AssertionError(case)


OUT_CASES = ["empty", "dot", "parent", "cwd-by-path", "symlink-to-folder", "dangling-symlink", "mount-point",
             "read-only-fs", "non-empty"]


@pytest.mark.parametrize("command", ["record", "watch", "vm"])
@pytest.mark.parametrize("case", OUT_CASES)
def test_every_hostile_out_is_refused_before_any_run(command, case, tmp_path, monkeypatch, capsys):
    """hostile-inputs review, case 7: `record`, `watch` and `python -m reclaimlab.vm run` refuse each --out the
    final rename cannot use ('' , '.', '..', a symlink, a mount point, a read-only file system, a folder with
    files) before the run starts, naming it; nothing runs, nothing is written."""
    started: list[str] = []
    monkeypatch.setattr(record_mod, "run", lambda *a, **k: started.append("record"))
    monkeypatch.setattr(watch_mod.Sampler, "start", lambda self: started.append("watch"))
    monkeypatch.setattr(vm_main, "run_vm_experiment", lambda *a, **k: started.append("vm"))
    try:
        out, why = _out(case, tmp_path, monkeypatch)
        if command == "vm":
            status, text = vm_main.main(["run", "calloc-reclaim", "--out", out]), capsys.readouterr().err
        else:
            roots = tree_roots("firecracker-vm")
            args = (["record", "calloc-reclaim", "--out", out] if command == "record" else
                    ["watch", "--duration", "1", "--out", out, "--proc-root", str(roots.proc), "--sys-root", str(roots.sys)])
            result = CliRunner().invoke(main, args)
            status, text = result.exit_code, result.output
    finally:
        subprocess.run(["umount", "-l", str(tmp_path / "mnt")], capture_output=True)
    assert status == 2 and started == [], text
    assert why in text and "Traceback" not in text
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".partial")]


def test_vm_module_keeps_a_run_it_cannot_save_in_the_cache(tmp_path, monkeypatch, capsys, private_cache):
    """hostile-inputs review, case 7: `python -m reclaimlab.vm run --out` on a full disk keeps the finished run."""
    disk = _mount_tmpfs(tmp_path / "small-disk", "64k")

    @contextmanager
    def lock(*_a, **_k):
        yield {}
    monkeypatch.setattr(vm_main.guestlock, "hold", lock)
    monkeypatch.setattr(vm_main, "run_vm_experiment", lambda *a, **k: make_recording(n=5000, results={}))
    try:
        status = vm_main.main(["run", "calloc-reclaim", "--out", str(disk / "rec")])
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
    err = capsys.readouterr().err
    kept = next(private_cache.iterdir())
    assert status == 1
    assert "No space left on device" in err and f"It is kept whole in {kept} instead" in err
    assert len(recording.load(kept).samples) == 5000


@pytest.mark.parametrize("duration", ["1e999", "inf", "nan"])
def test_watch_duration_that_is_not_finite_says_so(duration):
    """Hostile input beyond the review (beside case 13's --hz): --duration 1e999 was "must be above 0"."""
    with pytest.raises(watch_mod.WatchError, match=r"must be a finite number of seconds above 0.*until Ctrl-C"):
        watch_mod.parse_options("10", duration, None)


# --- case 8: a replayed recording is what its whole key asks for --------------------------------------

def test_a_variant_selector_refuses_a_run_of_another_variant(tmp_path, no_replays):
    """hostile-inputs review, case 8: {"auto-reclaim:variant=released": a 'newer' run} is refused, naming both."""
    newer = copy_of(tmp_path, "auto-reclaim", "dropCache-newer")
    with pytest.raises(lab.LabParameterError, match=r"recorded with variant='newer', but the key asks for "
                                                    r"variant=released"):
        lab.setup(show=False, recordings={"auto-reclaim:variant=released": str(newer)})


def test_a_plain_key_refuses_a_run_of_the_kits_vm(tmp_path, no_replays):
    """hostile-inputs review, case 8 (the other way round): {"calloc-reclaim": a run in the kit's VM} is refused."""
    in_vm = copy_of(tmp_path, "calloc-reclaim", "vm-reporting-on")
    with pytest.raises(lab.LabParameterError, match=r"recorded in the kit's VM .*give it as 'vm:calloc-reclaim'"):
        lab.setup(show=False, recordings={"calloc-reclaim": str(in_vm)})


def test_a_vm_selector_refuses_a_run_with_reporting_the_other_way(tmp_path, no_replays):
    """hostile-inputs review, case 8: {"vm:calloc-reclaim:reporting=off": a run with reporting on} is refused."""
    on = copy_of(tmp_path, "calloc-reclaim", "vm-reporting-on")
    with pytest.raises(lab.LabParameterError, match=r"recorded with reporting=True, but the key asks for reporting=off"):
        lab.setup(show=False, recordings={"vm:calloc-reclaim:reporting=off": str(on)})


# --- case 13: a /proc file that is not text ----------------------------------------------------------

def _spoil_first_name(tree_copy) -> tuple[object, Path]:
    roots = tree_copy("firecracker-vm")
    meminfo = roots.proc / "meminfo"
    data = meminfo.read_bytes()
    meminfo.write_bytes(data[:3] + b"\xff\xfe" + data[3:])  # "Mem\xff\xfeTotal:": the field's name is spoiled
    return roots, meminfo


def test_doctor_on_a_meminfo_whose_field_name_is_not_text_names_the_file(tree_copy):
    """hostile-inputs review, case 13: bytes that are not text in a field's name made doctor show MemTotal 0 B
    without a word; now it names the file and the line."""
    roots, meminfo = _spoil_first_name(tree_copy)
    result = CliRunner().invoke(main, ["doctor", "--proc-root", str(roots.proc), "--sys-root", str(roots.sys)])
    assert result.exit_code == 2, result.output
    assert f"{meminfo}: line 1" in result.output and "bytes that are not text" in result.output
    assert "0 B" not in result.output


def test_watch_on_a_meminfo_whose_field_name_is_not_text_names_the_file(tree_copy):
    """hostile-inputs review, case 13: watch refused the same file only where a value was spoiled, not a name."""
    roots, meminfo = _spoil_first_name(tree_copy)
    result = CliRunner().invoke(main, ["watch", "--duration", "0.3", "--proc-root", str(roots.proc),
                                       "--sys-root", str(roots.sys)])
    assert result.exit_code == 2, result.output
    assert f"{meminfo}: line 1" in result.output and "bytes that are not text" in result.output


# --- case 6: hidden folders; case 11: a deeply nested index ------------------------------------------

def test_a_hidden_folder_that_is_whole_is_still_never_indexed_or_found(tmp_path):
    """hostile-inputs review, case 6: not only `.partial`: any hidden folder in data/ is never indexed or found,
    even one with a matching manifest whose name sorts first."""
    root = Path(shutil.copytree(recordings_dir(), tmp_path / "recordings"))
    source = next((root / "calloc-reclaim").glob("*local"))
    shutil.copytree(source, root / "calloc-reclaim" / ".0-hidden")
    datasets.rebuild_index(root)
    assert not any(".0-hidden" in e["path"] for e in datasets.read_index(root))
    assert datasets.find("calloc-reclaim", root=root).path == source


def test_index_json_nested_deeply_is_a_clear_error(tmp_path):
    """hostile-inputs review, case 11: data/recordings/index.json nested 100,000 deep (like meta and manifest)."""
    root = tmp_path / "recordings"
    root.mkdir()
    (root / datasets.INDEX_NAME).write_text('{"recordings": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(RecordingError, match=r"index\.json: not readable as JSON \(nested too deeply"):
        datasets.find("calloc-reclaim", root=root)


# --- cases 2 and 4: the README and the workshop guide state the rules as the code applies them --------

def _words(text: str) -> set[str]:
    return set(re.findall(r"`([^`]+)`", text))


def _consent_paragraphs(path: Path) -> tuple[str, str]:
    """(what the text says about RECLAIMLAB_SHARED, what it says about consent), each one sentence run."""
    text = " ".join(path.read_text().split())
    shared = re.search(r"`RECLAIMLAB_SHARED` is (?:unset or an explicit no|set to anything but an explicit no)"
                       r".*?(?:taken as shared|unrecognised and taken as shared)[^.;]*[.;]", text)
    given = re.search(r"[Cc]onsent(?:\*\*)?,? (?:is )?given in exactly .*?refusal names (?:it|the value)\.", text)
    assert shared and given, f"{path.name}: the paragraphs on sharing and consent were not found"
    return shared.group(0), given.group(0)


def _flagged_commands() -> set[str]:
    """The `reclaimlab` commands that take --allow-system-changes."""
    return {name for name, command in main.commands.items()
            if any("--allow-system-changes" in p.opts for p in command.params)}


@pytest.mark.parametrize("doc", ["README.md", "docs/workshop.md"])
def test_the_docs_state_the_sharing_rule_as_consent_py_applies_it(doc):
    """hostile-inputs review, case 2: every explicit no, every explicit yes, and what any other value means."""
    shared, _ = _consent_paragraphs(ROOT / doc)
    said = _words(shared)
    no = {w for w in consent._FALSE if w}
    assert no <= said and "empty" in shared, shared
    assert consent._TRUE <= said, shared
    assert "taken as shared" in shared
    # the code agrees: each explicit no is not shared, anything else is
    roots = tree_roots("firecracker-vm")
    assert all(consent.shared_reason(roots, {consent.SHARED_ENV: w}) is None for w in consent._FALSE)
    assert all(consent.shared_reason(roots, {consent.SHARED_ENV: w}) for w in consent._TRUE | {"y", "enabled", "2"})


@pytest.mark.parametrize("doc", ["README.md", "docs/workshop.md"])
def test_the_docs_list_every_way_consent_is_given_and_no_other(doc):
    """hostile-inputs review, case 4: the parameter, the commands that take --allow-system-changes (and no
    other), and the environment variable with exactly the values consent.py takes as a yes."""
    _, given = _consent_paragraphs(ROOT / doc)
    said = _words(given)
    assert "allow_system_changes=True" in said or "allow_system_changes = True" in said, given
    named = set(re.findall(r"`reclaimlab (\w+)`", given))
    assert named - {"labs"} <= _flagged_commands() and _flagged_commands() <= named, (named, _flagged_commands())
    assert "`reclaimlab labs --mode live` alone is no consent" in given or \
        "`reclaimlab labs --mode live` without it gives no consent" in given
    assert consent.ALLOW_ENV in said and consent._TRUE <= said, given
    assert not ({"y", "enabled", "2"} & said)
    if _knob_functions_taking_allow():  # Python's own way in: named too
        assert "reclaimlab.control.knobs" in said and "allow=True" in said, given


def _knob_functions_taking_allow() -> list[str]:
    import inspect
    from reclaimlab.control import knobs
    return [name for name, f in vars(knobs).items() if inspect.isfunction(f) and not name.startswith("_")
            and f.__module__ == knobs.__name__ and "allow" in inspect.signature(f).parameters]
