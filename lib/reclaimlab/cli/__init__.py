"""Subcommands of `reclaimlab`, one module each. Add a command by listing it in COMMANDS."""
from __future__ import annotations

from .doctor import doctor
from .labs import labs_command
from .map import map_command
from .record import record_command
from .watch import watch_command
from .wslconfig import wslconfig_command

COMMANDS: list = [doctor, watch_command, record_command, labs_command]
COMMANDS.append(wslconfig_command)
COMMANDS.append(map_command)
