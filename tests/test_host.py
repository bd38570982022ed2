"""Host views: reported_kib on a kept descriptor, and WSL's vmmem through fake interop executables."""
from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from reclaimlab.probe import guest, hostviews as host
from reclaimlab.probe.sources import Roots

from conftest import tree_roots

LIVE_REPORTED = Path("/sys/module/page_reporting/parameters/reported_kib")


def write_exe(directory: Path, name: str, body: str) -> Path:
    """A fake Windows executable: a shell script named like one."""
    directory.mkdir(parents=True, exist_ok=True)
    exe = directory / name
    exe.write_text("#!/bin/sh\n" + body + "\n")
    exe.chmod(0o755)
    return exe


def wait_for(predicate, timeout_s: float = 5.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"not true within {timeout_s} s")


TASKLIST_OK = """case "$*" in
  *vmmemWSL*) printf '"vmmemWSL","4242","Services","0","1,234,567 K"\\r\\n' ;;
  *) printf 'INFO: No tasks are running which match the specified criteria.\\r\\n' ;;
esac"""


# --- parsing interop output -----------------------------------------------------------------

@pytest.mark.parametrize("mem, kib", [
    ("1,234,567 K", 1234567),          # en-US
    ("1.234.567 K", 1234567),          # de-DE
    ("1\u00a0234\u00a0567 Ko", 1234567),  # fr-FR, no-break spaces
    ("1\u202f234\u202f567 K", 1234567),   # narrow no-break spaces
    ("1'234'567 K", 1234567),          # de-CH
    ("1\ufffd234\ufffd567 K", 1234567),  # OEM code page byte decoded as a replacement character
    ("812 K", 812),
])
def test_tasklist_memory_in_any_locale(mem, kib):
    assert host.parse_tasklist_csv_kib(f'"vmmemWSL","4242","Services","0","{mem}"\r\n') == kib


def test_tasklist_no_process_and_garbage_are_none():
    assert host.parse_tasklist_csv_kib("INFO: No tasks are running which match the specified criteria.\r\n") is None
    assert host.parse_tasklist_csv_kib("INFORMATION: Es werden keine Aufgaben mit den angegebenen Kriterien ausgeführt.") is None
    assert host.parse_tasklist_csv_kib("hello, world, this, is, garbage\n") is None  # PID is not a number
    assert host.parse_tasklist_csv_kib("") is None


def test_tasklist_sums_processes_of_the_image():
    text = '"vmmem","10","Services","0","1,000 K"\r\n"vmmem","11","Services","0","2,000 K"\r\n'
    assert host.parse_tasklist_csv_kib(text) == 3000


def test_tasklist_row_without_a_number_is_an_error():
    with pytest.raises(ValueError, match="holds no number"):
        host.parse_tasklist_csv_kib('"vmmemWSL","4242","Services","0","N/A"\r\n')


def test_powershell_bytes():
    assert host.parse_powershell_bytes("1264196608\r\n") == 1264196608
    assert host.parse_powershell_bytes("\r\n") is None
    with pytest.raises(ValueError, match="not a number of bytes"):
        host.parse_powershell_bytes("Get-Process : Cannot find a process\r\n")


# --- reported_kib ------------------------------------------------------------------------------

def test_reported_kib_from_captured_tree():
    roots = tree_roots("firecracker-vm")
    expected = int((roots.sys / host.REPORTED_KIB_FILE).read_text())
    with host.ReportedKib(roots) as view:
        assert view.available and view.column == "host_reported_kib"
        assert view.read() == expected
        assert view.read() == expected  # pread at offset 0: a second read sees the value again


def test_reported_kib_rereads_a_changed_file(tree_copy):
    roots = tree_copy("firecracker-vm")
    view = host.ReportedKib(roots)
    (roots.sys / host.REPORTED_KIB_FILE).write_text("5\n")
    assert view.read() == 5
    (roots.sys / host.REPORTED_KIB_FILE).write_text("garbage\n")
    assert view.read() is None  # never a made-up number
    view.close()
    view.close()
    assert view.read() is None


def test_reported_kib_absent_is_none():
    view = host.ReportedKib(tree_roots("container-v2"))
    assert not view.available and view.read() is None


