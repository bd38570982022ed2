"""The catalog: every experiment declared once (`kit.py`), and the public API to declare one more.

    from reclaimlab import catalog
    catalog.declare(catalog.Experiment("toy", "a test's own", defaults={"hold_s": 1.0}, labs=("99_toy",)))
    ...
    catalog.withdraw("toy")

Pure data (it imports nothing of the kit but itself): the schema, the VM, the experiments, the plan and
the command line read it; the probe does not (it reports what the machine has, not what an experiment needs).
"""
from .declaration import (NEEDS, REGISTRY, WANTS, CatalogError, Experiment, attach_runner,  # noqa: F401
                          declare, get, names, withdraw)
from . import kit  # noqa: F401,E402  (declares the kit's experiments)
