"""Locks that cannot be turned against root, and consent and sharing that fail closed.

The lock lives in a folder every user may write (/run/lock or /tmp), so another user can plant
files under its names there. These tests plant them, in a private sticky world-writable folder
passed to the lock as a parameter, and check that root's run never writes through them.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from reclaimlab.cli import labs as labs_cli
from reclaimlab.cli.app import main
from reclaimlab.control import lock as guestlock
from reclaimlab.probe import consent

from conftest import tree_roots

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT / "lib"
NOBODY = 65534  # another, unprivileged user
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="planting another user's files needs root")
MACHINE = guestlock.scope(env={}).key  # the lock's name part on this guest when it is not shared
VICTIM_BYTES = b"root's precious file\n"


@pytest.fixture
def sticky(tmp_path) -> Path:
    """A folder like /run/lock: mode 1777, owned by root."""
    where = tmp_path / "lock"
    where.mkdir()
    where.chmod(0o1777)
    return where


@pytest.fixture
def victim(tmp_path) -> Path:
    path = tmp_path / "victim"
    path.write_bytes(VICTIM_BYTES)
    return path


def lock_path(where: Path) -> Path:
    return where / f"reclaimlab-{MACHINE}.lock"


def note_path(where: Path) -> Path:
    return where / f"reclaimlab-{MACHINE}.json"


def plant_link(link: Path, target: Path) -> None:
    """A symbolic link as another user would plant it (owned by them)."""
    link.symlink_to(target)
    os.lchown(link, NOBODY, NOBODY)


PROTECTED_SYMLINKS = Path("/proc/sys/fs/protected_symlinks")


@pytest.fixture
def links_followed():
    """The review's attack needs a kernel that follows another user's link in a sticky folder
    (fs.protected_symlinks=0); with 1 the kernel itself refuses, and the tests would pass whatever the
    lock does. Where it is 1 and root may change it, it is 0 for the test and restored after; else skipped."""
    try:
        before = PROTECTED_SYMLINKS.read_text().strip()
    except OSError:
        before = "0"  # no such protection on this kernel: links are followed
    if before != "0":
        try:
            PROTECTED_SYMLINKS.write_text("0")
        except OSError as exc:
            pytest.skip(f"fs.protected_symlinks={before} and it cannot be turned off here ({exc.strerror})")
    try:
        yield
    finally:
        if before != "0":
            PROTECTED_SYMLINKS.write_text(before)


def attack_is_live(link: Path) -> None:
    """The planted link, opened as any program would open it, reaches the victim: the attack is real."""
    with open(link, "rb") as f:
        assert f.read() == VICTIM_BYTES, "the kernel did not follow the planted link: this test would prove nothing"


def take(where: Path, **kw) -> dict:
    with guestlock.hold("calloc-reclaim", timeout_s=0, env={}, directory=where, say=lambda _: None, **kw) as me:
        return dict(me)


# ---------------------------------------------------------------- planted files (root's run)

@as_root
def test_note_planted_as_symlink_to_a_root_file_leaves_the_file_untouched(sticky, victim, links_followed):
    """hostile-inputs review, case 1: another user links the holder note's name to a root-owned file."""
    plant_link(note_path(sticky), victim)
    attack_is_live(note_path(sticky))
    with guestlock.hold("calloc-reclaim", timeout_s=0, env={}, directory=sticky, say=lambda _: None):
        assert not note_path(sticky).is_symlink()  # the link was replaced by our own note, not written through
        assert json.loads(note_path(sticky).read_text())["pid"] == os.getpid()
        assert victim.read_bytes() == VICTIM_BYTES
    assert victim.read_bytes() == VICTIM_BYTES  # ... and not truncated at the end either
    assert not note_path(sticky).exists()


@as_root
def test_lock_planted_as_symlink_to_a_root_file_is_refused_and_the_file_untouched(sticky, victim, links_followed):
    """hostile-inputs review, case 1: another user links the lock file's name to a root-owned file."""
    plant_link(lock_path(sticky), victim)
    attack_is_live(lock_path(sticky))
    with pytest.raises(guestlock.LockFileRefused) as info:
        take(sticky)
    message = str(info.value)
    assert str(lock_path(sticky)) in message and "symbolic link" in message and "remove it" in message
    assert victim.read_bytes() == VICTIM_BYTES and victim.stat().st_mode & 0o777 == 0o644


