"""`reclaimlab labs`: execute every lab with papermill, as CI and instructors do.

Executed copies go to build/labs/ (ignored by git); the committed notebooks stay
without outputs. Stops at the first failing lab, naming the lab and the cell.
"""
from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import click

from ..experiments.registry import MODES  # the one place the modes are named
from ..paths import labs_dir


def lab_notebooks(directory: Path, only: tuple[str, ...] = ()) -> list[Path]:
    labs = sorted(p for p in directory.glob("[0-9][0-9]_*.ipynb"))
    if only:
        labs = [p for p in labs if any(p.stem.startswith(o) or p.stem == o for o in only)]
    return labs


def executed_dir(directory: Path, mode: str) -> Path:
    """Where `reclaimlab labs --mode <mode>` writes its executed copies by default."""
    return directory.parent / "build" / "labs" / mode


def executed_since(labs: list[Path], out_dir: Path, epoch_s: float) -> bool:
    """Every lab has an executed copy in out_dir written at or after epoch_s (so a later CI stage can
    open the copies an earlier one made in this run instead of executing the labs again)."""
    copies = [out_dir / lab.name for lab in labs]
    return bool(labs) and all(c.exists() and c.stat().st_mtime >= epoch_s for c in copies)


def lab_parameters(mode: str, allow_system_changes: bool = False, extra: dict | None = None) -> dict:
    """What papermill puts into a lab's parameters cell. allow_system_changes=False leaves consent to
    RECLAIMLAB_ALLOW_SYSTEM_CHANGES, as a lab's own default does: live mode alone is no consent."""
    return {"mode": mode, "allow_system_changes": allow_system_changes is True, **(extra or {})}


def consent_notice(mode: str, allow_system_changes: bool, env=None, guest: str | None = None,
                   stems: tuple[str, ...] | None = None) -> str | None:
    """Said before a live run: where its knob labs (02-04) run without consent and where live mode stops.
    guest: the --guest given (None: each lab's own, auto); stems: the labs to run (None: all)."""
    from ..probe import consent
    if mode != "live":
        return None
    no_vm = _no_vm_version(stems)
    stops = f"; {no_vm} has no version for the kit's VM, so live mode stops there with the reason" if no_vm else ""
    if guest == "vm":  # every experiment runs in the kit's VM, whose knobs are its own: no consent asked
        return (f"note: --guest vm runs every experiment in the kit's VM, whose system-wide knobs are its own"
                f"{stops} (--mode auto shows its recording)") if no_vm else None
    if allow_system_changes or consent.changes_allowed(None, *([env] if env is not None else [])):
        return None
    if guest == "local":
        return (f"note: no consent to turn system-wide knobs, so live mode stops at the first lab that turns them "
                f"(02-04) with the reason; on a machine that is yours add --allow-system-changes, or use --mode auto "
                f"to see their recordings")
    return (f"note: no consent to turn this machine's system-wide knobs, so labs 02-04 run those experiments in the "
            f"kit's VM where it boots here, else live mode stops at the first lab that turns them with the "
            f"reason{stops}; on a machine that is yours add --allow-system-changes, or use --mode auto to see "
            f"their recordings")


def _no_vm_version(stems: tuple[str, ...] | None) -> str:
    """The experiments of these labs (None: all) that have no version for the kit's VM, e.g. "app-cache (lab 02)"."""
    from .. import catalog
    from ..notebook.plan import has_vm_version
    missing = [f"{name} (lab {exp.labs[0][:2]})" for name, exp in catalog.REGISTRY.items()
               if not has_vm_version(name) and (stems is None or set(exp.labs) & set(stems))]
    return ", ".join(missing)


def takes_guest(notebook: Path) -> bool:
    """Whether the lab's parameters cell sets `guest` (labs 01-04), so --guest is passed to it."""
    import json
    cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    return any("parameters" in (c.get("metadata", {}).get("tags") or []) and
               any(line.startswith("guest =") for line in "".join(c.get("source", "")).splitlines())
               for c in cells)


