"""Assemble the guest from installed Debian packages: kernel, initramfs (busybox + agent +
virtio modules), and a small ext4 disk, into a cache folder keyed by a hash of the inputs.

Nothing is downloaded here: the kernel is linux-image-amd64's (or, where /boot's is root's only,
the one packaged_kernel.fetch() got from PyPI), busybox is busybox-static's, the agent is compiled
from agent.c with the host's gcc. A build takes ~1-2 s and is reused until
an input changes (a new kernel, a new agent.c, ...).
"""
from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from . import cpio, packaged_kernel
from .cache import cache_root
from .errors import VmSetupError

BUILD_LAYOUT = 2  # bump when what build() makes changes shape, so old caches are not reused
DISK_MIB = 2048   # sparse: costs only what mkfs writes (~70 MiB) on the host until used
# What the guest needs, by module name; their dependencies are added from modules.dep.
# crc32c_generic is ext4's soft dependency (metadata checksums), which modules.dep does not list.
WANTED_MODULES = ("virtio_pci", "virtio_balloon", "virtio_console", "virtio_blk", "crc32c_generic", "ext4")
# Wanted only where the kernel has it: since Linux 6.14 ext4 takes crc32c from lib/crc, built in.
OPTIONAL_MODULES = ("crc32c_generic",)


@dataclass(frozen=True)
class Inputs:
    kernel_image: Path
    kernel_release: str
    modules_dir: Path
    busybox: Path
    cc: str
    mkfs_ext4: str


@dataclass(frozen=True)
class GuestImage:
    """A built guest: what machine.py boots."""

    dir: Path
    kernel: Path
    initramfs: Path
    disk: Path | None
    kernel_release: str
    kernel_source: str = ""  # where the kernel came from, for the recording's metadata


# ---- finding the inputs ---------------------------------------------------------------------

