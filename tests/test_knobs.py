"""knobs: refuse without permission, validate input, restore what they change, reclaim from our own cgroup."""
import os
from pathlib import Path

import psutil
import pytest

from reclaimlab.control import knobs
from reclaimlab.probe import consent, sources
from reclaimlab.probe.consent import SystemChangeRefused
from reclaimlab.units import MIB
from reclaimlab.experiments.workloads import PageCacheFile
from reclaimlab.control.scratch import owner_tag

ROOTS = sources.Roots()
NO_CONSENT = {}                              # RECLAIMLAB_ALLOW_SYSTEM_CHANGES unset
SHARED = {"RECLAIMLAB_SHARED": "1", "RECLAIMLAB_ALLOW_SYSTEM_CHANGES": "1"}


def _our_cgroups() -> list[Path]:
    own = sources.memory_cgroup(ROOTS)
    return sorted(own.path.glob(f"{knobs.CGROUP_PREFIX}{owner_tag()}-*")) if own else []


@pytest.fixture(autouse=True)
def nothing_left_behind():
    proactiveness = knobs.compaction_proactiveness()
    yield
    assert knobs.compaction_proactiveness() == proactiveness, "compaction_proactiveness was not restored"
    assert _our_cgroups() == [], "a WorkloadCgroup was left behind"
    assert psutil.Process().children(recursive=True) == [], "a workload child was left behind"


def _require_live(knob: str = "drop_caches") -> None:
    try:
        consent.require(knob, ROOTS, allow=True)
    except SystemChangeRefused as exc:
        pytest.skip(f"knobs not usable here: {exc}")


# ---------------------------------------------------------------- refusals (need nothing)

@pytest.mark.parametrize("env,allow,words", [(NO_CONSENT, False, "not allowed"), (NO_CONSENT, None, "not allowed"),
                                              (SHARED, True, "shared")])
def test_knobs_refuse_without_permission(env, allow, words):
    actions = [lambda: knobs.drop_caches(1, allow=allow, env=env),
               lambda: knobs.compact_memory(allow=allow, env=env)]
    for act in actions:
        with pytest.raises(SystemChangeRefused) as err:
            act()
        # Wherever this runs, the refusal carries a reason (consent, shared, or not root).
        assert "refused" in str(err.value)
        if os.geteuid() == 0 and os.access("/proc/sys/vm/drop_caches", os.W_OK):
            assert words in str(err.value)
    with pytest.raises(SystemChangeRefused):
        with knobs.set_compaction_proactiveness(0, allow=allow, env=env):
            pytest.fail("the body must not run when refused")


@pytest.mark.parametrize("level", [0, 4, -1, "1", 1.0, True, None])
def test_drop_caches_rejects_bad_level(level):
    with pytest.raises(ValueError, match="level must be 1"):
        knobs.drop_caches(level, allow=True)


@pytest.mark.parametrize("value", [-1, 101, "20", 2.5, True])
def test_proactiveness_rejects_bad_value(value):
    with pytest.raises(ValueError, match="0-100"):
        with knobs.set_compaction_proactiveness(value, allow=True):
            pass


def test_v1_squeeze_refuses_a_cgroup_we_did_not_create():
    own = sources.memory_cgroup(ROOTS)
    if own is None or own.version != 1:
        pytest.skip("needs a cgroup v1 memory controller")
    with pytest.raises(SystemChangeRefused, match="WorkloadCgroup"):
        knobs.cgroup_reclaim(MIB, allow=True)
    with pytest.raises(SystemChangeRefused, match="WorkloadCgroup"):
        knobs.cgroup_reclaim(MIB, allow=True, cgroup=own)


def test_cgroup_reclaim_rejects_bad_size():
    with pytest.raises(ValueError, match="positive"):
        knobs.cgroup_reclaim(0, allow=True)


# ---------------------------------------------------------------- live

@pytest.mark.live
def test_proactiveness_restored_after_an_exception():
    _require_live("compaction_proactiveness")
    old = knobs.compaction_proactiveness()
    new = 0 if old != 0 else 10
    with pytest.raises(RuntimeError, match="boom"):
        with knobs.set_compaction_proactiveness(new, allow=True) as before:
            assert before == old and knobs.compaction_proactiveness() == new
            raise RuntimeError("boom")
    assert knobs.compaction_proactiveness() == old


