"""Small measuring helpers the benchmark tables share: percentiles and a process tree's memory."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def percentiles(samples: list[float]) -> tuple[float, float]:
    """(p50, p95) of the samples."""
    return float(np.percentile(samples, 50)), float(np.percentile(samples, 95))


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its direct children, in MB."""
    total_kb = 0
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for each in [str(pid), *children]:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total_kb += int(line.split()[1])
    return total_kb / 1024


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process and its direct children have used so far, in s."""
    ticks = 0
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for each in [str(pid), *children]:
        # Fields after the command's closing parenthesis; utime and stime are the 14th and 15th.
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time every process on the machine has used so far (all cores, idle and iowait not
    counted), in s: the share the measured processes got is read against it."""
    # The first line of /proc/stat: cpu user nice system idle iowait irq softirq steal ...
    ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")
