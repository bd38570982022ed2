"""Workloads: each step does to memory what it claims, and nothing is left behind, ever."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from reclaimlab.control import knobs
from reclaimlab.probe import fincore, consent, pagemap, sources
from reclaimlab.probe.consent import SystemChangeRefused
from reclaimlab.units import GIB, MIB, PIB
from reclaimlab.experiments.workloads import Allocator, Fragmenter, PageCacheFile, ScratchError, WorkloadError
from reclaimlab.control import scratch
from reclaimlab.experiments.workloads._child import ChildProcess, status_kib

ROOTS = sources.Roots()
LIB = str(Path(__file__).resolve().parents[1] / "lib")


def _our_scratch_dirs() -> list[Path]:
    found = []
    for base in (Path.home() / ".cache" / "reclaimlab", Path("/var/tmp")):
        found += base.glob(f"{scratch.PREFIX}{scratch.owner_tag()}-*") if base.is_dir() else []
    return found


@pytest.fixture(autouse=True)
def nothing_left_behind():
    yield
    assert psutil.Process().children(recursive=True) == [], "a workload child was left behind"
    assert _our_scratch_dirs() == [], "a scratch folder was left behind"


def _gone(pid: int) -> bool:
    """The process no longer exists, or is a zombie (its memory is already released)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.02)
    return _gone(pid)


def _run_script(body: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=LIB)
    return subprocess.Popen([sys.executable, "-u", "-c", textwrap.dedent(body)], stdout=subprocess.PIPE,
                            text=True, env=env)


# ---------------------------------------------------------------- allocator

@pytest.mark.live
def test_calloc_commits_little_touch_commits_all_free_returns_it():
    size = 512 * MIB
    size_kib = size // 1024
    with Allocator(size) as a:
        base = a.status()["RssAnon"]
        r = a.calloc()
        assert r.step == "calloc" and r.detail["method"] == "calloc"
        assert r.rss_anon_kib - base < 0.05 * size_kib, "calloc alone must commit (almost) nothing"
        r = a.touch()
        assert r.rss_anon_kib - base >= 0.90 * size_kib, "touching must commit every page"
        assert r.detail["checksum"] == r.detail["pattern"] * (size // 4096)
        assert r.gb_per_s > 0.05
        assert a.status()["RssAnon"] - base >= 0.90 * size_kib  # seen from the parent's side too
        r = a.free()
        assert r.rss_anon_kib - base < 0.05 * size_kib, "glibc's free must munmap a chunk this big"
        r = a.touch_again()  # refault: a new buffer, touched at once
        assert r.detail["refault"] and r.rss_anon_kib - base >= 0.90 * size_kib
        pid = a.pid
    assert _wait_gone(pid, 2)


@pytest.mark.live
def test_huge_page_buffer():
    size = 256 * MIB
    with Allocator(size, huge_pages=True) as a:
        assert a.calloc().detail["method"] == "mmap+MADV_HUGEPAGE"
        a.touch()
        thp = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
        rollup = Path(f"/proc/{a.pid}/smaps_rollup").read_text()
        huge_kib = int(next(l.split()[1] for l in rollup.splitlines() if l.startswith("AnonHugePages")))
        if "[never]" not in thp:
            assert huge_kib >= 0.5 * size // 1024, f"expected THP backing, got {huge_kib} kB"
        assert a.free().rss_anon_kib < 0.05 * size // 1024


def test_steps_out_of_order_are_clear_errors():
    with Allocator("1MiB") as a:
        with pytest.raises(WorkloadError, match="nothing allocated"):
            a.touch()
        with pytest.raises(WorkloadError, match="nothing to free"):
            a.free()
        a.calloc()
        with pytest.raises(WorkloadError, match="already allocated"):
            a.calloc()
    with pytest.raises(RuntimeError, match="not running"):
        Allocator("1MiB").calloc()


def test_child_is_killed_when_the_block_raises():
    with pytest.raises(KeyboardInterrupt):
        with Allocator("64MiB") as a:
            a.calloc()
            a.touch()
            pid = a.pid
            raise KeyboardInterrupt
    assert _wait_gone(pid, 2)


def test_child_exits_on_eof_of_its_stdin():
    child = ChildProcess("reclaimlab.experiments.workloads.allocator_child")
    try:
        child._proc.stdin.close()  # what the parent's death does to the pipe
        assert child._proc.wait(timeout=2) == 0
    finally:
        child.kill()


def test_a_killed_child_is_reported_clearly():
    with Allocator("16MiB") as a:
        os.kill(a.pid, signal.SIGKILL)
        _wait_gone(a.pid, 2)
        with pytest.raises(WorkloadError, match="killed by SIGKILL"):
            a.calloc()


@pytest.mark.live
def test_kill_9_of_the_parent_takes_the_child_and_its_memory():
    size_kib = 512 * 1024
    parent = _run_script("""
        import time
        from reclaimlab.experiments.workloads import Allocator
        a = Allocator("512MiB").start()
        a.calloc(); a.touch()
        print(a.pid, flush=True)
        time.sleep(60)
    """)
    try:
        child_pid = int(parent.stdout.readline())
        assert status_kib(child_pid).get("RssAnon", 0) >= 0.9 * size_kib
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=5)
        assert _wait_gone(child_pid, 2), "the allocator child outlived its parent"
        assert status_kib(child_pid).get("RssAnon", 0) == 0  # no process holds the memory any more
    finally:
        parent.kill()
        parent.wait()