def _version_key(release: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", release))


def find_kernel(boot_dir: Path = Path("/boot"), modules_root: Path = Path("/lib/modules")) -> tuple[Path, str, Path]:
    """The newest /boot/vmlinuz-<release> whose modules include virtio_balloon."""
    candidates = sorted(boot_dir.glob("vmlinuz-*"), key=lambda p: _version_key(p.name), reverse=True)
    if not candidates:
        raise VmSetupError(f"no guest kernel: {boot_dir}/vmlinuz-* not found", "linux-image-amd64")
    for image in candidates:
        release = image.name[len("vmlinuz-"):]
        mods = modules_root / release
        if (mods / "modules.dep").is_file() and "virtio_balloon" in (mods / "modules.dep").read_text():
            if not os.access(image, os.R_OK):
                raise VmSetupError(f"{image} is not readable by this user (mode {oct(image.stat().st_mode & 0o777)}); "
                                   f"ask root to run: chmod 0644 {image}")
            return image, release, mods
    raise VmSetupError(f"kernel(s) {', '.join(p.name for p in candidates)} found but no matching "
                       f"{modules_root}/<release>/ with virtio_balloon", "linux-image-amd64")


def is_static_elf(head: bytes) -> bool:
    """True for an ELF64 executable without a PT_INTERP (program interpreter) header."""
    if head[:4] != b"\x7fELF" or head[4] != 2:
        return False
    phoff, = struct.unpack_from("<Q", head, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
    for i in range(phnum):
        off = phoff + i * phentsize
        if off + 4 > len(head):
            return False
        if struct.unpack_from("<I", head, off)[0] == 3:  # PT_INTERP
            return False
    return True


def find_busybox() -> Path:
    for p in (Path("/bin/busybox"), Path("/usr/bin/busybox")):
        if p.is_file():
            with open(p, "rb") as f:
                if is_static_elf(f.read(4096)):
                    return p
            raise VmSetupError(f"{p} is linked dynamically and cannot run alone in the guest", "busybox-static")
    raise VmSetupError("busybox not found", "busybox-static")


def find_inputs(boot_dir: Path = Path("/boot"), modules_root: Path = Path("/lib/modules"),
                packaged_root: Path | None = None) -> Inputs:
    """The build inputs; the kernel from /boot, or where this user cannot read it (Ubuntu installs
    vmlinuz 0600, so Binder's notebook user cannot), the one fetched by `packaged_kernel.fetch()`."""
    try:
        image, release, mods = find_kernel(boot_dir, modules_root)
    except VmSetupError as exc:
        found = packaged_kernel.find(packaged_root)
        if found is None:
            raise VmSetupError(f"{exc}; or, without root: {packaged_kernel.FETCH_COMMAND}") from None
        image, release, mods = found
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise VmSetupError("no C compiler (gcc) to build the guest agent", "gcc libc6-dev")
    mkfs = shutil.which("mkfs.ext4") or ("/sbin/mkfs.ext4" if Path("/sbin/mkfs.ext4").exists() else None)
    if not mkfs:
        raise VmSetupError("mkfs.ext4 not found (it makes the guest's disk)", "e2fsprogs")
    return Inputs(image, release, mods, find_busybox(), cc, mkfs)


# ---- modules --------------------------------------------------------------------------------

def parse_modules_dep(text: str) -> dict[str, tuple[str, list[str]]]:
    """modules.dep -> {module name: (relative path, [paths of its dependencies])}."""
    out: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        path, sep, deps = line.partition(":")
        if sep:
            out[module_name(path)] = (path.strip(), deps.split())
    return out


def module_name(path: str) -> str:
    base = Path(path).name
    base = re.sub(r"\.ko(\.(xz|gz|zst))?$", "", base)
    return base.replace("-", "_")


def parse_modules_builtin(text: str) -> set[str]:
    """modules.builtin -> names of the modules compiled into the kernel (nothing to load)."""
    return {module_name(line.strip()) for line in text.splitlines() if line.strip()}


def load_order(dep: dict[str, tuple[str, list[str]]], wanted: tuple[str, ...],
               builtin: set[str] = frozenset(), optional: tuple[str, ...] = ()) -> list[str]:
    """Module names in an order insmod accepts: each after all it depends on.

    Modules built into the kernel are skipped; an `optional` one is skipped where the kernel lacks it.
    """
    order: list[str] = []

    def visit(name: str, stack: tuple[str, ...]) -> None:
        if name in order or name in builtin or (not stack and name in optional and name not in dep):
            return
        if name not in dep:
            raise VmSetupError(f"kernel module {name} not in modules.dep (needed by {' <- '.join(stack) or 'the guest'}); "
                               f"this kernel build lacks it", "linux-image-amd64")
        for d in dep[name][1]:
            visit(module_name(d), stack + (name,))
        order.append(name)

    for w in wanted:
        visit(w, ())
    return order


def read_module(path: Path) -> bytes:
    """A module's bytes, uncompressed (busybox insmod takes plain .ko)."""
    data = path.read_bytes()
    if path.suffix == ".xz":
        return lzma.decompress(data)
    if path.suffix == ".gz":
        return gzip.decompress(data)
    if path.suffix == ".zst":
        zstd = shutil.which("zstd")
        if not zstd:
            raise VmSetupError(f"{path} is zstd-compressed and zstd is not installed", "zstd")
        return subprocess.run([zstd, "-dc", str(path)], check=True, capture_output=True).stdout
    return data


# ---- building -------------------------------------------------------------------------------

def _package_file(name: str) -> bytes:
    return resources.files(__package__).joinpath(name).read_bytes()


def input_key(inputs: Inputs, modules: list[tuple[str, Path]]) -> str:
    """A hash of everything the image is made of; a change in any of them means a rebuild."""
    h = hashlib.sha256(f"layout={BUILD_LAYOUT} disk={DISK_MIB}".encode())
    for p in [inputs.kernel_image, inputs.busybox] + [p for _, p in modules]:
        st = p.stat()
        h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    h.update(_package_file("agent.c"))
    h.update(_package_file("init.sh"))
    return h.hexdigest()[:16]


def build(inputs: Inputs | None = None, cache_dir: Path | None = None, with_disk: bool = True) -> GuestImage:
    """Build the guest (or reuse the cached one with the same inputs) and return its paths."""
    inputs = inputs or find_inputs()
    dep_file = inputs.modules_dir / "modules.dep"
    dep = parse_modules_dep(dep_file.read_text())
    builtin_file = inputs.modules_dir / "modules.builtin"
    builtin = parse_modules_builtin(builtin_file.read_text()) if builtin_file.is_file() else set()
    names = load_order(dep, WANTED_MODULES, builtin, OPTIONAL_MODULES)
    modules = [(n, inputs.modules_dir / dep[n][0]) for n in names]
    root = Path(cache_dir) if cache_dir else cache_root()
    out = root / f"{inputs.kernel_release}-{input_key(inputs, modules)}"
    disk = out / "disk.img" if with_disk else None
    if not ((out / "complete").exists() and (not with_disk or (out / "disk.img").exists())):
        _build_into(out, inputs, modules, with_disk)
    kernel = out / "vmlinux" if (out / "vmlinux").exists() else out / "vmlinuz"
    return GuestImage(out, kernel, out / "initramfs.gz", disk, inputs.kernel_release, kernel_source(inputs.kernel_image))


def kernel_source(image: Path) -> str:
    """Where a guest kernel came from, in words (recorded in each VM recording's metadata)."""
    if (image.parent / packaged_kernel.SOURCE_NAME).exists():  # extracted by packaged_kernel
        return packaged_kernel.DESCRIPTION
    return f"this machine's {image}"


def _build_into(out: Path, inputs: Inputs, modules: list[tuple[str, Path]], with_disk: bool) -> None:
    root = out.parent
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VmSetupError(f"cannot create the VM cache {root} ({exc.strerror}); set RECLAIMLAB_VM_CACHE "
                           f"to a writable folder") from None
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=root))
    try:
        vmlinux = pvh_vmlinux(inputs.kernel_image.read_bytes())
        if vmlinux is not None:
            (tmp / "vmlinux").write_bytes(vmlinux)
        else:
            shutil.copyfile(inputs.kernel_image, tmp / "vmlinuz")
        agent = _compile_agent(inputs.cc, tmp)
        (tmp / "initramfs.gz").write_bytes(gzip.compress(initramfs(inputs.busybox.read_bytes(), agent, modules),
                                                         compresslevel=6, mtime=0))
        (tmp / "agent").unlink()
        if with_disk:
            _make_disk(inputs.mkfs_ext4, tmp / "disk.img")
        (tmp / "complete").write_text(f"{inputs.kernel_release}\n")
        if out.exists():  # an older partial build of the same key (e.g. without the disk)
            shutil.rmtree(out)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(root, keep=out)


