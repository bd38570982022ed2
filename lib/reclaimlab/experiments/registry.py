"""The run modes and the errors a run raises; what each experiment is comes from the catalog (re-exported).

The live scripts (`live.py`) attach their runners to the catalog's declarations; the harness looks them up.
"""
from __future__ import annotations

from ..catalog import REGISTRY, Experiment  # noqa: F401 (what each experiment is: declared once, re-exported)
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
