"""The worker node's metrics endpoint: its main process serves, on WORKER_METRICS_PORT, what every
pool process recorded (jobs ended, wait and run times, model loads) plus the node's own state.

The pool processes record in prometheus_client's multiprocess files; at ``worker_init`` (main
process, before the pool forks) the node takes a fresh directory under PROMETHEUS_MULTIPROC_DIR
and starts a small HTTP server thread (prometheus_client's) that sums those files per scrape.
Up and busy are read from the main process itself at scrape time: it knows its consumed queues
and which requests its pool is running (Celery's ``active_requests``), so no file is needed.
Without PROMETHEUS_MULTIPROC_DIR the pool's numbers could not be seen, so nothing is served and
the log says why (a scrape that fails is noticed; one that shows zero throughput misleads).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from celery.signals import worker_init, worker_process_shutdown, worker_shutdown
from celery.worker import state
from prometheus_client import start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from core.config import Settings
from core.metrics_export import (
    MULTIPROC_ENV,
    node_registry,
    process_exited,
    remove_directory,
    start_fresh_directory,
)

log = logging.getLogger(__name__)


class NodeState:
    """``scanqueue_worker_up{queues}`` and ``scanqueue_worker_busy_processes``, read per scrape
    from the worker's main process."""

    def __init__(self, worker: Any) -> None:
        self.worker = worker

    def queues(self) -> str:
        """The queues this node consumes, comma-joined."""
        consume_from = self.worker.app.amqp.queues.consume_from or {}
        return ",".join(sorted(consume_from))

    def collect(self) -> Iterator[Metric]:
        """The two gauges."""
        up = GaugeMetricFamily(
            "scanqueue_worker_up", "1 while this worker node runs", labels=["queues"]
        )
        up.add_metric([self.queues()], 1)
        yield up
        yield GaugeMetricFamily(
            "scanqueue_worker_busy_processes",
            "Pool processes running a task now",
            value=len(state.active_requests),
        )


def register(settings: Settings) -> None:
    """Connect the signals that start and stop this node's metrics endpoint."""
    node: dict[str, Any] = {}

    @worker_init.connect(weak=False)
    def start(sender: Any, **_kwargs: Any) -> None:
        directory = start_fresh_directory(f"worker-{os.getpid()}-")
        node["directory"] = directory
        port = settings.WORKER_METRICS_PORT
        if not port:
            return
        if directory is None:
            log.warning(
                "worker metrics not served: set %s (a writable directory) so the pool "
                "processes' metrics can be summed, or WORKER_METRICS_PORT=0",
                MULTIPROC_ENV,
            )
            return
        bind = settings.WORKER_METRICS_BIND
        try:
            server, _thread = start_http_server(
                port, addr=bind, registry=node_registry(NodeState(sender))
            )
        except OSError as exc:
            # Jobs matter more than their numbers: the worker runs on, the scrape fails.
            log.error("worker metrics not served on %s:%s: %s", bind, port, exc)
            return
        node["server"] = server
        log.info("worker metrics on http://%s:%s/metrics", bind, port)

    @worker_process_shutdown.connect(weak=False)
    def forget_process(**_kwargs: Any) -> None:
        process_exited(os.getpid())

    @worker_shutdown.connect(weak=False)
    def stop(**_kwargs: Any) -> None:
        server = node.pop("server", None)
        if server is not None:
            server.shutdown()
        directory: Path | None = node.pop("directory", None)
        remove_directory(directory)
