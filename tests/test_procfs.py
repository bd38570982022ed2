"""The pure parsers, on files captured from this project's guest and hand-made variants."""
from __future__ import annotations

import pytest

from reclaimlab.probe import procfs
from reclaimlab.probe.procfs import CpuTimes, PidStat, ProcParseError

from conftest import TREES, fixture_text

FC = TREES / "firecracker-vm"


# --- /proc/meminfo -------------------------------------------------------------------------------

def test_meminfo_captured_keeps_every_line_in_kib():
    text = (FC / "proc/meminfo").read_text()
    info = procfs.parse_meminfo(text)
    assert len(info) == len(text.splitlines())
    assert info["MemTotal"] == 24684084
    assert info["MemAvailable"] == 24099748
    assert info["Balloon"] == 0          # this kernel's line; others lack it
    assert info["HugePages_Total"] == 0  # a count, no unit
    assert info["MemFree"] <= info["MemAvailable"] <= info["MemTotal"]


def test_meminfo_old_kernel_lacks_memavailable_without_inventing_it():
    info = procfs.parse_meminfo(fixture_text("meminfo-2.6.32"))
    assert "MemAvailable" not in info
    assert info["MemTotal"] == 2054984 and info["HighTotal"] == 0


def test_meminfo_newer_kernel_fields_are_kept():
    info = procfs.parse_meminfo(fixture_text("meminfo-future"))
    assert info["FuturePages"] == 42
    assert info["Unaccepted"] == 0
    assert info["MemTotal"] == 24684084


@pytest.mark.parametrize("name, lineno", [("meminfo-corrupt-value", 2), ("meminfo-corrupt-colon", 3)])
def test_meminfo_corrupt_line_names_file_and_line(name, lineno):
    with pytest.raises(ProcParseError) as err:
        procfs.parse_meminfo(fixture_text(name), source=f"fixtures/{name}")
    assert str(err.value).startswith(f"fixtures/{name}: line {lineno} ")
    assert "\n" not in str(err.value)


def test_meminfo_empty_and_bad_unit():
    with pytest.raises(ProcParseError, match="/proc/meminfo: empty"):
        procfs.parse_meminfo("\n")
    with pytest.raises(ProcParseError, match="line 1"):
        procfs.parse_meminfo("MemTotal: 1024 MB\n")


# --- /proc/vmstat ----------------------------------------------------------------------------------

def test_vmstat_captured_has_compaction_counters():
    stat = procfs.parse_vmstat((FC / "proc/vmstat").read_text())
    assert stat["nr_free_pages"] == 1199015
    for name in ("compact_stall", "compact_migrate_scanned", "compact_free_scanned"):
        assert isinstance(stat[name], int)


def test_vmstat_corrupt_line_and_empty():
    with pytest.raises(ProcParseError, match=r"^/proc/vmstat: line 5 'pgpgin 12 34'"):
        procfs.parse_vmstat(fixture_text("vmstat-corrupt"))
    with pytest.raises(ProcParseError, match="empty"):
        procfs.parse_vmstat("")


# --- /proc/buddyinfo -------------------------------------------------------------------------------

def test_buddyinfo_captured_zones_and_totals():
    zones = procfs.parse_buddyinfo((FC / "proc/buddyinfo").read_text())
    assert [z.zone for z in zones] == ["DMA", "DMA32", "Normal"]
    assert all(len(z.free_blocks) == 11 for z in zones)
    normal = zones[2]
    assert normal.free_blocks[:2] == (2666, 2303)
    assert normal.blocks_at_least(9) == 78 + 229
    assert normal.free_pages(9) == 78 * 512 + 229 * 1024
    assert procfs.buddy_totals(zones)[10] == 3 + 752 + 229


def test_buddyinfo_corrupt_line():
    with pytest.raises(ProcParseError, match=r"^/proc/buddyinfo: line 2 "):
        procfs.parse_buddyinfo(fixture_text("buddyinfo-corrupt"))


# --- /proc/zoneinfo: the per-CPU page lists -------------------------------------------------------

def test_zoneinfo_per_cpu_pages_sum_every_zone_and_cpu():
    # captured here 2026-11-26: CPU 1's Normal list held 118,552 pages (463 MiB) after a large free
    assert procfs.parse_zoneinfo_per_cpu_pages((FC / "proc/zoneinfo").read_text()) == 62 + 64 + 8549 + 118552


def test_zoneinfo_corrupt_and_without_pagesets():
    with pytest.raises(ProcParseError, match=r"^/proc/zoneinfo: line 84 .*count: <pages>"):
        procfs.parse_zoneinfo_per_cpu_pages(fixture_text("zoneinfo-corrupt"))
    with pytest.raises(ProcParseError, match="no 'pagesets' section"):
        procfs.parse_zoneinfo_per_cpu_pages("Node 0, zone      DMA\n  pages free     3\n")


# --- cgroup files ------------------------------------------------------------------------------------

def test_cgroup_v1_unlimited_is_none():
    assert procfs.cgroup_limit_bytes("9223372036854771712\n", "memory.limit_in_bytes") is None


def test_cgroup_v2_max_is_none_and_numbers_pass():
    assert procfs.cgroup_limit_bytes("max\n", "memory.max") is None
    assert procfs.parse_cgroup_number("max\n", "memory.max") is None
    assert procfs.cgroup_limit_bytes("2147483648\n", "memory.max") == 2 * 1024 ** 3


def test_cgroup_number_garbage_names_the_file():
    with pytest.raises(ProcParseError, match=r"^/x/memory.max: 'lots' is not a number"):
        procfs.parse_cgroup_number("lots\n", "/x/memory.max")


