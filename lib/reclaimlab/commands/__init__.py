"""Subcommands of `reclaimlab`, one module each. Add a command by listing it in COMMANDS."""
from __future__ import annotations

COMMANDS: list = []
