"""Small measuring helpers the benchmark tables share: percentiles and a process tree's memory."""

from __future__ import annotations

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
