"""`reclaimlab record NAME`: run one experiment and save its Recording.

    reclaimlab record calloc-reclaim --size 3GB --out build/my-run
    reclaimlab record page-cache --allow-system-changes --to-data     # a new shipped dataset

Ctrl-C stops the workload, frees its memory and saves what was sampled, marked partial so
it can never pass for a complete run: in --out, or else in a new folder under
~/.cache/reclaimlab/unsaved/ (the message says which). A finished run that cannot be saved in
--out (disk full, no permission) is kept there too, and the message says how to move or load it;
a Ctrl-C or SIGTERM during the save is held until the save is done (exit status 130 / 143).

While another live experiment runs on this guest, it waits (up to --wait seconds) and says
which one; recorded mode never waits.
"""
from __future__ import annotations

import datetime as _dt
import math
import sys
from pathlib import Path

import click

from ..recording import datasets, keep, recording
from ..control import lock as guestlock
from ..experiments.harness import MODES, ExperimentError, ExperimentInterrupted, ExperimentRefused, get, run
from ..paths import recordings_dir
from .errors import UserError


def _parse_params(pairs: tuple[str, ...]) -> dict:
    params: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.UsageError(f"--param {pair!r}: write it as name=value, e.g. --param observe_s=30")
        key, value = key.strip(), value.strip()
        # A size stays text, as --size passes it: parse_size reads "1e999" and "3GB" alike, with their limits.
        params[key] = value if key == "size" else _coerce(value)
    return params


def _save_partial(rec: "recording.Recording | None", out: Path | None, name: str) -> str:
    """Save an interrupted run's recording (marked partial) and say where, or why it could not be."""
    if rec is None:
        return "nothing was sampled before the interruption, so nothing was saved"
    kept = keep.save_or_keep(rec, out, name)
    if kept.path is None:
        return keep.lost(kept, rec)
    said = f"what was sampled so far is saved in {kept.path}, marked partial so that it never passes for a whole run"
    return "; ".join(filter(None, [said, kept.detour()]))


def _coerce(value: str):
    """'30' -> 30, '2.5' -> 2.5, 'true' -> True; anything else (also 'nan', '1e999') stays text, so the
    experiment's own check names it as typed rather than as float('inf')."""
    for cast in (int, float):
        try:
            number = cast(value)
        except ValueError:
            continue
        if math.isfinite(number):
            return number
        return value
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def experiments_help() -> str:
    """The experiments NAME may be, each with its parameters (units, defaults) and needs: from the catalog."""
    from .. import catalog
    lines = []
    for name, exp in catalog.REGISTRY.items():
        params = ", ".join(f"{k}={v!r} ({exp.unit_of(k)})" if not exp.unit_of(k).startswith("size")
                           else f"{k}={v!r}" for k, v in exp.defaults.items())
        needs = ", ".join(exp.needs) or "nothing"
        lines.append(f"{name}: {exp.summary}. Parameters: {params}. Needs: {needs}"
                     + ("; consent (system-wide knobs)" if exp.needs_consent else "")
                     + (f". Kit's VM timings: {', '.join(f'{k}={v!r}' for k, v in exp.vm_defaults.items())}"
                        if exp.vm_defaults else "")
                     + (f". Labs: {', '.join(exp.labs)}" if exp.labs else "") + ".")
    return "\n\n".join(lines)


