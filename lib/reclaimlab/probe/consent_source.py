"""Who gave consent to system-wide changes, in words a banner can quote (the rules themselves: consent.py)."""
from __future__ import annotations

import os
from typing import Mapping

from . import consent


def consent_source(allow: bool | None, env: Mapping[str, str] = os.environ) -> str | None:
    """The setting that gave consent ("allow_system_changes=True", or the environment variable with its
    value), or None where nothing did. `allow` as consent.changes_allowed takes it: None lets the
    environment decide."""
    if not consent.changes_allowed(allow, env):
        return None
    if allow:
        return "allow_system_changes=True"
    return f"{consent.ALLOW_ENV}={env.get(consent.ALLOW_ENV, '')} in the environment"
