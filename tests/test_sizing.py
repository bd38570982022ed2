"""sizing: every size a user can type is planned before anything is allocated."""
from pathlib import Path

import pytest

from reclaimlab.probe import sources
from reclaimlab.units import GIB, MIB, PIB
from reclaimlab.experiments.sizing import MIN_USEFUL_BYTES, Plan, SizeTooLarge, plan_allocation


def fake_roots(tmp_path: Path, available_kib: int, cgroup_v1: tuple[int, int] | None = None) -> sources.Roots:
    proc, sys_ = tmp_path / "proc", tmp_path / "sys"
    (proc / "self").mkdir(parents=True)
    (proc / "meminfo").write_text(f"MemTotal: {available_kib * 2} kB\nMemFree: {available_kib} kB\n"
                                  f"MemAvailable: {available_kib} kB\nCached: 0 kB\n")
    if cgroup_v1 is None:
        (proc / "self" / "cgroup").write_text("0::/\n")
    else:
        limit, usage = cgroup_v1
        (proc / "self" / "cgroup").write_text("4:memory:/box\n0::/\n")
        box = sys_ / "fs" / "cgroup" / "memory" / "box"
        box.mkdir(parents=True)
        (box / "memory.limit_in_bytes").write_text(f"{limit}\n")
        (box / "memory.usage_in_bytes").write_text(f"{usage}\n")
        (box / "memory.stat").write_text(f"cache 0\nrss {usage}\nhierarchical_memory_limit {limit}\n")
    sys_.mkdir(exist_ok=True)
    return sources.Roots(proc, sys_)


def test_fits_unchanged(tmp_path):
    plan = plan_allocation("1GiB", "live", fake_roots(tmp_path, 8 * GIB // 1024))
    assert plan == Plan(GIB, False, "", GIB, plan.safe_bytes, plan.basis)
    assert plan.safe_bytes > GIB and "MemAvailable" in plan.basis


@pytest.mark.parametrize("request_", ["1PiB", "3GB", PIB, "900TB"])
def test_auto_scales_down_with_a_notice(tmp_path, request_):
    plan = plan_allocation(request_, "auto", fake_roots(tmp_path, 2 * GIB // 1024))
    assert plan.scaled and MIN_USEFUL_BYTES <= plan.size_bytes < 2 * GIB
    assert plan.size_bytes <= plan.safe_bytes and plan.size_bytes % (2 * MIB) == 0
    assert "You asked for" in plan.notice and "MemAvailable" in plan.notice


def test_live_refuses_with_what_why_and_how(tmp_path):
    with pytest.raises(SizeTooLarge) as err:
        plan_allocation("3GB", "live", fake_roots(tmp_path, 2 * GIB // 1024))
    msg = str(err.value)
    assert "2.79 GiB was asked" in msg and "safe" in msg and "MemAvailable" in msg and "mode='auto'" in msg
    assert isinstance(err.value, ValueError)


def test_cgroup_limit_binds_where_tighter(tmp_path):
    roots = fake_roots(tmp_path, 16 * GIB // 1024, cgroup_v1=(2 * GIB, 512 * MIB))
    plan = plan_allocation("3GB", "auto", roots)
    assert plan.scaled and plan.size_bytes < 1536 * MIB
    assert "cgroup" in plan.notice


def test_too_little_memory_refuses_even_in_auto(tmp_path):
    with pytest.raises(SizeTooLarge, match="recorded"):
        plan_allocation("1GiB", "auto", fake_roots(tmp_path, 200 * MIB // 1024))


def test_bad_mode_and_bad_size(tmp_path):
    roots = fake_roots(tmp_path, 8 * GIB // 1024)
    with pytest.raises(ValueError, match="mode"):
        plan_allocation("1GiB", "recorded", roots)
    with pytest.raises(ValueError, match="3XB"):
        plan_allocation("3XB", "auto", roots)


def test_this_machine_survives_any_typed_size():
    """On the live guest: 1 PiB in auto mode becomes something MemAvailable can hold."""
    roots = sources.Roots()
    if not (roots.proc / "meminfo").exists():
        pytest.skip("no /proc here")
    available = sources.meminfo(roots)["MemAvailable"] * 1024
    try:
        plan = plan_allocation("1PiB", "auto", roots)
    except SizeTooLarge:
        return  # a tiny machine: refusing is also safe
    assert plan.scaled and plan.size_bytes < available

