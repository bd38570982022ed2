"""The busy-loop child: wakes every `period_ms`, burns `cpu_share` of one CPU, sleeps (`BusyLoop`, busy.py).

Run as ``python -m reclaimlab.experiments.workloads.busy_child``; commands arrive on stdin (_child.py).
The work runs in a thread of this child, so the command loop stays responsive. Each wake spins until
this thread's own CPU clock (CLOCK_THREAD_CPUTIME_ID) has advanced by share x period, so preemption
by other work on a busy machine stretches a wake in wall time but not in CPU time. A wake that comes
later than its deadline is not caught up (no bursts): the loop re-anchors on the clock.
"""
from __future__ import annotations

import threading
import time
from typing import Any

from ._child import serve

SPIN_BATCH = 200   # ~20 us of arithmetic per clock read (measured here: user time, not system, dominates)
_state: dict[str, Any] = {"thread": None, "stop": None, "wakes": 0, "late": 0, "cpu_s": 0.0}


def _loop(cpu_share: float, period_s: float, stop: threading.Event) -> None:
    budget_s = cpu_share * period_s
    next_s = time.monotonic()
    x = 0
    while not stop.is_set():
        t0 = time.thread_time()
        while time.thread_time() - t0 < budget_s:
            for _ in range(SPIN_BATCH):                  # user-space work between clock reads: reading
                x = (x * 1103515245 + 12345) & 0xFFFFFFFF   # the thread clock is a syscall (system time)
        _state["cpu_s"] += time.thread_time() - t0
        _state["wakes"] += 1
        next_s += period_s
        delay_s = next_s - time.monotonic()
        if delay_s < 0:
            _state["late"] += 1
            next_s = time.monotonic()
            continue
        stop.wait(delay_s)


def start(cpu_share: float, period_ms: float) -> dict[str, Any]:
    if _state["thread"] is not None:
        raise RuntimeError("the busy loop is already running")
    stop = threading.Event()
    t = threading.Thread(target=_loop, args=(cpu_share, period_ms / 1000.0, stop), daemon=True)
    _state.update(thread=t, stop=stop, wakes=0, late=0, cpu_s=0.0)
    t.start()
    return {}


def stats() -> dict[str, Any]:
    return {"wakes": _state["wakes"], "late_wakes": _state["late"], "work_cpu_s": _state["cpu_s"],
            "process_cpu_s": time.process_time()}


def stop() -> dict[str, Any]:
    t, ev = _state["thread"], _state["stop"]
    if t is not None:
        ev.set()
        t.join(5)
        _state["thread"] = None
    return stats()


if __name__ == "__main__":
    serve({"start": start, "stats": stats, "stop": stop})
