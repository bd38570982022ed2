"""Fast repeated reads of the kernel's 'name value' files, for the sampler.

A sampler reads the same few fields of /proc/meminfo, /proc/vmstat and a cgroup's
memory.stat hundreds of times a second, so the reading itself must cost little more
than the kernel's own work of producing the text (the "floor": one `os.pread` on a
descriptor kept open). Measured here (ci/bench): splitting all of /proc/vmstat into
tokens costs ~7 µs, a third of the floor; finding each field with `bytes.find` costs
~0.4 µs per field. So:

- the descriptor stays open and each read is one `os.pread` at offset 0 (a seq_file
  regenerates its text on every read from offset 0);
- at open, the wanted fields are grouped into "windows" of nearby lines; a read finds
  each window's first line (searching from where it was last time), splits only that
  window and takes values by token index (`operator.itemgetter`, in C);
- every read verifies the field names at those indices; on any mismatch (a field
  moved, a number grew past the window) it re-indexes from the full text, so the
  result is always the named field's value or None, never a neighbour's.

Fields absent at open are not columns (never invented); a field that vanishes later
reads as None. The pure parsers in `procfs` remain the reference for correctness
(the slow path uses them), and the tests compare the two on captured files.
"""
from __future__ import annotations

import os
import re
from operator import itemgetter
from pathlib import Path
from typing import Callable, Mapping

from . import procfs
from .sources import SourceError

# Wanted fields closer than this many tokens share one window: splitting a token costs
# ~20 ns, a window's own overhead (find, slice, split call) ~0.5 µs.
_MERGE_GAP_TOKENS = 24
# Room for numbers to grow digits before a window must be re-indexed.
_WINDOW_SLACK_BYTES = 64
# How far back of its last position a window's first line is searched for.
_FIND_BACK_BYTES = 256
_TOKEN = re.compile(rb"\S+")


def open_readonly(path: Path) -> int:
    """A kept descriptor on `path`; SourceError naming the file when it cannot be opened."""
    try:
        return os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise SourceError(f"{path}: not found; this kernel or container does not provide it") from None
    except PermissionError:
        raise SourceError(f"{path}: permission denied; run as a user who may read it") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot open ({exc.strerror})") from None


class KeptFile:
    """One file held open and re-read with os.pread; grows its buffer as needed."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fd: int | None = open_readonly(self.path)
        self._bufsize = 4096
        first = self.read()
        # Twice the current size: a read that fills the buffer is retried, which doubles the cost.
        while self._bufsize < 2 * len(first):
            self._bufsize *= 2

    def read(self, prefix_bytes: int | None = None) -> bytes:
        """The whole file, or only its first `prefix_bytes` (a seq_file then formats less)."""
        if self._fd is None:
            raise SourceError(f"{self.path}: read after close")
        try:
            if prefix_bytes is not None:
                return os.pread(self._fd, prefix_bytes, 0)
            while True:
                data = os.pread(self._fd, self._bufsize, 0)
                if len(data) < self._bufsize:
                    return data
                self._bufsize *= 2  # the file outgrew the buffer: read it whole
        except OSError as exc:
            raise SourceError(f"{self.path}: cannot read ({exc.strerror})") from None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:  # a forgotten reader must not leak its descriptor
        try:
            self.close()
        except Exception:
            pass


def read_number(kept: KeptFile) -> int | None:
    """A single-number file (cgroup memory.current, a module parameter); None for 'max'."""
    data = kept.read()
    try:
        return int(data)
    except ValueError:
        return procfs.parse_cgroup_number(data.decode("ascii", "replace"), str(kept.path))


class _Miss(Exception):
    """The fast path's guess about the layout did not hold; re-index."""


class _Window:
    """A run of nearby wanted lines: where it starts, how long it is, which tokens to take."""

    __slots__ = ("anchor", "find_from", "span", "need", "names_at", "values_at", "names")

    def __init__(self, anchor: bytes | None, lo: int, span: int, name_idx: list[int], names: tuple[bytes, ...]):
        self.anchor = anchor            # b"\n" + first token + its separator; None at offset 0
        self.find_from = max(lo - _FIND_BACK_BYTES, 0)
        self.span = span
        # The token after the last value must be in the slice too: then that value was not cut.
        self.need = name_idx[-1] + 3
        self.names = names
        self.names_at = _getter(name_idx)
        self.values_at = _getter([i + 1 for i in name_idx])


def _getter(idx: list[int]) -> Callable[[list[bytes]], tuple[bytes, ...]]:
    if len(idx) == 1:
        i = idx[0]
        return lambda t: (t[i],)
    return itemgetter(*idx)


