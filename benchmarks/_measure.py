"""Stdlib-only measurement helpers shared by `bench_mmd.py` and `_alibi_runner.py` (Linux /proc).

`Meter` brackets a timed region and reports its wall time, the process's CPU time (all threads),
the peak extra resident memory, and how busy the machine's CPUs were with *other* processes
meanwhile (so a result taken on a shared, loaded machine says so).
"""

from __future__ import annotations

import os
import resource
import time
from typing import Self

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def rss_kib() -> int:
    """Current resident set size of this process, KiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def reset_peak() -> bool:
    """Reset this process's peak-RSS counter (Linux >= 4.0); False when it cannot be reset."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as fh:
        fields = [int(v) for v in fh.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


def own_cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def machine_busy(seconds: float = 2.0) -> float:
    """Fraction (0..1) of all CPUs busy over the next `seconds` (this process is idle meanwhile)."""
    b0, t0 = cpu_jiffies()
    time.sleep(seconds)
    b1, t1 = cpu_jiffies()
    return (b1 - b0) / max(t1 - t0, 1)


def wait_quiet(threshold: float, max_wait: float, log=print) -> float:
    """Wait (up to `max_wait` s) until the CPUs are less than `threshold` busy; return the last reading."""
    deadline = time.monotonic() + max_wait
    busy = machine_busy()
    announced = False
    while busy >= threshold and time.monotonic() < deadline:
        if not announced:
            log(
                f"    machine {busy:.0%} busy with other processes; waiting up to {max_wait:.0f} s ..."
            )
            announced = True
        time.sleep(5)
        busy = machine_busy()
    return busy


class Meter:
    """Context manager measuring a region: wall, cpu, peak extra RSS (MiB), others' CPU share."""

    def __enter__(self) -> Self:
        self.exact_peak = reset_peak()
        self._base_kib = (
            rss_kib()
            if self.exact_peak
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        )
        self._cpu0 = own_cpu_seconds()
        self._busy0, self._total0 = cpu_jiffies()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self._t0
        busy1, total1 = cpu_jiffies()
        self.cpu = own_cpu_seconds() - self._cpu0
        others = (busy1 - self._busy0) - self.cpu * _CLK_TCK
        self.others_busy = max(others, 0.0) / max(total1 - self._total0, 1)
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.peak_extra_mib = (peak_kib - self._base_kib) / 1024

    def as_dict(self) -> dict:
        return {
            "cpu_seconds": self.cpu,
            "others_busy": self.others_busy,
            "peak_extra_rss_mib": self.peak_extra_mib,
            "peak_rss_exact": self.exact_peak,
        }
