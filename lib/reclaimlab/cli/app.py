"""The `reclaimlab` command: doctor | watch | record | labs | wslconfig | map.

Each subcommand is a module beside this one (cli/__init__.py lists them); this module only gathers them.
Errors the user can fix exit with code 2 and one line naming the problem and the fix.
"""
from __future__ import annotations

import click

from .. import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reclaimlab")
def main() -> None:
    """A teaching kit: watch a Linux guest take memory from its host and give it back."""


def _register() -> None:
    # Imported here so `reclaimlab --help` names every command, and a broken optional
    # command never hides the others.
    from . import COMMANDS
    for command in COMMANDS:
        main.add_command(command)


_register()