@as_root
def test_lock_planted_as_dangling_symlink_creates_nothing_where_it_points(sticky, tmp_path, links_followed):
    """hostile-inputs review, case 1: a link to a file that does not exist yet must not create it."""
    target = tmp_path / "would-be-created"
    plant_link(lock_path(sticky), target)
    with pytest.raises(guestlock.LockFileRefused, match="symbolic link"):
        take(sticky)
    assert not target.exists()


@as_root
def test_lock_planted_as_fifo_is_refused_without_hanging(sticky):
    """hostile-inputs review, case 1: another user's FIFO under the lock's name (opening it must not block)."""
    os.mkfifo(lock_path(sticky))
    os.chown(lock_path(sticky), NOBODY, NOBODY)
    with pytest.raises(guestlock.LockFileRefused) as info:
        take(sticky)
    assert "FIFO, not a regular file" in str(info.value) and str(lock_path(sticky)) in str(info.value)


@as_root
def test_lock_planted_as_folder_is_refused(sticky):
    """hostile-inputs review, case 1: a folder under the lock's name."""
    lock_path(sticky).mkdir()
    with pytest.raises(guestlock.LockFileRefused, match="is a folder, not a regular file"):
        take(sticky)


@as_root
def test_lock_planted_as_another_users_regular_file_is_refused(sticky):
    """hostile-inputs review, case 1: a regular file under the lock's name owned by another user (uid 65534)."""
    lock_path(sticky).write_bytes(b"")
    os.chown(lock_path(sticky), NOBODY, NOBODY)
    with pytest.raises(guestlock.LockFileRefused) as info:
        take(sticky)
    assert f"(uid {NOBODY}), not to root or to you" in str(info.value)


@as_root
def test_lock_planted_as_hard_link_to_a_root_file_is_refused_and_the_file_untouched(sticky, victim):
    """hostile-inputs review, case 1: a hard link to a root-owned file under the lock's name."""
    os.link(victim, lock_path(sticky))
    with pytest.raises(guestlock.LockFileRefused, match="2 hard links"):
        take(sticky)
    assert victim.read_bytes() == VICTIM_BYTES


@as_root
def test_note_planted_as_another_users_file_is_not_written_through(sticky):
    """hostile-inputs review, case 1: another user's regular file under the note's name stays as it was."""
    planted = b'{"pid": 1, "experiment": "planted"}\n'
    note_path(sticky).write_bytes(planted)
    os.chown(note_path(sticky), NOBODY, NOBODY)
    inode = note_path(sticky).stat().st_ino
    take(sticky)  # root may replace it (a rename), never write into that file
    assert not note_path(sticky).exists() or note_path(sticky).stat().st_ino != inode


@as_root
def test_lock_folder_writable_by_all_but_not_sticky_is_refused(tmp_path):
    """hostile-inputs review, case 1: a lock folder where anyone could swap our files (mode 0777)."""
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o777)
    with pytest.raises(guestlock.LockFileRefused, match="not sticky"):
        take(loose)
    assert list(loose.iterdir()) == []


# ---------------------------------------------------------------- the holder's note is untrusted text

HOSTILE_NOTE = {"experiment": "calloc\x1b[2J\x1b]0;pwned\x07", "command": "sleep\r\x1b[31mreclaimlab\x9b2J\u202e",
                "since_utc": "2026\x1b[H", "user": "\x1b[2Jroot"}


def _control_free(text: str) -> bool:
    return not any(ord(c) < 0x20 or 0x7f <= ord(c) < 0xa0 or c == "\u202e" for c in text)


