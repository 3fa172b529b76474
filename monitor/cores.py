"""Whether a core is idle now: the rule for starting a second process (a report's companion, an import's reader).

A second process costs CPU of its own (its start, its share of the work done twice); it pays only on a core
nobody else is using.
"""

from __future__ import annotations

import os
import statistics
import time

LOOKS = 5  # at the runnable processes, for core_idle


def core_idle() -> bool:
    """A core is idle now, beside this process: a second one would not take another's time.

    On Linux, from the runnable processes in /proc/loadavg (this one among them), the median of a few looks
    10 ms apart: the last minute's load average still counts our own work of a moment ago (the score just
    before a report) as load. Elsewhere that load average is all there is.
    """
    cpus = os.cpu_count() or 1
    try:
        running = statistics.median(_running_now(at) for at in range(LOOKS))
    except (OSError, ValueError):
        return cpus - os.getloadavg()[0] >= 1
    return running + 1 <= cpus


def _running_now(look: int) -> int:
    if look:
        time.sleep(0.01)
    with open("/proc/loadavg", encoding="ascii") as loadavg:
        return runnable(loadavg.read())


def runnable(loadavg: str) -> int:
    """The processes runnable now, from /proc/loadavg's text ("0.52 0.58 0.59 2/345 6789": 2)."""
    return int(loadavg.split()[3].split("/")[0])
