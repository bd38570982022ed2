"""Where the kit's VM keeps what it builds and fetches (one place, so build and fetch agree)."""
from __future__ import annotations

import os
from pathlib import Path

from ..paths import cache_dir


def cache_root() -> Path:
    """The VM builds: RECLAIMLAB_VM_CACHE, else ~/.cache/reclaimlab/vm (XDG_CACHE_HOME honoured)."""
    env = os.environ.get("RECLAIMLAB_VM_CACHE")
    if env:
        return Path(env)
    return cache_dir() / "vm"