def _prune(root: Path, keep: Path) -> None:
    """Remove older builds (~70 MiB each). A VM still running from one keeps its open files."""
    for old in root.iterdir():
        if old != keep and old.is_dir() and re.fullmatch(r".+-[0-9a-f]{16}", old.name) and (old / "complete").exists():
            shutil.rmtree(old, ignore_errors=True)


XZ_MAGIC = b"\xfd7zXZ\x00"
GZIP_MAGIC = b"\x1f\x8b\x08"  # Alpine's linux-virt (the packaged kernel) is gzip-packed
PT_NOTE = 4
XEN_ELFNOTE_PHYS32_ENTRY = 18


def pvh_vmlinux(bzimage: bytes) -> bytes | None:
    """The uncompressed kernel inside an xz- or gzip-compressed bzImage, if it has a PVH entry point.

    QEMU boots such an ELF directly (-kernel vmlinux): under TCG this skips the emulated
    decompression and halves the boot (5.8 s -> 2.7 s measured here). None when the kernel
    is packed otherwise or lacks the entry; the bzImage is booted then.
    """
    elf = None
    start = bzimage.find(XZ_MAGIC)
    if start >= 0:
        try:
            elf = lzma.LZMADecompressor().decompress(bzimage[start:])
        except lzma.LZMAError:
            return None
    else:
        start = bzimage.find(GZIP_MAGIC)
        if start < 0:
            return None
        try:
            elf = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(bzimage[start:])  # stops at the member's end
        except zlib.error:
            return None
    return elf if has_pvh_note(elf) else None


def has_pvh_note(elf: bytes) -> bool:
    """True when an ELF64 has the Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)."""
    if len(elf) < 64 or elf[:4] != b"\x7fELF" or elf[4] != 2:  # shorter than an ELF64 header: not one
        return False
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, _flags, p_offset, _va, _pa, p_filesz = struct.unpack_from("<IIQQQQ", elf, phoff + i * phentsize)
        if p_type != PT_NOTE:
            continue
        pos, end = p_offset, p_offset + p_filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12:pos + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and ntype == XEN_ELFNOTE_PHYS32_ENTRY:
                return True
            pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def _compile_agent(cc: str, where: Path) -> bytes:
    src = where / "agent.c"
    src.write_bytes(_package_file("agent.c"))
    exe = where / "agent"
    proc = subprocess.run([cc, "-static", "-O2", "-pthread", "-o", str(exe), str(src)],
                          capture_output=True, text=True)
    src.unlink()
    if proc.returncode != 0:
        first = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        hint = " (static glibc missing?)" if "cannot find -lc" in proc.stderr else ""
        raise VmSetupError(f"compiling the guest agent failed{hint}: {first}", "libc6-dev")
    return exe.read_bytes()


def initramfs(busybox: bytes, agent: bytes, modules: list[tuple[str, Path]]) -> bytes:
    """The initramfs as an uncompressed newc archive."""
    entries = [cpio.directory(d) for d in ("bin", "dev", "proc", "sys", "mnt", "tmp", "lib", "lib/modules")]
    entries += [
        cpio.char_device("dev/console", 5, 1),  # so /init has a stdout before devtmpfs is mounted
        cpio.file("bin/busybox", busybox, 0o755),
        cpio.symlink("bin/sh", "busybox"),
        cpio.file("init", _package_file("init.sh"), 0o755),
        cpio.file("agent", agent, 0o755),
        cpio.file("modules.load", "".join(f"{n}\n" for n, _ in modules).encode()),
    ]
    entries += [cpio.file(f"lib/modules/{n}.ko", read_module(p)) for n, p in modules]
    return cpio.newc(entries)


def _make_disk(mkfs: str, path: Path) -> None:
    with open(path, "wb") as f:
        f.truncate(DISK_MIB << 20)
    # No journal: the guest's page cache is the lesson, not crash safety; and the disk is
    # opened with snapshot=on, so nothing written in a run survives it anyway.
    proc = subprocess.run([mkfs, "-q", "-F", "-O", "^has_journal", "-L", "reclaimlab", str(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise VmSetupError(f"mkfs.ext4 failed: {proc.stderr.strip()[:200]}", "e2fsprogs")