def test_reported_kib_live_guest():
    if not LIVE_REPORTED.exists():
        pytest.skip(f"{LIVE_REPORTED} absent: this kernel does not expose reported_kib")
    # Cumulative: the view's reading lies between two direct reads of the file around it, and never falls.
    before = int(LIVE_REPORTED.read_text())
    with host.ReportedKib(Roots()) as view:
        first, second = view.read(), view.read()
    after = int(LIVE_REPORTED.read_text())
    assert before <= first <= second <= after


# --- finding the interop executable ------------------------------------------------------------

def test_interop_found_on_path_before_windows_root(tmp_path):
    on_path = write_exe(tmp_path / "bin", "tasklist.exe", "exit 0")
    found = host.find_interop_command({"PATH": str(tmp_path / "bin")}, TREE_WINDOWS)
    assert found == on_path


TREE_WINDOWS = tree_roots("wsl2").proc.parent / "mnt/c"


def test_interop_found_under_windows_root():
    assert host.find_interop_command({}, TREE_WINDOWS) == TREE_WINDOWS / host.TASKLIST_REL


def test_interop_powershell_when_no_tasklist(tmp_path):
    ps = write_exe(tmp_path / host.POWERSHELL_REL.parent, "powershell.exe", "exit 0")
    assert host.find_interop_command({}, tmp_path) == ps


def test_interop_not_executable_is_ignored(tmp_path):
    exe = tmp_path / host.TASKLIST_REL
    exe.parent.mkdir(parents=True)
    exe.write_text("not executable")
    assert host.find_interop_command({}, tmp_path) is None


def test_find_host_views_per_tree():
    specs, notes = host.find_host_views(tree_roots("firecracker-vm"), {}, "6.18.44-fc-v669")
    assert [s.column for s in specs] == ["host_reported_kib"]
    assert any(n.startswith("wsl_vmmem: not WSL 2") for n in notes)
    specs, notes = host.find_host_views(tree_roots("wsl2"), {}, "5.15.167.4-microsoft-standard-WSL2")
    assert [(s.name, s.column) for s in specs] == [("wsl_vmmem", "host_vm_working_set_kib")]
    assert specs[0].source.endswith("mnt/c/Windows/System32/tasklist.exe")


def test_interop_disabled_means_no_view(tree_copy):
    roots = tree_copy("wsl2")
    (roots.proc / "sys/fs/binfmt_misc/WSLInterop").write_text("disabled\n")
    specs, notes = host.find_host_views(roots, {}, "5.15.167.4-microsoft-standard-WSL2")
    assert specs == [] and any("interop is disabled" in n for n in notes)
    (roots.proc / "sys/fs/binfmt_misc/WSLInterop").unlink()
    _, notes = host.find_host_views(roots, {}, "5.15.167.4-microsoft-standard-WSL2")
    assert any("not registered" in n for n in notes)


# --- the polling view, with fake executables -----------------------------------------------------

def test_wsl_view_reads_tasklist(tmp_path):
    exe = write_exe(tmp_path, "tasklist.exe", TASKLIST_OK)
    view = host.WslVmmemView(exe, interval_s=0.05)
    try:
        assert wait_for(view.read) == 1234567
        value_kib, age_s = view.latest()
        assert value_kib == 1234567 and 0 <= age_s < 1
        assert view.last_error is None
    finally:
        view.stop()


def test_wsl_view_falls_back_to_vmmem(tmp_path):
    exe = write_exe(tmp_path, "tasklist.exe", """case "$*" in
  *vmmemWSL*) echo 'INFO: No tasks are running which match the specified criteria.' ;;
  *"eq vmmem"*) echo '"vmmem","77","Services","0","2.048 K"' ;;
esac""")
    view = host.WslVmmemView(exe, start=False)
    assert view.query_once() == 2048
    assert view.query_once() == 2048  # the image that answered is remembered


def test_wsl_view_powershell_bytes_and_arguments(tmp_path):
    args_file = tmp_path / "args"
    exe = write_exe(tmp_path, "powershell.exe", f'printf "%s\\n" "$@" > {args_file}\nprintf "1264196608\\r\\n"')
    view = host.WslVmmemView(exe, start=False)
    assert view.query_once() == 1264196608 // 1024
    args = args_file.read_text().splitlines()
    assert args[:3] == ["-NoProfile", "-NonInteractive", "-Command"]
    assert "vmmemWSL" in args[3] and "WorkingSet64" in args[3]


