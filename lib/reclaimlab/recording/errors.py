"""The errors of reading and writing recordings, apart from recording.py so that the files it reads
(recording.physmap's maps among them) can raise them without importing it."""
from __future__ import annotations


class RecordingError(ValueError):
    """A recording cannot be saved or loaded; the message names the file and the problem."""


class RecordingWarning(UserWarning):
    """A recording loaded without being verified (no manifest.json), because the caller asked for it."""