def test_holder_note_with_terminal_escapes_is_shown_without_them(tmp_path):
    """hostile-inputs review, case 1: a holder note carrying ESC [2J, BEL, CR, C1 and bidi bytes prints none of them."""
    note = tmp_path / "note.json"
    note.write_text(json.dumps({**HOSTILE_NOTE, "pid": os.getpid()}))  # ours, naming a live process of ours
    holder = guestlock.read_holder(note)
    assert holder is not None
    shown = guestlock.describe_holder(holder)
    assert _control_free(shown), repr(shown)
    assert "[2J" in shown and "calloc" in shown  # shown, made harmless: not dropped


def test_holder_note_fields_are_bounded_in_length(tmp_path):
    """hostile-inputs review, case 1: a holder note with a 3,000-character command is shown cut short."""
    note = tmp_path / "note.json"
    note.write_text(json.dumps({"pid": os.getpid(), "experiment": "e" * 3000, "command": "c" * 3000}))
    shown = guestlock.describe_holder(guestlock.read_holder(note))
    assert len(shown) < 600


def test_holder_note_larger_than_4_kib_is_not_read(tmp_path):
    """hostile-inputs review, case 1: a holder note of 1 MiB is ignored, not read into memory."""
    note = tmp_path / "note.json"
    note.write_text(json.dumps({"pid": os.getpid(), "command": "x" * (1 << 20)}))
    assert guestlock.read_holder(note) is None


@as_root
def test_holder_note_written_by_another_user_about_roots_process_is_not_believed(tmp_path):
    """hostile-inputs review, case 1: uid 65534 writes a note claiming a process of root's holds the lock."""
    note = tmp_path / "note.json"
    note.write_text(json.dumps({"pid": os.getpid(), "user": "root", "experiment": "forged"}))
    os.chown(note, NOBODY, NOBODY)
    assert guestlock.read_holder(note) is None


@as_root
def test_waiting_message_shows_a_hostile_note_without_escapes(sticky):
    """hostile-inputs review, case 1: a waiting run prints a holder's note that carries escapes without them."""
    child = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom reclaimlab.control import lock\n"
                              "with lock.hold('calloc-reclaim', timeout_s=0, env={}, directory=sys.argv[1]):\n"
                              "    print('held', flush=True); time.sleep(60)", str(sticky)],
                             env={**os.environ, "PYTHONPATH": str(LIB)}, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        note_path(sticky).write_text(json.dumps({**HOSTILE_NOTE, "pid": child.pid}))  # root's: believed
        said: list[str] = []
        with pytest.raises(guestlock.GuestBusy) as info:
            with guestlock.hold("refault", timeout_s=0, env={}, directory=sticky, say=said.append):
                pytest.fail("the lock was held by the child")
    finally:
        child.kill()
        child.wait()
    assert said and f"pid {child.pid}" in str(info.value)
    for text in (*said, str(info.value)):
        assert _control_free(text), repr(text)


# ---------------------------------------------------------------- a second user, one lock per guest