class _RecordCommand(click.Command):
    """`record --help` lists the experiments declared when it is shown, not when this module was imported."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_help_text(ctx, formatter)
        with formatter.section("Experiments"):
            for paragraph in experiments_help().split("\n\n"):
                formatter.write_text(paragraph)
                formatter.write_paragraph()


@click.command("record", cls=_RecordCommand)
@click.argument("name", metavar="NAME")
@click.option("--mode", type=click.Choice(MODES), default="live", show_default=True,
              help="live: run it here or refuse; auto: live where possible, else load the shipped recording.")
@click.option("--size", default=None, help="The experiment's size, e.g. 3GB (SI), 3GiB, 512MiB.")
@click.option("--policy", default=None, help="auto-reclaim only: gradual or dropCache.")
@click.option("--param", "param_pairs", multiple=True, metavar="NAME=VALUE", help="Any other parameter (repeatable).")
@click.option("--guest", type=click.Choice(["local", "vm"]), default="local", show_default=True,
              help="local: this machine; vm: the kit's own QEMU guest.")
@click.option("--allow-system-changes", is_flag=True,
              help="Permit drop_caches / compaction / reclaim (root, on a machine that is yours).")
@click.option("--out", "out_text", type=click.Path(file_okay=False), default=None,
              help="Save the Recording in this new folder (if it cannot be written at the end, in "
                   "~/.cache/reclaimlab/unsaved/, and the message says where).")
@click.option("--to-data", is_flag=True, help="Save it as a shipped dataset under data/recordings/NAME/ and re-index.")
@click.option("--wait", "wait_s", type=click.FloatRange(min=0), default=guestlock.DEFAULT_TIMEOUT_S, show_default=True,
              metavar="SECONDS", help="While another live experiment runs on this guest, wait this long for it, "
                                      "then give up (0: do not wait).")
def record_command(name: str, mode: str, size: str | None, policy: str | None, param_pairs: tuple[str, ...],
                   guest: str, allow_system_changes: bool, out_text: str | None, to_data: bool,
                   wait_s: float) -> None:
    """Run experiment NAME (listed below) and show, or save, its Recording."""
    try:
        get(name)
    except ExperimentError as exc:
        raise click.UsageError(str(exc))
    out = None if out_text is None else Path(out_text)
    params = _parse_params(param_pairs)
    if size is not None:
        params["size"] = size
    if policy is not None:
        params["policy"] = policy
    if to_data:
        if out is not None:
            raise click.UsageError("--to-data picks the folder itself; drop --out")
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        variant = "-".join(str(params[k]) for k in get(name).variant_keys if k in params)
        if guest == "vm":
            variant = "reporting-" + ("on" if params.get("reporting", True) else "off")
            if params.get("page_reporting_order") is not None:
                variant += f"-order{params['page_reporting_order']}"
            if params.get("then_order") is not None:
                variant += f"-then{params['then_order']}"
        out = recordings_dir() / name / "-".join(p for p in (stamp, guest, variant) if p)
    if out is not None:
        try:  # refuse before any work, so a long run never ends with nowhere to go ('' stays '', not '.')
            recording.check_out(out_text if out_text is not None else out, name=name)
        except recording.RecordingError as exc:
            raise UserError(f"--out {exc}") from None
    try:
        rec = run(name, mode, guest=guest, allow_system_changes=allow_system_changes or None,
                  lock_timeout_s=wait_s, **params)
    except (ExperimentError, ExperimentRefused, ValueError) as exc:
        raise UserError(str(exc)) from None
    except ExperimentInterrupted as exc:
        click.echo(f"reclaimlab: {exc}", err=True)
        click.echo(_save_partial(exc.recording, out, name), err=True)
        sys.exit(130)
    with keep.signals_deferred() as held:  # a Ctrl-C or `kill` now must not lose the finished run
        _show(rec)
        if out is not None and rec.is_recorded:
            raise click.ClickException("that was a recording loaded from data/, not a new run; nothing saved")
        kept = keep.save_or_keep(rec, out, name) if out is not None else None
    if kept is not None:
        _report_save(kept, rec, to_data)
    signals = held + list(kept.signals if kept is not None else ())
    if signals:
        click.echo(f"reclaimlab record: {keep.held(signals)}", err=True)
        sys.exit(128 + signals[0])
    if kept is not None and kept.exit_status:
        sys.exit(kept.exit_status)


def _show(rec: "recording.Recording") -> None:
    click.echo(f"{len(rec.samples)} samples, {len(rec.events)} events; {rec.describe_source()}")
    results = rec.meta.get("results") or {}
    for key, value in results.items():
        click.echo(f"  {key:<34} {value}")
    for notice in rec.meta.get("notices") or []:
        click.echo(f"  notice: {notice}")


def _report_save(kept: keep.Kept, rec: "recording.Recording", to_data: bool) -> None:
    """Say where the recording went: --out, the cache (and why), or nowhere (and what was lost)."""
    if kept.where_asked:
        click.echo(f"saved to {kept.path}")
        if to_data:
            click.echo(f"re-indexed {datasets.rebuild_index()}")
    elif kept.path is not None:
        click.echo(f"reclaimlab record: {kept.detour()}", err=True)
    else:
        click.echo(f"reclaimlab record: {keep.lost(kept, rec)}", err=True)
