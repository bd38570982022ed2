"""What an experiment is, declared once: `Experiment`, and the registry every other stage derives from.

    from reclaimlab import catalog
    catalog.declare(Experiment("toy", "...", defaults={"size": "64MiB", "hold_s": 1.0}, ...))
    catalog.get("toy"); catalog.names(); catalog.withdraw("toy")

The probe reports what the machine has; a declaration says what its experiment needs (`needs`, from
NEEDS), and `experiments.verdicts` judges one against the other. The schema (`recording.schema`), the
plan (`notebook.plan`), the doctor's table, `reclaimlab record --help` and the kit's VM defaults
(`vm.experiments.DEFAULTS`) all read these declarations, so adding an experiment touches its
declaration, its live script (which attaches its runner), its findings, its lab and its recording.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

# What an experiment may need from this machine (the probe says whether it has each; see experiments.verdicts).
NEEDS: dict[str, str] = {
    "memory": "memory it may safely allocate here (the probe's budget, at least 256 MiB)",
    "drop_caches": "root and a writable /proc/sys/vm/drop_caches (a system-wide knob: consent)",
    "compact_memory": "root and a writable /proc/sys/vm/compact_memory (a system-wide knob: consent)",
    "reclaim": "a writable cgroup v2 memory.reclaim or cgroup v1 memory.limit_in_bytes (root; consent)",
    "disk": "at least 1 GiB free where the scratch file goes",
    "qemu": "qemu-system-x86_64 on PATH, to boot the kit's VM",
}
# Soft needs: it runs without them, and the reason says what is missing.
WANTS: dict[str, str] = {
    "host_view": "a view of what the host holds (cumulative reports, WSL's vmmem, QEMU's RSS)",
}

# A parameter's unit read from its name (the kit's convention: units in numeric names).
SUFFIX_UNITS = (("_s", "s"), ("_hz", "Hz"), ("_ms", "ms"), ("_kib", "KiB"), ("_bytes", "bytes"))
SIZE_UNIT = "size: bytes as people type them (3GB = 3·10⁹, 3GiB = 3·2³⁰)"


class CatalogError(ValueError):
    """An experiment that is not declared, or a declaration that does not hold together; the message says which."""


@dataclass(frozen=True)
class Experiment:
    name: str
    summary: str
    defaults: dict[str, Any]                       # parameters of a local run, with their defaults
    units: dict[str, str] = field(default_factory=dict)  # units of parameters whose name does not say it
    vm_defaults: dict[str, Any] | None = None      # the kit's VM run's timings (None: it has no VM version)
    needs: tuple[str, ...] = ()                    # from NEEDS: what a live run here needs
    wants: tuple[str, ...] = ()                    # from WANTS: what it shows best with
    knobs: tuple[str, ...] = ()                    # system-wide knobs it turns: these need consent
    variant_keys: tuple[str, ...] = ()             # parameters that select a different recorded dataset
    needs_memory: bool = True                      # allocates memory (so sized to this guest)
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)  # allowed values of str parameters
    results: dict[str, str] = field(default_factory=dict)   # meta["results"] key -> unit (recording.schema)
    aliases: dict[str, str] = field(default_factory=dict)   # a result's old name -> today's
    events: tuple[str, ...] = ()                   # the steps every complete recording of it marks
    columns: dict[str, str] = field(default_factory=dict)   # its own samples.csv columns -> unit
    labs: tuple[str, ...] = ()                     # the lab notebooks (labs/NAME.ipynb) that run it
    findings: tuple[str, ...] = ()                 # its modules under reclaimlab.present.findings
    runner: Callable[..., Any] | None = field(default=None, compare=False)  # attached by experiments.live

    @property
    def needs_consent(self) -> bool:
        return bool(self.knobs)

    def unit_of(self, param: str) -> str:
        """The unit of parameter `param`: stated in `units`, else read from its name."""
        if param in self.units:
            return self.units[param]
        if param == "size":
            return SIZE_UNIT
        for suffix, unit in SUFFIX_UNITS:
            if param.endswith(suffix):
                return unit
        raise CatalogError(f"{self.name}: parameter {param!r} has no unit; state it in units= or name it "
                           f"with a unit suffix ({', '.join(s for s, _ in SUFFIX_UNITS)})")

    def problem(self) -> str | None:
        """None when the declaration holds together, else one sentence naming what does not."""
        for need in self.needs:
            if need not in NEEDS:
                return f"{self.name}: need {need!r} is not one of {', '.join(NEEDS)}"
        for want in self.wants:
            if want not in WANTS:
                return f"{self.name}: want {want!r} is not one of {', '.join(WANTS)}"
        try:
            for param in {**self.defaults, **(self.vm_defaults or {})}:
                self.unit_of(param)
        except CatalogError as exc:
            return str(exc)
        return None


REGISTRY: dict[str, Experiment] = {}


def declare(exp: Experiment) -> Experiment:
    """Add (or replace) the declaration of `exp.name`; refused with the reason where it does not hold together."""
    problem = exp.problem()
    if problem:
        raise CatalogError(problem)
    REGISTRY[exp.name] = exp
    return exp


def withdraw(name: str) -> None:
    """Remove a declaration (a test's own experiment, after the test)."""
    REGISTRY.pop(name, None)


def get(name: str) -> Experiment:
    try:
        return REGISTRY[name]
    except KeyError:
        raise CatalogError(f"unknown experiment {name!r}; choose one of: {', '.join(REGISTRY)}") from None


def names() -> list[str]:
    return list(REGISTRY)


def attach_runner(name: str, runner: Callable[..., Any]) -> Experiment:
    """Give the declared experiment `name` its live script (experiments.live calls this for each)."""
    exp = replace(get(name), runner=runner)
    REGISTRY[name] = exp
    return exp
