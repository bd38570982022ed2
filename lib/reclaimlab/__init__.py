"""reclaimlab: watch a Linux guest take memory from its host and give it back."""
from __future__ import annotations

__version__ = "0.1.0"