# ---------------------------------------------------------------- page cache

def _consent_or_skip(knob: str) -> None:
    try:
        consent.require(knob, ROOTS, allow=True)
    except SystemChangeRefused as exc:
        pytest.skip(f"needs {knob}: {exc}")


@pytest.mark.live
def test_page_cache_grows_and_drop_caches_takes_it():
    _consent_or_skip("drop_caches")
    size = 512 * MIB
    # The file's own resident pages (mincore), not the guest's Cached: other programs' files (another
    # run's drop_caches, a big write) move Cached by hundreds of MiB between two reads on a shared guest.
    with PageCacheFile(size) as f:
        assert f.write().size_bytes == size
        f.sync()
        resident1 = fincore.resident_kib(f.path) * 1024
        assert resident1 >= 0.8 * size, f"only {resident1 // MIB} MiB of the file is in the page cache"
        assert f.read().size_bytes == size
        result = knobs.drop_caches(1, allow=True)
        resident2 = fincore.resident_kib(f.path) * 1024
        assert resident1 - resident2 >= 0.8 * size, f"the file's cache fell by only {(resident1 - resident2) // MIB} MiB"
        assert result.duration_s > 0 and result.sync_s >= 0
        path = f.path
    assert not path.exists() and not path.parent.exists()


@pytest.mark.live
def test_file_removed_after_ctrl_c_mid_write():
    # Python's own SIGINT handler in the script: a background job (`pytest ... &` in a shell without job
    # control) starts with SIGINT ignored, which its children inherit, and the write would run to its end.
    parent = _run_script("""
        import signal
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from reclaimlab.experiments.workloads import PageCacheFile
        with PageCacheFile("1GiB") as f:
            print(f.path, f.pid, flush=True)
            f.write()
            print("finished", flush=True)
    """)
    try:
        path_text, pid_text = parent.stdout.readline().split()
        path = Path(path_text)
        deadline = time.monotonic() + 10
        while not (path.exists() and path.stat().st_size > 0) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert path.exists(), "the write never started"
        parent.send_signal(signal.SIGINT)
        out, _ = parent.communicate(timeout=10)
        assert "finished" not in out, "the write ended before the interrupt: not a mid-write test"
        assert parent.returncode != 0
        assert not path.exists() and not path.parent.exists()
        assert _wait_gone(int(pid_text), 2)
    finally:
        parent.kill()
        parent.wait()


def test_refuses_memory_filesystems():
    shm = Path("/dev/shm")
    if scratch.filesystem_type(shm) != "tmpfs":
        pytest.skip("no tmpfs at /dev/shm")
    with pytest.raises(ScratchError, match="tmpfs"):
        PageCacheFile("1MiB", directory=shm).start()


def test_refuses_when_the_disk_is_too_small(tmp_path):
    with pytest.raises(ScratchError, match="free"):
        PageCacheFile(PIB, directory=tmp_path).start()


def test_filesystem_type_picks_the_longest_mount():
    mounts = "/dev/vda / ext4 rw 0 0\ntmpfs /tmp tmpfs rw 0 0\ntmpfs /tmpx tmpfs rw 0 0\n"
    assert scratch.filesystem_type(Path("/tmp/a/b"), mounts) == "tmpfs"
    assert scratch.filesystem_type(Path("/var/tmp"), mounts) == "ext4"
    assert scratch.filesystem_type(Path("/tmpfoo"), mounts) == "ext4"


def test_stale_scratch_of_dead_runs_is_cleaned_live_ones_kept(tmp_path):
    dead = tmp_path / f"{scratch.PREFIX}999999999-123-abc"   # no such pid
    reused = tmp_path / f"{scratch.PREFIX}{os.getpid()}-1-abc"  # our pid, another start time
    ours = tmp_path / f"{scratch.PREFIX}{scratch.owner_tag()}-abc"
    other = tmp_path / f"{scratch.PREFIX}notes"
    for d in (dead, reused, ours, other):
        d.mkdir()
        (d / "pagecache.bin").write_bytes(b"x")
    removed = scratch.clean_stale(tmp_path)
    assert sorted(removed) == sorted([dead, reused])
    assert ours.exists() and other.exists() and not dead.exists() and not reused.exists()


# ---------------------------------------------------------------- fragmenter

