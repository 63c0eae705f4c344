"""One node's metrics in one answer: every process of a gunicorn or a Celery worker node.

prometheus_client's multiprocess mode: with PROMETHEUS_MULTIPROC_DIR set when a process starts,
each process (gunicorn worker, Celery pool process) writes its values to memory-mapped files in
that directory, and the node's exporter sums them at scrape time. Without it, a process exports
its own registry (``make run``'s single web process, the tests' in-process apps).

Each node takes a fresh directory of its own at start-up (a sub-directory of the configured
one): counters restart at zero with the node, as Prometheus expects of a restarted target, and
two nodes on one host never read or wipe each other's files. The children it forks afterwards
inherit the environment variable, and prometheus_client reads it whenever a process opens its
files (after a fork, at its first value), so they write there.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> Path | None:
    """This node's multiprocess directory; None when multiprocess mode is off."""
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def start_fresh_directory(prefix: str) -> Path | None:
    """Give this process, and those it forks from now on, a new empty directory under
    PROMETHEUS_MULTIPROC_DIR; None (nothing done) when multiprocess mode is off."""
    base = multiprocess_dir()
    if base is None:
        return None
    base.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def remove_directory(path: Path | None) -> None:
    """Remove a node's directory when the node stops."""
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


def process_exited(pid: int) -> None:
    """Forget a dead process's live gauges (its counters and histograms keep counting)."""
    path = multiprocess_dir()
    if path is not None:
        multiprocess.mark_process_dead(pid, str(path))


class _ThisProcess:
    """This process's default registry, as a collector of another registry."""

    def collect(self) -> Iterable[Metric]:
        """Every metric of the default registry."""
        return REGISTRY.collect()


def node_registry(*extra: Collector) -> CollectorRegistry:
    """A registry for one scrape: every process of the node (or this one alone), plus
    ``extra`` collectors computed now."""
    registry = CollectorRegistry()
    path = multiprocess_dir()
    if path is not None:
        multiprocess.MultiProcessCollector(registry, path=str(path))
    else:
        registry.register(_ThisProcess())
    for collector in extra:
        registry.register(collector)
    return registry