@pytest.mark.live
def test_compact_memory_runs_and_counts():
    _require_live("compact_memory")
    # compact_migrate_scanned is the whole guest's, but a counter since boot: other programs can only add to
    # it, never hide our pass, so this cannot flake on a busy guest (our write scans millions of pages here).
    before = sources.vmstat(ROOTS)["compact_migrate_scanned"]
    result = knobs.compact_memory(allow=True)
    assert result.knob == "compact_memory" and 0 <= result.duration_s < 30
    assert sources.vmstat(ROOTS)["compact_migrate_scanned"] > before


@pytest.mark.live
def test_workload_cgroup_is_removed_also_after_an_error():
    _require_live()
    with pytest.raises(RuntimeError):
        with knobs.WorkloadCgroup() as cg:
            path = cg.path
            assert path.is_dir() and cg.pids() == []
            raise RuntimeError("boom")
    assert not path.exists()


@pytest.mark.live
def test_cgroup_reclaim_takes_page_cache_charged_to_a_workload_cgroup():
    _require_live()
    size = 256 * MIB
    with knobs.WorkloadCgroup() as cg, PageCacheFile(size) as f:
        cg.add(f.pid)
        assert cg.pids() == [f.pid]
        f.write()
        f.sync()  # dirty pages cannot be reclaimed; clean ones can
        cache_bytes, _ = cg.file_anon_bytes()
        assert cache_bytes >= 0.9 * size, "the file's pages should be charged to the workload's cgroup"
        limit_before = cg.memory.limit_file.read_text()
        result = knobs.cgroup_reclaim(size // 2, allow=True, cgroup=cg)
        assert cg.memory.limit_file.read_text() == limit_before, "the v1 limit must be put back"
        expected = "memory.reclaim" if cg.version == 2 else knobs.V1_SQUEEZE
        assert result.method == expected and result.requested_bytes == size // 2
        assert 0.8 * size // 2 <= result.reclaimed_bytes <= 1.2 * size // 2 + 8 * MIB
        cache_after, _ = cg.file_anon_bytes()
        assert cache_after <= cache_bytes - 0.8 * size // 2
        # Asking for more than there is: the kernel takes what it can and says so (v1: EBUSY).
        result = knobs.cgroup_reclaim(4 * size, allow=True, cgroup=cg)
        assert result.reclaimed_bytes >= 0.8 * size // 2
        assert cg.memory.limit_file.read_text() == limit_before


# ---------------------------------------------------------------- memory.reclaim's request (no kernel needed)

def _fake_v2(tmp_path, monkeypatch):
    cg = tmp_path / "cg"
    cg.mkdir()
    (cg / "memory.current").write_text(str(512 * MIB))
    (cg / "memory.reclaim").write_text("")
    monkeypatch.setattr(knobs, "_require_cgroup_write", lambda *a, **k: None)
    return sources.MemoryCgroup(2, cg)


def test_reclaim_v2_writes_swappiness_where_asked(tmp_path, monkeypatch):
    target = _fake_v2(tmp_path, monkeypatch)
    result = knobs.cgroup_reclaim(256 * MIB, allow=True, cgroup=target, swappiness=0)
    assert (target.path / "memory.reclaim").read_text() == f"{256 * MIB} swappiness=0"
    assert result.request == f"{256 * MIB} swappiness=0" and result.note == ""


def test_reclaim_v2_without_swappiness_key_falls_back_to_bytes_and_says_so(tmp_path, monkeypatch):
    import errno
    target = _fake_v2(tmp_path, monkeypatch)
    written = []

    def write(path, request):
        if "swappiness" in request:
            raise OSError(errno.EINVAL, "Invalid argument")
        written.append(request)
    monkeypatch.setattr(knobs, "_write_request", write)
    result = knobs.cgroup_reclaim(MIB, allow=True, cgroup=target, swappiness=0)
    assert written == [str(MIB)] and result.request == str(MIB) and "EINVAL" in result.note


def test_reclaim_v2_eagain_is_an_outcome_not_an_error(tmp_path, monkeypatch):
    """WSL's RequestReclaim treats EAGAIN (some, not all, reclaimed) as success (util.cpp:3774 at 3e27a6a)."""
    import errno
    target = _fake_v2(tmp_path, monkeypatch)

    def write(path, request):
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
    monkeypatch.setattr(knobs, "_write_request", write)
    result = knobs.cgroup_reclaim(MIB, allow=True, cgroup=target, swappiness=0)
    assert result.method == "memory.reclaim" and "EAGAIN" in result.note


def test_reclaim_rejects_bad_swappiness():
    with pytest.raises(ValueError, match="0 to 200"):
        knobs.cgroup_reclaim(MIB, allow=True, swappiness=201)
