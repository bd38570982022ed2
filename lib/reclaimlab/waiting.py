"""Waiting inside a run: sleep up to a time limit, stopping early once a condition holds."""
from __future__ import annotations

import time
from typing import Callable


def wait_until(seconds: float, until: Callable[[], bool] | None = None, poll_s: float = 0.25) -> float:
    """Sleep up to `seconds`, returning early once `until()` is true (checked every poll_s); returns the time waited.

    The last sleep is cut to the deadline, so a wait never overshoots `seconds` by a poll.
    """
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if until is not None and until():
            break
        time.sleep(min(poll_s, max(0.0, seconds - (time.monotonic() - t0))))
    return time.monotonic() - t0