@contextlib.contextmanager
def local_kernel() -> Iterator[dict[str, Any]]:
    """papermill's keyword arguments for a kernel reached over Unix sockets in a private folder, not TCP.

    Over TCP every kernel logs ipykernel's "running over TCP without encryption" warning to our
    stderr, into the table `reclaimlab labs` prints; a socket in a 0700 folder needs no such warning.
    The folder is short (/tmp/...): a socket's path must stay under 108 bytes.
    """
    from traitlets.config import Config
    with tempfile.TemporaryDirectory(prefix="reclaimlab-kernel-") as folder:
        yield {"config": Config({"KernelManager": {"transport": "ipc", "ip": str(Path(folder) / "k")}})}


def execute_lab(notebook: Path, out_dir: Path, mode: str, extra: dict | None = None, *,
                allow_system_changes: bool = False) -> tuple[float, int]:
    """Run one lab; return (seconds, bytes of the executed copy). Raises click.ClickException on failure."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    out = out_dir / notebook.name
    params = lab_parameters(mode, allow_system_changes, extra)
    t0 = time.monotonic()
    try:
        with local_kernel() as kernel:
            pm.execute_notebook(str(notebook), str(out), parameters=params, cwd=str(notebook.parent),
                                kernel_name="python3", progress_bar=False, log_output=False, **kernel)
    except PapermillExecutionError as exc:
        raise click.ClickException(f"{notebook.name}: cell {exc.exec_count} failed: {exc.ename}: "
                                   f"{str(exc.evalue).splitlines()[0] if exc.evalue else ''} "
                                   f"(executed copy with the traceback: {out})") from None
    return time.monotonic() - t0, out.stat().st_size


@click.command("labs")
@click.option("--mode", type=click.Choice(MODES), default="auto", show_default=True,
              help="recorded: shipped data only; live: run every experiment here (needs root); auto: live where possible.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where executed copies go [default: build/labs/<mode>].")
@click.option("--only", multiple=True, help="Run only labs whose name starts with this (repeatable), e.g. --only 01.")
@click.option("--guest", type=click.Choice(("auto", "local", "vm")), default=None,
              help="Where labs with a `guest` parameter run live: auto (here, else the kit's VM, else a recording), "
                   "local, or vm [default: each lab's own, auto].")
@click.option("--allow-system-changes", is_flag=True,
              help="Let live runs turn system-wide knobs: drop_caches, compaction, reclaim (root, on a machine "
                   "that is yours; never on a shared one). Without it (and without RECLAIMLAB_ALLOW_SYSTEM_CHANGES=1), "
                   "--mode live stops at the first lab that turns them, saying why; --mode auto shows their recordings.")
def labs_command(mode: str, out_dir: Path | None, only: tuple[str, ...], allow_system_changes: bool,
                 guest: str | None = None) -> None:
    """Execute every lab with papermill and report each one's time and size."""
    directory = labs_dir()
    notebooks = lab_notebooks(directory, only)
    if not notebooks:
        raise click.UsageError(f"no labs matched in {directory}" + (f" for --only {' '.join(only)}" if only else ""))
    out_dir = out_dir or executed_dir(directory, mode)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.UsageError(f"--out {out_dir}: cannot create it ({exc.strerror})")
    notice = consent_notice(mode, allow_system_changes, guest=guest, stems=tuple(nb.stem for nb in notebooks))
    if notice:
        click.echo(notice)
    total_s = 0.0
    for nb in notebooks:
        click.echo(f"{nb.name:<32} ", nl=False)
        sys.stdout.flush()
        extra = {"guest": guest} if guest is not None and takes_guest(nb) else None
        seconds, size = execute_lab(nb, out_dir, mode, extra, allow_system_changes=allow_system_changes)
        total_s += seconds
        click.echo(f"ok  {seconds:6.1f} s  {size / 1e6:5.2f} MB")
    click.echo(f"{len(notebooks)} labs passed in {total_s:.1f} s ({mode} mode); executed copies in {out_dir}")
