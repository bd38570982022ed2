"""Checks of a lab's parameters: a bad value raises LabParameterError naming it and what is valid."""
from __future__ import annotations

import os
from typing import Any, Sequence

MAX_SAMPLE_HZ = 1000.0


class LabParameterError(ValueError):
    """A lab parameter is invalid; the message names the parameter and what is valid."""


def check_choice(name: str, value: Any, valid: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in valid:
        raise LabParameterError(f"parameter {name}={value!r} is not valid; use one of: "
                                f"{', '.join(repr(v) for v in valid)}")
    return value


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise LabParameterError(f"parameter {name}={value!r} is not valid; use True or False (without quotes)")
    return value


def check_hz(value: Any) -> float | None:
    """The sampler's own check (sampling.sampler.validate_hz: a number, at least MIN_HZ), and the labs'
    own upper bound: a lab's charts gain nothing above MAX_SAMPLE_HZ, and its recording grows with
    every sample."""
    if value is None:
        return None
    from ..sampling.sampler import validate_hz
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > MAX_SAMPLE_HZ:
        raise LabParameterError(f"parameter sample_hz={value!r} is not valid; a lab samples at most "
                                f"{MAX_SAMPLE_HZ:g} times per second (10 is plenty to watch memory move)")
    try:
        return validate_hz(value)
    except ValueError as e:
        raise LabParameterError(f"parameter sample_hz={value!r} is not valid: {e}") from None


def check_size(name: str, value: Any) -> int:
    from ..units import parse_size
    try:
        return parse_size(value)
    except ValueError as exc:
        # SizeError's text already says why and lists valid examples.
        raise LabParameterError(f"parameter {name}: {exc}") from None


def experiment_of(key: str) -> str:
    """The experiment a `recordings` key names: "vm:page-cache:size=1GB" -> "page-cache"."""
    return str(key).split(":")[1 if str(key).startswith("vm:") else 0]


def check_recordings(value: Any) -> dict[str, str]:
    """The `recordings` parameter: {key: folder}; every folder must load (with its manifest) as what its key
    asks for: the experiment, the kit's VM for a "vm:" key, and each ":parameter=value" selector."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise LabParameterError(f"parameter recordings={value!r} is not valid; use a dict of experiment name to "
                                f"recording folder, e.g. {{\"page-cache\": \"~/my-runs/page-cache\"}}, or {{}}")
    from ..experiments import harness as experiments
    from ..recording.recording import RecordingError
    out = {}
    for key, folder in value.items():
        name = experiment_of(key)
        if name not in experiments.names():
            raise LabParameterError(f"parameter recordings: {key!r} is not an experiment; use one of: "
                                    f"{', '.join(experiments.names())} (optionally 'vm:' before it, "
                                    f"':parameter=value' after it)")
        if not isinstance(folder, (str, os.PathLike)):
            raise LabParameterError(f"parameter recordings[{key!r}]={folder!r} is not a folder; give its path as "
                                    f"text, e.g. {{{key!r}: \"~/my-runs/{name}\"}}")
        try:
            experiments.parse_replay_key(key)  # unknown selectors are refused, never silently unused
            experiments.replay(experiments.get(name), folder, quiet=True, key=str(key))
        except (RecordingError, experiments.ExperimentError, OSError, TypeError) as exc:
            raise LabParameterError(f"parameter recordings[{key!r}]: {exc}") from None
        out[str(key)] = str(folder)
    return out