@as_root
def test_second_unprivileged_user_shares_roots_lock_file_but_cannot_write_it(victim):
    """hostile-inputs review, case 1: an unprivileged user's run uses the lock root created, read-only."""
    where = Path(tempfile.mkdtemp(dir="/tmp", prefix="reclaimlab-test-"))
    try:
        where.chmod(0o1777)
        take(where)  # root's run leaves the lock file behind, 0644
        assert stat.S_IMODE(lock_path(where).stat().st_mode) == 0o644 and lock_path(where).stat().st_size == 0
        out = subprocess.run([sys.executable, "-c", "import sys\nfrom reclaimlab.control import lock\n"
                              "with lock.hold('calloc-reclaim', timeout_s=0, env={}, directory=sys.argv[1]) as me:\n"
                              "    print('held by', me['user'])", str(where)],
                             env={"PYTHONPATH": str(LIB), "PATH": "/usr/bin:/bin"}, user=NOBODY, group=NOBODY,
                             cwd="/", capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("held by ")
        assert lock_path(where).stat().st_uid == 0 and lock_path(where).stat().st_size == 0
    finally:
        subprocess.run(["rm", "-rf", str(where)], check=True)


def test_lock_folder_ignores_the_environment(monkeypatch, tmp_path):
    """hostile-inputs review, case 5: RECLAIMLAB_LOCK_DIR (or TMPDIR) can no longer give a guest a second lock."""
    before = guestlock.machine_lock_dir()
    monkeypatch.setenv("RECLAIMLAB_LOCK_DIR", str(tmp_path))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    assert guestlock.machine_lock_dir() == before
    assert str(before) in guestlock.CANDIDATE_DIRS


def test_hold_keeps_its_lock_where_the_machine_says_whatever_env_it_is_given(monkeypatch, tmp_path):
    """hostile-inputs review, case 5: hold() given RECLAIMLAB_LOCK_DIR in its env still takes the machine's lock."""
    machine, elsewhere = tmp_path / "machine", tmp_path / "elsewhere"
    machine.mkdir()
    elsewhere.mkdir()
    monkeypatch.setattr(guestlock, "machine_lock_dir", lambda: machine)
    with guestlock.hold("calloc-reclaim", timeout_s=0, env={"RECLAIMLAB_LOCK_DIR": str(elsewhere)}):
        assert lock_path(machine).exists()
    assert list(elsewhere.iterdir()) == []


def test_no_code_or_docs_still_read_reclaimlab_lock_dir():
    """hostile-inputs review, case 5: nothing in lib/, ci/, labs/, docs or README still offers the second lock."""
    found = subprocess.run(["git", "grep", "-l", "RECLAIMLAB_LOCK_DIR", "--", "lib", "ci", "labs", "docs", "README.md"],
                           cwd=ROOT, capture_output=True, text=True)
    assert found.stdout == "" and found.returncode == 1, found.stdout + found.stderr


# ---------------------------------------------------------------- sharing fails closed

NOT_A_CONTAINER = tree_roots("firecracker-vm")


@pytest.mark.parametrize("value", ["y", "enabled", "2", "shared", "Nein"])
def test_unrecognised_shared_value_counts_as_shared_and_says_so(value):
    """hostile-inputs review, case 2: RECLAIMLAB_SHARED=y/enabled/2/shared used to mean not shared."""
    reason = consent.shared_reason(NOT_A_CONTAINER, {consent.SHARED_ENV: value})
    assert "not a value reclaimlab recognises" in reason and "taken as shared" in reason and repr(value) in reason


@pytest.mark.parametrize("value", ["1", "TRUE", " yes ", "on"])
def test_explicit_yes_means_shared(value):
    """hostile-inputs review, case 2: an explicit yes still means shared, with a plain reason."""
    assert consent.shared_reason(NOT_A_CONTAINER, {consent.SHARED_ENV: value}) == \
        f"{consent.SHARED_ENV}={value.strip()} marks this machine as shared"


@pytest.mark.parametrize("value", ["0", "false", "NO", " off ", "", "   "])
def test_explicit_no_means_not_shared(value):
    """hostile-inputs review, case 2: only an explicit no (0, false, no, off, empty) means not shared."""
    assert consent.shared_reason(NOT_A_CONTAINER, {consent.SHARED_ENV: value}) is None
    assert consent.shared_reason(NOT_A_CONTAINER, {}) is None


def test_unrecognised_shared_value_refuses_a_knob_even_with_consent():
    """hostile-inputs review, case 2: RECLAIMLAB_SHARED=enabled with consent still refuses drop_caches."""
    env = {consent.SHARED_ENV: "enabled", consent.ALLOW_ENV: "1"}
    with pytest.raises(consent.SystemChangeRefused, match="taken as shared"):
        consent.require("drop_caches", NOT_A_CONTAINER, True, env)


# ---------------------------------------------------------------- consent is an explicit yes only

@pytest.mark.parametrize("value", ["y", "enabled", "2", "ja", "truee"])
def test_unrecognised_consent_value_is_not_consent_and_the_refusal_says_so(value):
    """hostile-inputs review, case 4: RECLAIMLAB_ALLOW_SYSTEM_CHANGES=y (not 1/true/yes/on) is no consent."""
    env = {consent.ALLOW_ENV: value}
    assert consent.changes_allowed(None, env) is False
    message = consent.not_allowed(env)
    assert repr(value) in message and "is not a yes" in message and "--allow-system-changes" in message


@pytest.mark.parametrize("value", ["1", "true", "YES", " on "])
def test_explicit_yes_is_consent(value):
    """hostile-inputs review, case 4: only 1, true, yes or on (any case) in the environment is consent."""
    assert consent.changes_allowed(None, {consent.ALLOW_ENV: value}) is True


@pytest.mark.parametrize("allow", [1, "yes", "True"])
def test_consent_parameter_must_be_true_itself(allow):
    """hostile-inputs review, case 4: allow_system_changes=1 or "yes" is not the explicit True that consents."""
    assert consent.changes_allowed(allow, {consent.ALLOW_ENV: "1"}) is False


# ---------------------------------------------------------------- `reclaimlab labs --mode live`

def _labs_parameters(monkeypatch, tmp_path, *flags: str) -> list[dict]:
    """The papermill parameters `reclaimlab labs` would give each lab (papermill itself replaced)."""
    seen: list[dict] = []

    def fake_execute(notebook, out_dir, mode, extra=None, *, allow_system_changes=False):
        seen.append(labs_cli.lab_parameters(mode, allow_system_changes, extra))
        return 0.0, 0

    monkeypatch.setattr(labs_cli, "execute_lab", fake_execute)
    result = CliRunner().invoke(main, ["labs", "--mode", "live", "--only", "01", "--out", str(tmp_path), *flags])
    assert result.exit_code == 0, result.output
    return seen


def test_labs_live_without_the_flag_gives_no_consent(monkeypatch, tmp_path):
    """hostile-inputs review, case 4: `reclaimlab labs --mode live` alone used to pass allow_system_changes=True."""
    monkeypatch.delenv(consent.ALLOW_ENV, raising=False)
    assert _labs_parameters(monkeypatch, tmp_path) == [{"mode": "live", "allow_system_changes": False}]


def test_labs_live_without_consent_says_first_how_to_give_it():
    """hostile-inputs review, case 4: live labs without consent say up front that knob labs will stop them."""
    notice = labs_cli.consent_notice("live", False, {})
    assert "--allow-system-changes" in notice and "--mode auto" in notice
    assert labs_cli.consent_notice("live", True, {}) is None
    assert labs_cli.consent_notice("live", False, {consent.ALLOW_ENV: "1"}) is None
    assert labs_cli.consent_notice("auto", False, {}) is None


def test_labs_live_with_the_flag_gives_consent(monkeypatch, tmp_path):
    """hostile-inputs review, case 4: `--allow-system-changes` is the labs command's one way to consent."""
    assert _labs_parameters(monkeypatch, tmp_path, "--allow-system-changes") == [
        {"mode": "live", "allow_system_changes": True}]


def test_ci_check_labs_consents_explicitly(monkeypatch, executed_lab):
    """hostile-inputs review, case 4: the labs check (tests/checks), which expects knobs to run live, gives
    consent in live mode and only there (papermill replaced; a fresh cache, not the session's)."""
    calls = []
    monkeypatch.setattr(labs_cli, "execute_lab", lambda nb, out, mode, extra=None, *, allow_system_changes=False:
                        calls.append((mode, allow_system_changes)))
    fresh = type(executed_lab)()
    fresh("02", "live"), fresh("02", "recorded")
    assert calls == [("live", True), ("recorded", False)]


# ---------------------------------------------------------------- RECLAIMLAB_SHARED gives no second lock

GUEST, OTHER_CGROUP = tree_roots("firecracker-vm"), tree_roots("bare-metal")
SHARED = {consent.SHARED_ENV: "1"}


def _busy(sticky: Path, env: dict, roots, said: list[str]) -> str:
    with pytest.raises(guestlock.GuestBusy) as info:
        with guestlock.hold("refault", timeout_s=0, env=env, roots=roots, directory=sticky, say=said.append):
            pytest.fail("took a lock that a running live experiment holds")
    return str(info.value)


def test_a_shared_run_waits_for_a_machine_wide_run(sticky):
    """hostile-inputs review, case 5 (and issue 21: no environment variable makes a second lock): a run with
    RECLAIMLAB_SHARED=1 used to take a per-cgroup lock and overlap a machine-wide live run."""
    assert guestlock.scope(GUEST, SHARED).key != guestlock.scope(GUEST, {}).key  # two scopes: the old second lock
    said: list[str] = []
    with guestlock.hold("calloc-reclaim", timeout_s=0, env={}, roots=GUEST, directory=sticky, say=said.append):
        message = _busy(sticky, SHARED, GUEST, said)
    assert "this machine as a whole" in message and "calloc-reclaim" in message and f"pid {os.getpid()}" in message


def test_a_machine_wide_run_waits_for_a_shared_run_and_says_whose(sticky):
    """hostile-inputs review, case 5: the other way round, a machine-wide run waits for a participant's run."""
    said: list[str] = []
    with guestlock.hold("calloc-reclaim", timeout_s=0, env=SHARED, roots=GUEST, directory=sticky, say=said.append):
        message = _busy(sticky, {}, GUEST, said)
    assert "this machine was still busy" in message and "RECLAIMLAB_SHARED set" in message
    assert said and said[0].startswith("⏳ waiting")


def test_shared_runs_in_two_cgroups_still_run_side_by_side(sticky):
    """Participants of a shared machine never wait for each other (one lock per memory cgroup), as before."""
    with guestlock.hold("calloc-reclaim", timeout_s=0, env=SHARED, roots=GUEST, directory=sticky, say=lambda _: None):
        with guestlock.hold("refault", timeout_s=0, env=SHARED, roots=OTHER_CGROUP, directory=sticky,
                            say=lambda _: None) as second:
            assert second["experiment"] == "refault"
        said: list[str] = []
        _busy(sticky, SHARED, GUEST, said)  # ... but two in one cgroup do
        assert said and "memory cgroup" in said[0]


SHARED_CHILD = """import sys
from reclaimlab.control import lock
try:
    with lock.hold('refault', timeout_s=0, env={'RECLAIMLAB_SHARED': '1'}, directory=sys.argv[1], say=lambda _: None):
        print('held')
except lock.GuestBusy as exc:
    print('busy:', exc)
"""


def _shared_run_as_nobody(where: Path) -> str:
    out = subprocess.run([sys.executable, "-c", SHARED_CHILD, str(where)], env={"PYTHONPATH": str(LIB), "PATH": "/usr/bin:/bin"},
                         user=NOBODY, group=NOBODY, cwd="/", capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


@as_root
def test_a_participants_shared_run_leaves_no_machine_lock_for_root_to_refuse():
    """hostile-inputs review, case 5: a participant (uid 65534, RECLAIMLAB_SHARED=1) who runs first creates no
    machine lock file of theirs, so root's machine-wide run afterwards is not refused."""
    where = Path(tempfile.mkdtemp(dir="/tmp", prefix="reclaimlab-test-"))
    try:
        where.chmod(0o1777)
        assert _shared_run_as_nobody(where).strip() == "held"
        assert not lock_path(where).exists()
        assert take(where)["pid"] == os.getpid()
    finally:
        subprocess.run(["rm", "-rf", str(where)], check=True)


@as_root
def test_a_participants_shared_run_waits_for_roots_machine_wide_run():
    """hostile-inputs review, case 5: with root's machine-wide run going, RECLAIMLAB_SHARED=1 gets another user
    no lock of their own: their run is told the machine is busy."""
    where = Path(tempfile.mkdtemp(dir="/tmp", prefix="reclaimlab-test-"))
    try:
        where.chmod(0o1777)
        with guestlock.hold("calloc-reclaim", timeout_s=0, env={}, directory=where, say=lambda _: None):
            said = _shared_run_as_nobody(where)
        assert said.startswith("busy:") and "this machine as a whole" in said and "calloc-reclaim" in said
        assert _shared_run_as_nobody(where).strip() == "held"  # and runs once root's run has ended
    finally:
        subprocess.run(["rm", "-rf", str(where)], check=True)