@pytest.mark.live
def test_fragmenter_pins_high_order_blocks_and_compaction_moves_its_pages_together():
    _consent_or_skip("compact_memory")
    order = 9  # page_reporting_order here: only blocks this big can go back to the host
    # The fragmenter's own pages (their PFNs, /proc/<pid>/pagemap), not /proc/buddyinfo: the guest's free
    # blocks are split and joined by every other program meanwhile (and by the kernel onlining memory
    # lazily, see fragmenter.managed_pages), the blocks our kept pages sit in only by us and compaction.
    with Fragmenter(1 * GIB) as frag:
        result = frag.fragment()
        assert result.freed_pages >= 0.45 * GIB // 4096
        held = frag.held_pfns()
        if held is None:
            pytest.skip("the fragmenter's PFNs are hidden here (pagemap needs root)")
        assert sum(p is not None for p in held) >= 0.99 * result.held_pages, "kept pages are not resident"
        pinned = pagemap.blocks_holding(held, order)
        span = GIB // (4096 << order)
        # one kept page of every two: each block the mapping spans is pinned by it
        assert pinned >= 0.9 * span, f"the kept pages pin only {pinned} of the {span} order-{order} blocks they span"
        # One pass usually does it (0.1-0.25 s here); a pass racing other work may find little to do.
        scanned0 = sources.vmstat(ROOTS)["compact_migrate_scanned"]
        after = held
        for _ in range(3):
            knobs.compact_memory(allow=True)
            after = frag.held_pfns()
            if pagemap.vacated_blocks(held, after, order) >= 32:
                break
        scanned = sources.vmstat(ROOTS)["compact_migrate_scanned"] - scanned0
        assert scanned > 0, "compact_memory did not run: the kernel scanned no pages"
        moved, vacated = pagemap.moved_pages(held, after), pagemap.vacated_blocks(held, after, order)
        if moved == 0:
            # Seen on this guest after hours of other work: compaction scans pages yet moves none (its free
            # memory is pinned by unmovable pages). That is the kernel's answer, not ours: say so rather than pass.
            # The shipped recording's test (test_datasets) stays strict.
            pytest.skip(f"compaction ran (scanned {scanned} pages, whole guest) but moved none of our "
                        f"{result.held_pages} kept pages: they still pin {pinned} order-{order} blocks")
        # Moved pages land wherever there were free pages, often over more blocks than before: what compaction
        # does for reporting is to empty blocks of them, so that is what is asserted.
        assert vacated > 0, (f"{moved} kept pages moved, yet none of the {pinned} order-{order} blocks they pinned "
                             f"was left (now {pagemap.blocks_holding(after, order)})")


def test_sqlite_app_builds_queries_and_stays_small_and_leaves_nothing():
    from reclaimlab.experiments.workloads import SqliteApp
    size = 24 * MIB
    with SqliteApp(size, cache_kib=1024) as app:
        built = app.build()
        # the file stops within one page of rows over the size asked for, never far beyond it
        assert size <= built.size_bytes <= size + 2 * MIB
        scan = app.scan()
        assert scan.detail["rows"] == built.detail["rows"] > 10_000
        assert app.lookups(500).detail["rows"] == 500
        # its own memory is the interpreter and SQLite's small cache, not the database
        assert scan.detail["rss_kib"] < 64 * 1024
        path, pid = app.path, app.pid
        assert fincore.resident_kib(path) * 1024 >= 0.5 * size  # the kernel's page cache holds the file
    assert not path.exists() and not path.parent.exists()
    assert _wait_gone(pid, 2)


def test_sqlite_app_refuses_a_database_the_disk_cannot_hold(tmp_path):
    from reclaimlab.experiments.workloads import SqliteApp
    with pytest.raises(ScratchError, match="free"):
        SqliteApp(PIB, directory=tmp_path).start()
    with pytest.raises(ValueError, match="cache_kib"):
        SqliteApp("1MiB", cache_kib=0)


@pytest.mark.live
def test_sqlite_database_removed_after_ctrl_c_mid_build():
    parent = _run_script("""
        import signal
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from reclaimlab.experiments.workloads import SqliteApp
        with SqliteApp("1GiB") as app:
            print(app.path, app.pid, flush=True)
            app.build()
            print("finished", flush=True)
    """)
    try:
        path_text, pid_text = parent.stdout.readline().split()
        path = Path(path_text)
        deadline = time.monotonic() + 10
        while not (path.exists() and path.stat().st_size > 0) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert path.exists(), "the build never started"
        parent.send_signal(signal.SIGINT)
        out, _ = parent.communicate(timeout=10)
        assert "finished" not in out, "the build ended before the interrupt: not a mid-build test"
        assert parent.returncode != 0
        assert not path.exists() and not path.parent.exists()
        assert _wait_gone(int(pid_text), 2)
    finally:
        parent.kill()
        parent.wait()