def test_memory_stat_v1_prefers_hierarchical_totals():
    stat = procfs.parse_memory_stat(next(FC.glob("sys/fs/cgroup/memory/*/*/memory.stat")).read_text())
    assert procfs.cgroup_file_anon_bytes(stat) == (stat["total_cache"], stat["total_rss"])
    # without the total_* lines (a leaf's own counters only), v1's cache/rss are used
    assert procfs.cgroup_file_anon_bytes({"cache": 10, "rss": 20}) == (10, 20)


def test_memory_stat_v2_file_anon():
    stat = procfs.parse_memory_stat((TREES / "container-v2/sys/fs/cgroup/memory.stat").read_text())
    assert procfs.cgroup_file_anon_bytes(stat) == (94371840, 201326592)


def test_memory_stat_missing_split_is_none_not_zero():
    assert procfs.cgroup_file_anon_bytes({"pgfault": 3}) == (None, None)


def test_memory_stat_corrupt_line():
    with pytest.raises(ProcParseError, match=r"^memory.stat: line 3 'file_mapped'"):
        procfs.parse_memory_stat(fixture_text("memory.stat-corrupt"))


# --- module parameters and /proc/self/cgroup -------------------------------------------------------

@pytest.mark.parametrize("text, value", [("9\n", 9), ("Y\n", True), ("N\n", False), ("-1\n", -1), ("abc\n", "abc")])
def test_module_param(text, value):
    assert procfs.parse_module_param(text, "p") == value


def test_cgroup_membership_hybrid():
    membership = procfs.parse_cgroup_membership((FC / "proc/self/cgroup").read_text())
    assert membership["memory"] == "/process_api/07ff040aea8250ebbd7ca645acaad4b9"
    assert membership[""] == "/"
    assert membership["cpu"] == "/"


def test_cgroup_membership_joined_controllers():
    membership = procfs.parse_cgroup_membership((TREES / "container-v1/proc/self/cgroup").read_text())
    assert membership["cpu"] == membership["cpuacct"] == "/kubepods/burstable/pod5f1d/9c0e"
    assert "" not in membership


# --- /proc/stat, /proc/<pid>/stat ----------------------------------------------------------------

STAT = "cpu  100 5 30 1000 20 1 2 3 7 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 1\n"


def test_parse_cpu_times_reads_the_aggregate_line():
    c = procfs.parse_cpu_times(STAT)
    assert c == CpuTimes(100, 5, 30, 1000, 20, 1, 2, 3)
    assert c.total == 1161 and c.busy == 1161 - 1000 - 20
    with pytest.raises(ProcParseError, match="/proc/stat"):
        procfs.parse_cpu_times("intr 5\n")


def test_cpu_shares_between_two_readings():
    a = CpuTimes(100, 0, 0, 900)
    b = CpuTimes(110, 0, 10, 1880)              # 1000 jiffies: 10 user, 20 busy
    assert procfs.cpu_shares(None, b) == (None, None)
    assert procfs.cpu_shares(a, b) == (pytest.approx(0.01), pytest.approx(0.02))
    assert procfs.cpu_shares(a, a) == (0.0, 0.0)
    assert procfs.cpu_shares(b, a) == (None, None)  # counters went backwards


def test_own_process_ticks_are_left_out_of_the_shares():
    stat = "4242 (python3 -m x) S 1 2 3 4 5 6 7 8 9 10 70 30 0 0 20 0 8 0 100 0 0\n"
    assert procfs.parse_pid_stat(stat) == PidStat(utime_ticks=70, stime_ticks=30, start_ticks=100)
    a = CpuTimes(100, 0, 0, 900, own_user=10, own_system=0)
    b = CpuTimes(150, 0, 20, 1830, own_user=50, own_system=10)   # 1000 jiffies: 50 user, 40 of them ours
    user, busy = procfs.cpu_shares(a, b)
    assert user == pytest.approx(0.01) and busy == pytest.approx(0.02)


def test_pid_stat_comm_may_hold_spaces_and_parentheses():
    stat = "7 (a) b (c) R 1 2 3 4 5 6 7 8 9 10 11 12 0 0 20 0 1 0 999 0 0\n"
    assert procfs.parse_pid_stat(stat) == PidStat(11, 12, 999)


def test_pid_stat_cut_short_names_the_file():
    with pytest.raises(ProcParseError, match="/proc/42/stat"):
        procfs.parse_pid_stat("42 (x) S 1 2 3\n", "/proc/42/stat")
    with pytest.raises(ProcParseError, match="/proc/<pid>/stat"):
        procfs.parse_pid_stat("")


def test_this_kernels_files_parse():
    """/proc/stat and /proc/self/stat of the kernel running the tests."""
    import os
    from pathlib import Path

    cpu = procfs.parse_cpu_times(Path("/proc/stat").read_text())
    assert cpu.total > cpu.busy >= cpu.user > 0
    me = procfs.parse_pid_stat(Path(f"/proc/{os.getpid()}/stat").read_text())
    assert me.utime_ticks + me.stime_ticks > 0 and me.start_ticks > 0


def test_parse_psi_reads_some_and_full_and_names_bad_lines():
    from reclaimlab.probe.procfs import ProcParseError, parse_psi

    psi = parse_psi("some avg10=1.50 avg60=0.20 avg300=0.00 total=42\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=7\n")
    assert psi["some"]["avg10"] == 1.5 and psi["full"]["total"] == 7
    assert parse_psi("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")["some"]["avg60"] == 0.0   # no 'full' (cpu, old kernels)
    for bad in ("", "full avg10=0.00 avg60=0 avg300=0 total=0\n", "some avg10=x\n", "some avg60=0.1\n", "most avg10=1\n",
                "some avg10\n"):
        with pytest.raises(ProcParseError, match="pressure/memory"):
            parse_psi(bad)
