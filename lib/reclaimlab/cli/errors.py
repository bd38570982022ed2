"""The one error type every subcommand raises for problems the user can fix."""
from __future__ import annotations

import click


class UserError(click.ClickException):
    """One line on stderr naming the problem and the fix; exit code 2 (like a usage error)."""

    exit_code = 2