class FieldReader:
    """The wanted fields of a 'name value' file, read fast; `.columns` are those present.

    fields: {name as the file spells it (without ':'): column name}. For /proc/meminfo
    pass name_suffix=":" (its lines are 'MemFree:  123 kB'; the unit stays KiB).
    `read()` returns a tuple of ints aligned with `.columns` (None: the field vanished).
    """

    def __init__(self, path: str | os.PathLike, fields: Mapping[str, str], *, name_suffix: str = "",
                 parse: Callable[[str, str], dict[str, int]] = procfs.parse_flat_keyed):
        self._file = KeptFile(path)
        self.path = self._file.path
        self._suffix = name_suffix.encode()
        self._parse = parse
        data = self._file.read()
        present = self._reference(data)
        # Columns in file order, so the fast path's values come out in column order.
        order = {n: i for i, n in enumerate(present)}
        wanted = sorted((n for n in fields if n in order), key=order.__getitem__)
        self.names: tuple[str, ...] = tuple(wanted)
        self.columns: tuple[str, ...] = tuple(fields[n] for n in wanted)
        self._tokens = tuple(n.encode() + self._suffix for n in wanted)
        self._windows: list[_Window] | None = None
        self._prefix_bytes: int | None = None
        self.reindexes = 0  # how often the layout guess failed (for tests and the bench)
        self._index(data)

    @property
    def prefix_bytes(self) -> int | None:
        """How much of the file a fast read asks for (None: all of it)."""
        return self._prefix_bytes

    def _reference(self, data: bytes) -> dict[str, int]:
        return self._parse(data.decode("ascii", "replace"), str(self.path))

    def _index(self, data: bytes) -> None:
        """Build the windows from the full text; None (slow path) when a field is missing."""
        self.reindexes += 1
        self._windows, self._prefix_bytes = None, None
        spans = [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(data)]
        where: dict[bytes, int] = {}
        for i, (tok, _s, _e) in enumerate(spans):
            where.setdefault(tok, i)
        idx = [where.get(t, -1) for t in self._tokens]
        # Each value must be followed by another token (see _Window.need); a wanted field on
        # the file's last line, a missing field or a changed order take the slow path.
        if not idx or min(idx) < 0 or max(idx) + 2 >= len(spans) or idx != sorted(idx):
            return
        groups: list[list[int]] = [[idx[0]]]
        for i in idx[1:]:
            if i - groups[-1][-1] <= _MERGE_GAP_TOKENS:
                groups[-1].append(i)
            else:
                groups.append([i])
        windows, k, end = [], 0, 0
        for g in groups:
            first = g[0]
            lo = spans[first][1]
            hi = spans[g[-1] + 2][2]
            if lo == 0:
                anchor = None
            elif data[lo - 1:lo] == b"\n":
                anchor = data[lo - 1:spans[first][2] + 1]
            else:  # a name not at the start of a line: not a 'name value' file as we know it
                return
            span = hi - lo + _WINDOW_SLACK_BYTES
            windows.append(_Window(anchor, lo, span, [i - first for i in g], self._tokens[k:k + len(g)]))
            k += len(g)
            end = max(end, lo + span)
        self._windows = windows
        prefix = end + _FIND_BACK_BYTES
        if prefix < len(data) * 0.9:  # worth it only where a good part of the file is skipped
            self._prefix_bytes = prefix

    def read(self) -> tuple[int | None, ...]:
        if self._windows is not None:
            data = self._file.read(self._prefix_bytes)
            try:
                return self._fast(data)
            except (_Miss, IndexError, ValueError):
                pass
            if self._prefix_bytes is not None:
                data = self._file.read()
            self._index(data)
            if self._windows is not None:
                try:
                    return self._fast(data)
                except (_Miss, IndexError, ValueError):
                    self._windows = None  # stay on the slow path: it names what is wrong
            return self._slow(data)
        return self._slow(self._file.read())

    def _fast(self, data: bytes) -> tuple[int, ...]:
        out: list[int] = []
        for w in self._windows:  # type: ignore[union-attr]
            if w.anchor is None:
                lo = 0
            else:
                lo = data.find(w.anchor, w.find_from)
                if lo < 0:
                    lo = data.find(w.anchor)  # moved back further than we search
                    if lo < 0:
                        raise _Miss
                lo += 1
            t = data[lo:lo + w.span].split()
            if len(t) < w.need or w.names_at(t) != w.names:
                raise _Miss
            out.extend(map(int, w.values_at(t)))
        return tuple(out)

    def _slow(self, data: bytes) -> tuple[int | None, ...]:
        values = self._reference(data)
        return tuple(values.get(n) for n in self.names)

    def close(self) -> None:
        self._file.close()


def meminfo_reader(path: str | os.PathLike, fields: Mapping[str, str]) -> FieldReader:
    return FieldReader(path, fields, name_suffix=":", parse=procfs.parse_meminfo)


def flat_reader(path: str | os.PathLike, fields: Mapping[str, str]) -> FieldReader:
    """/proc/vmstat, cgroup memory.stat: 'name value' lines."""
    return FieldReader(path, fields, parse=procfs.parse_flat_keyed)
