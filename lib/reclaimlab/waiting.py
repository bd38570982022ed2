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


def until_settled(read: Callable[[], float | None], quiet_s: float, limit_s: float, slack: float,
                  poll_s: float = 0.1) -> tuple[float | None, bool, float]:
    """Watch `read()` (e.g. QEMU's resident KiB) until it has not fallen by more than `slack` below its lowest for
    quiet_s, or limit_s passes. Returns (its last value, whether it settled, seconds watched); a None read ends the
    watch unsettled (the process is gone)."""
    t0 = time.monotonic()
    lowest, lowest_at = read(), t0
    while time.monotonic() - t0 < limit_s:
        time.sleep(poll_s)
        value = read()
        if value is None or lowest is None:
            return value, False, time.monotonic() - t0
        if value < lowest - slack:
            lowest, lowest_at = value, time.monotonic()
        if time.monotonic() - lowest_at >= quiet_s:
            return value, True, time.monotonic() - t0
    return read(), False, time.monotonic() - t0
