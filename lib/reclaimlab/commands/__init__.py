"""Subcommands of `reclaimlab`, one module each. Add a command by listing it in COMMANDS."""
from __future__ import annotations

from .doctor import doctor
from .labs import labs_command

COMMANDS: list = [doctor, labs_command]
