"""`reclaimlab wslconfig PATH`: check a .wslconfig for the pitfalls users keep hitting.

Exit codes: 0 no errors (warnings and notes may be printed), 1 errors found, 2 the file cannot be read.
"""
from __future__ import annotations

from pathlib import Path

import click

from .. import units as sizes
from ..wsl.wslconfig import WslConfigError, check, format_findings, has_errors, parse_size_bytes


@click.command("wslconfig")
@click.argument("path", type=click.Path(dir_okay=True, path_type=str))
@click.option("--host-memory", default=None, metavar="SIZE",
              help="The Windows host's memory (e.g. 32GB, read as WSL does: GB = 2^30), to check memory= against it.")
@click.option("--host-cpus", type=click.IntRange(min=1), default=None,
              help="The Windows host's logical processors, to check processors= against them.")
@click.pass_context
def wslconfig_command(ctx: click.Context, path: str, host_memory: str | None, host_cpus: int | None) -> None:
    """Check a .wslconfig file (usually %UserProfile%\\.wslconfig) and print each problem with its fix."""
    host_memory_bytes = None
    if host_memory is not None:
        try:  # WSL's own spelling first (GB = 2^30), then the kit's (3GB = 3*10^9, 3GiB); parse_size bounds both
            host_memory_bytes = sizes.parse_size(parse_size_bytes(host_memory.strip()) or host_memory)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--host-memory") from None
    try:
        findings = check(Path(path), host_memory_bytes=host_memory_bytes, host_cpus=host_cpus)
    except WslConfigError as exc:
        click.echo(f"Error: {exc}", err=True)
        ctx.exit(2)
    click.echo(format_findings(findings, path))
    ctx.exit(1 if has_errors(findings) else 0)
