"""The registry of experiments: what each one is (name, defaults, knobs, variants) and the errors a run raises.

The live scripts (`live.py`) register themselves here; the harness (`harness.py`) looks them up.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..recording.recording import Recording

MODES = ("auto", "live", "recorded")
GUESTS = ("local", "vm")


class ExperimentError(ValueError):
    """Bad input to an experiment: unknown name, mode or parameter. The message says what is valid."""


class ExperimentRefused(RuntimeError):
    """Live mode was asked for but this guest cannot run the experiment; the message says why."""


class ExperimentBusy(ExperimentRefused):
    """Live mode was asked for but another live experiment held this guest past lock_timeout_s."""


class ExperimentInterrupted(KeyboardInterrupt):
    """The run was interrupted; the workload was stopped and cleaned up.

    `.recording` holds what was sampled so far, marked partial (meta["complete"] is False).
    Its message does not name that attribute: the command line prints it, and says where on
    disk it saved the partial recording instead.
    """

    def __init__(self, message: str, recording: Recording | None):
        super().__init__(message)
        self.recording = recording


@dataclass(frozen=True)
class Experiment:
    name: str
    summary: str
    defaults: dict[str, Any]
    knobs: tuple[str, ...] = ()            # system-wide knobs it turns: these need consent
    variant_keys: tuple[str, ...] = ()     # parameters that select a different recorded dataset
    needs_memory: bool = True              # allocates memory (so sized to this guest)
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)  # allowed values of str parameters
    runner: Callable[..., Recording] | None = field(default=None, compare=False)


REGISTRY: dict[str, Experiment] = {}


def register(exp: Experiment) -> Experiment:
    REGISTRY[exp.name] = exp
    return exp
