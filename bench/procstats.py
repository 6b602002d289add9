"""
What a server process costs while one figure runs: CPU seconds (utime+stime from /proc/PID/stat,
all threads) and peak resident memory (VmHWM, reset per figure through /proc/PID/clear_refs, with
VmRSS sampled as well where the kernel refuses the reset).
"""

from __future__ import annotations

import os
import threading

from memory import rssKiB

TICKS = os.sysconf("SC_CLK_TCK")


def cpuSeconds(pid: int) -> float:
    """User plus system CPU time the process used so far, in seconds (0 when unreadable)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    return (int(fields[11]) + int(fields[12])) / TICKS


def family(pid: int) -> list[int]:
    """The process and its children (registryd's http.workers), which together make one server."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [pid, *(int(child) for child in children.read().split())]
    except OSError:
        return [pid]


def resetHighWater(pid: int) -> bool:
    """Reset the kernel's peak-RSS mark of the process (Linux ≥ 4.0); False when not allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


class Meter:
    """Measure one process over a block: C{with Meter(pid) as m: ...}; then m.cpu and m.peakMiB."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self.cpu = 0.0
        self.peakMiB = 0.0
        self._peak = 0
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    # A server with worker processes is measured whole: CPU and RSS summed over its family.
    def _rss(self, field: str = "VmRSS") -> int:
        return sum(rssKiB(pid, field) for pid in family(self.pid))

    def _cpu(self) -> float:
        return sum(cpuSeconds(pid) for pid in family(self.pid))

    def _sample(self) -> None:
        while not self._halt.wait(self.interval):
            self._peak = max(self._peak, self._rss())

    def __enter__(self) -> Meter:
        self._highWater = all([resetHighWater(pid) for pid in family(self.pid)])
        self._peak = self._rss()
        self._cpu0 = self._cpu()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._halt.set()
        self._thread.join()
        self.cpu = self._cpu() - self._cpu0
        self._peak = max(self._peak, self._rss())
        if self._highWater:
            self._peak = max(self._peak, self._rss("VmHWM"))
        self.peakMiB = round(self._peak / 1024, 1)
