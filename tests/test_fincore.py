"""fincore: our file's own pages in memory, via mincore(2)."""
from __future__ import annotations

import os

from reclaimlab.probe import fincore


def test_counts_a_files_resident_pages_and_sees_them_dropped():
    import shutil
    import tempfile

    from reclaimlab.control import scratch
    size = 8 << 20
    # On a disk-backed folder (tmpfs pages are shared memory, which DONTNEED never drops)
    folder = tempfile.mkdtemp(prefix="fincore-test.", dir=scratch.scratch_base(size))
    try:
        _check(os.path.join(folder, "f.bin"), size)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _check(path, size):
    with open(path, "wb") as f:
        f.write(os.urandom(size))
        f.flush()
        os.fsync(f.fileno())   # clean pages: the kernel may drop them when asked
    resident, pages = fincore.resident_pages(path)
    assert pages == size // os.sysconf("SC_PAGE_SIZE")
    assert resident == pages          # just written: all in the page cache
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    after = fincore.resident_kib(path)
    assert after is not None and after < size // 1024 // 2, after


def test_a_missing_or_empty_file_reads_as_nothing(tmp_path):
    assert fincore.resident_kib(tmp_path / "gone") is None
    (tmp_path / "empty").write_bytes(b"")
    assert fincore.resident_pages(tmp_path / "empty") == (0, 0)
    col = fincore.FileResident()
    assert col.read() is None and col.column == "workload_file_resident_kib"
