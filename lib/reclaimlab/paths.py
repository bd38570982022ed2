"""Where the kit's own files are: the labs and the recorded datasets; and its cache in the user's home.

The kit is installed editable (`pip install -e .`, as tasks.py and binder/ do), so
labs/ and data/ sit beside lib/. RECLAIMLAB_DATA and RECLAIMLAB_LABS override that.
"""
from __future__ import annotations

import os
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    return Path(os.environ.get("RECLAIMLAB_DATA") or CHECKOUT / "data")


def recordings_dir() -> Path:
    return data_dir() / "recordings"


def labs_dir() -> Path:
    return Path(os.environ.get("RECLAIMLAB_LABS") or CHECKOUT / "labs")


def cache_dir() -> Path:
    """The kit's folder in the user's cache: $XDG_CACHE_HOME/reclaimlab, else ~/.cache/reclaimlab."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says a relative value is invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "reclaimlab"