def test_wsl_view_slow_executable_never_blocks_the_reader(tmp_path):
    exe = write_exe(tmp_path, "tasklist.exe", "sleep 2\n" + TASKLIST_OK)
    view = host.WslVmmemView(exe, interval_s=0.0)
    try:
        worst_s = 0.0
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            started = time.monotonic()
            assert view.read() is None
            assert view.latest() == (None, math.inf)
            worst_s = max(worst_s, time.monotonic() - started)
        assert worst_s < 0.05, f"a read took {worst_s * 1000:.0f} ms while the call was in flight"
        assert wait_for(view.read, timeout_s=5) == 1234567
    finally:
        # a second slow call is in flight now (interval 0): stop must kill it, not wait 2 s
        started = time.monotonic()
        view.stop()
        stop_s = time.monotonic() - started
    assert stop_s < 1.0, f"stop() took {stop_s:.2f} s"
    assert not view._thread.is_alive()


def test_wsl_view_failing_executable(tmp_path):
    exe = write_exe(tmp_path, "tasklist.exe", "echo 'Access is denied.' >&2\nexit 1")
    view = host.WslVmmemView(exe, interval_s=0.05)
    try:
        error = wait_for(lambda: view.last_error)
        assert "exited with 1" in error and "Access is denied." in error
        assert view.read() is None and view.latest() == (None, math.inf)
        assert view._thread.is_alive()  # it keeps trying: Windows may answer later
    finally:
        view.stop()


def test_wsl_view_garbage_output(tmp_path):
    exe = write_exe(tmp_path, "tasklist.exe", "echo 'Lorem ipsum dolor sit amet'")
    view = host.WslVmmemView(exe, interval_s=0.05)
    try:
        assert "no vmmemWSL or vmmem process" in wait_for(lambda: view.last_error)
        assert view.read() is None
    finally:
        view.stop()


def test_wsl_view_timeout(tmp_path):
    exe = write_exe(tmp_path, "tasklist.exe", "sleep 5")
    view = host.WslVmmemView(exe, start=False, timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(host.InteropError, match="did not answer within 0.3 s"):
        view.query_once()
    assert time.monotonic() - started < 2


def test_wsl_view_stale_value_is_not_shown_as_current(tmp_path):
    flag = tmp_path / "ok"
    flag.write_text("")
    exe = write_exe(tmp_path, "tasklist.exe", f'[ -e {flag} ] || exit 1\n' + TASKLIST_OK)
    view = host.WslVmmemView(exe, interval_s=0.05, max_age_s=0.3)
    try:
        assert wait_for(view.read) == 1234567
        flag.unlink()  # Windows stops answering
        wait_for(lambda: view.read() is None, timeout_s=3)
        value_kib, age_s = view.latest()
        assert value_kib == 1234567 and age_s > 0.3  # the last answer stays visible with its age
        assert "exited with 1" in view.last_error
    finally:
        view.stop()


# --- the common interface --------------------------------------------------------------------

def test_available_host_views_from_roots():
    views = host.available_host_views(tree_roots("firecracker-vm"), env={})
    try:
        assert [type(v) for v in views] == [host.ReportedKib]
        assert views[0].read() == int((tree_roots("firecracker-vm").sys / host.REPORTED_KIB_FILE).read_text())
    finally:
        for v in views:
            v.close()


def test_available_host_views_from_guest_info_on_wsl_tree():
    info = guest.probe(tree_roots("wsl2"), env={})
    views = host.available_host_views(info)
    try:
        assert [(v.name, v.column) for v in views] == [("wsl_vmmem", "host_vm_working_set_kib")]
        assert wait_for(views[0].read) == 1234567
    finally:
        for v in views:
            v.close()


def test_no_host_views_in_a_container():
    assert host.available_host_views(tree_roots("container-v1"), env={}) == []


def test_open_view_unknown_name():
    with pytest.raises(ValueError, match="unknown host view 'qemu_rss'"):
        host.open_view(host.HostViewSpec("qemu_rss", "host_vm_rss_kib", "x"), Roots())


def test_wsl_reason():
    assert "WSL 2" in host.wsl_reason("5.15.167.4-microsoft-standard-WSL2", {})
    assert "WSL_DISTRO_NAME=Ubuntu" in host.wsl_reason("6.6.1-generic", {"WSL_DISTRO_NAME": "Ubuntu"})
    assert host.wsl_reason("6.18.44-fc-v669", {}) is None
    assert host.wsl_reason("4.4.0-19041-Microsoft", {}) is None  # WSL 1: no VM, no vmmem
