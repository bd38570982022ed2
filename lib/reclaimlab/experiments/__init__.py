"""Experiments: the registry, the harness that runs one live or recorded, and the live scripts.

    from reclaimlab import experiments
    rec = experiments.run("calloc-reclaim", mode="auto", size="3GB")

Names resolve lazily from `harness` (and `registry`), so a workload child importing
reclaimlab.experiments.workloads does not load pandas.
"""
from __future__ import annotations


from importlib import import_module
from pathlib import Path

_HERE = Path(__file__).parent


def __getattr__(name: str):
    if name.startswith("_") or (_HERE / f"{name}.py").exists() or (_HERE / name).is_dir():
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")  # a submodule: let import load it
    return getattr(import_module(f"{__name__}.harness"), name)
