"""python -m reclaimlab.vm check | fetch-kernel | run NAME [--reporting on|off] [--size BYTES] [--mem BYTES] [--out DIR]"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..control import lock as guestlock
from ..recording import keep
from ..recording.recording import RecordingError, check_out
from ..units import parse_size
from . import availability, build, machine, packaged_kernel
from .errors import VmError
from .experiments import DEFAULTS, run_vm_experiment


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reclaimlab.vm", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check", help="say whether the VM can run here, build it and boot it once")
    sub.add_parser("fetch-kernel", help="fetch a guest kernel readable by this user (where /boot's is root's only)")
    r = sub.add_parser("run", help="run an experiment in the VM")
    r.add_argument("name", choices=sorted(DEFAULTS))
    r.add_argument("--reporting", choices=("on", "off"), default="on")
    r.add_argument("--size", help="allocation / file size, e.g. 768MiB (default: fits the guest)")
    r.add_argument("--mem", help="guest RAM, e.g. 2GiB (default: fits this process)")
    r.add_argument("--out", help="save the Recording to this new folder (checked before the VM boots; if it "
                                 "cannot be written at the end, the run is kept in ~/.cache/reclaimlab/unsaved/)")
    args = ap.parse_args(argv)
    if args.cmd == "run" and args.out is not None:  # '' is a (bad) --out too, not "no --out"
        try:
            check_out(args.out, name=args.name)  # refuse before booting, so a run never ends with nowhere to go
        except RecordingError as exc:
            print(f"kit VM: --out {exc}", file=sys.stderr)
            return 2
    try:
        if args.cmd == "check":
            reason = availability()
            if reason:
                print(f"kit VM: cannot run here: {reason}")
                return 1
            t0 = time.monotonic()
            image = build.build()
            print(f"kit VM: built/reused {image.dir} in {time.monotonic() - t0:.1f} s")
            with machine.Machine(image, mem_mib=1024) as vm:
                print(f"kit VM: booted in {vm.boot_s:.1f} s under {vm.accel.hypervisor} ({vm.accel.reason}); "
                      f"guest kernel {vm.hello.fields.get('kernel')}, page_reporting_order "
                      f"{vm.hello.fields.get('page_reporting_order')}, QEMU resident {vm.host_rss_kib()[0]} KiB")
            return 0
        if args.cmd == "fetch-kernel":
            image, release, _mods = packaged_kernel.fetch()
            print(f"kit VM: guest kernel {release} in {image.parent}")
            return 0
        with guestlock.hold(args.name, guest="vm"):  # the same one-at-a-time rule as experiments.run
            rec = run_vm_experiment(args.name, reporting=args.reporting == "on",
                                    size_bytes=parse_size(args.size) if args.size else None,
                                    mem_bytes=parse_size(args.mem) if args.mem else None, quiet=False)
        print(rec.meta["results"])
        return _keep(rec, args.out, args.name) if args.out is not None else 0
    except (VmError, ValueError, guestlock.GuestBusy) as exc:
        print(f"kit VM: {exc}", file=sys.stderr)
        return 1


def _keep(rec, out: str, name: str) -> int:
    """Save the run in --out, else in the user's cache; say where (or what was lost); the exit status."""
    kept = keep.save_or_keep(rec, Path(out), name)
    if kept.where_asked:
        print(f"saved to {kept.path}")
    elif kept.path is not None:
        print(f"kit VM: {kept.detour()}", file=sys.stderr)
    else:
        print(f"kit VM: {keep.lost(kept, rec)}", file=sys.stderr)
    if kept.signals:
        print(f"kit VM: {keep.held(kept.signals)}", file=sys.stderr)
    return kept.exit_status


if __name__ == "__main__":
    sys.exit(main())
