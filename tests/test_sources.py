"""Reading the kernel's files through configurable roots, and finding our memory cgroup."""
from __future__ import annotations

from pathlib import Path

import pytest

from reclaimlab.probe import sources
from reclaimlab.probe.procfs import ProcParseError
from reclaimlab.probe.sources import Roots, SourceError

from conftest import fixture_text, tree_roots

GIB = 1024 ** 3


def test_roots_from_env_and_arguments(monkeypatch):
    monkeypatch.setenv("RECLAIMLAB_PROC_ROOT", "/tree/proc")
    monkeypatch.delenv("RECLAIMLAB_SYS_ROOT", raising=False)
    roots = Roots.from_env()
    assert roots == Roots(Path("/tree/proc"), Path("/sys")) and not roots.is_live
    assert Roots.from_env("/a", "/b") == Roots(Path("/a"), Path("/b"))
    assert Roots().is_live


def test_meminfo_vmstat_buddyinfo_through_a_tree():
    roots = tree_roots("firecracker-vm")
    assert sources.meminfo(roots)["MemTotal"] == 24684084
    assert "compact_stall" in sources.vmstat(roots)
    assert len(sources.buddyinfo(roots)) == 3


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(SourceError, match=rf"^{tmp_path}/meminfo: not found"):
        sources.meminfo(Roots(tmp_path, tmp_path))


def test_corrupt_file_error_names_the_full_path(tree_copy):
    roots = tree_copy("firecracker-vm")
    (roots.proc / "meminfo").write_text(fixture_text("meminfo-corrupt-value"))
    with pytest.raises(ProcParseError, match=rf"^{roots.proc}/meminfo: line 2 "):
        sources.meminfo(roots)


def test_page_reporting_params_captured():
    params = sources.page_reporting_params(tree_roots("firecracker-vm"))
    assert params["page_reporting_order"] == 9
    assert isinstance(params["reported_kib"], int) and params["reported_kib"] > 0
    assert params["free_bitmap_enable"] is True
    assert set(params) == {"free_bitmap_enable", "max_waiting_mib", "min_free_ms", "page_reporting_order",
                           "passes", "reported_kib", "walked"}


def test_page_reporting_params_absent_is_empty():
    assert sources.page_reporting_params(tree_roots("container-v1")) == {}


# --- memory cgroup discovery and limits ---------------------------------------------------------

def test_v1_hybrid_finds_memory_controller_not_unified():
    cg = sources.memory_cgroup(tree_roots("firecracker-vm"))
    assert cg is not None and cg.version == 1
    assert cg.path.name == "07ff040aea8250ebbd7ca645acaad4b9"
    assert cg.limit_bytes() is None  # 9223372036854771712 and an unlimited hierarchy
    assert cg.usage_bytes() == 20250624
    assert cg.reclaim_file is None


def test_v1_container_without_cgroupns_falls_back_to_mount_root():
    # /proc/self/cgroup names the host's path (/kubepods/...), the mount shows only our cgroup
    cg = sources.memory_cgroup(tree_roots("container-v1"))
    assert cg is not None and cg.version == 1
    assert cg.path == tree_roots("container-v1").sys / "fs/cgroup/memory"
    assert cg.limit_bytes() == 2 * GIB
    assert cg.usage_bytes() == 512 * 1024 ** 2


def test_v1_hierarchical_limit_binds_when_ours_is_unlimited(tree_copy):
    roots = tree_copy("firecracker-vm")
    cg = sources.memory_cgroup(roots)
    stat = cg.stat_file.read_text().replace("hierarchical_memory_limit 9223372036854771712",
                                            f"hierarchical_memory_limit {GIB}")
    cg.stat_file.write_text(stat)
    assert cg.limit_bytes() == GIB


def test_v2_max_is_unlimited_and_reclaim_is_found():
    cg = sources.memory_cgroup(tree_roots("wsl2"))
    assert cg is not None and cg.version == 2
    assert cg.path.name == "session-2.scope"
    assert cg.limit_bytes() is None
    assert cg.reclaim_file is not None


def test_v2_parent_limit_binds(tree_copy):
    roots = tree_copy("wsl2")
    cg = sources.memory_cgroup(roots)
    (cg.path / "memory.max").write_text(f"{8 * GIB}\n")
    assert cg.limit_bytes() == 8 * GIB
    (roots.sys / "fs/cgroup/user.slice/memory.max").write_text(f"{4 * GIB}\n")
    assert cg.limit_bytes() == 4 * GIB


def test_v2_container_namespace_root():
    cg = sources.memory_cgroup(tree_roots("container-v2"))
    assert cg.version == 2 and cg.limit_bytes() == 2 * GIB and cg.usage_bytes() == 314572800


@pytest.mark.parametrize("tree, file_bytes, anon_bytes", [
    ("firecracker-vm", 10379264, 8912896),    # v1 total_cache / total_rss
    ("container-v1", 209715200, 314572800),
    ("container-v2", 94371840, 201326592),   # v2 file / anon
])
def test_file_anon_split_of_both_versions(tree, file_bytes, anon_bytes):
    from reclaimlab.probe.procfs import cgroup_file_anon_bytes
    cg = sources.memory_cgroup(tree_roots(tree))
    assert cgroup_file_anon_bytes(cg.stat()) == (file_bytes, anon_bytes)


def test_corrupt_memory_max_names_the_file(tree_copy):
    roots = tree_copy("container-v2")
    (roots.sys / "fs/cgroup/memory.max").write_text("two gigs\n")
    with pytest.raises(ProcParseError, match=r"memory.max: 'two gigs' is not a number"):
        sources.memory_cgroup(roots).limit_bytes()


def test_no_cgroup_file_means_no_cgroup(tmp_path):
    assert sources.memory_cgroup(Roots(tmp_path, tmp_path)) is None


def test_live_guest_cgroup_is_readable():
    cg = sources.memory_cgroup(Roots())
    if cg is None:
        pytest.skip("this machine shows no memory cgroup for this process")
    assert cg.usage_bytes() > 0
