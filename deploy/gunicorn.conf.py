"""Gunicorn settings of the web container (the Dockerfile's and docker-compose.yml's command).

    gunicorn -c deploy/gunicorn.conf.py 'webapp:create_app()'

The worker class is ``gthread``: every process serves WEB_THREADS requests at once. It runs behind
nginx, which buffers each request body and response in full (deploy/nginx), so the requests that
reach gunicorn arrive whole and leave at loopback speed: a slow client costs an nginx connection,
never a gunicorn thread. The views wait on Postgres, Redis and the disk, so threads overlap them
cheaply; an async class (gevent) would need psycopg2 and redis patched for little gain. Even
without nginx, one trickling client now holds one thread of many, not the only sync worker.

Counts and the timeout come from the typed settings (core/config.py: WEB_WORKERS, WEB_THREADS,
WEB_TIMEOUT_SECONDS), so a bad value stops start-up with its name, like every other setting.
"""

from __future__ import annotations

import os

from core import metrics_export as _metrics
from core.config import load_settings

_settings = load_settings()

# The container's port, reached only by nginx on the compose network (-b on the command line wins).
bind = "0.0.0.0:8000"
worker_class = "gthread"
workers = _settings.WEB_WORKERS
threads = _settings.WEB_THREADS
# A process whose main loop stops answering the arbiter this long is replaced. With gthread the
# loop runs apart from the request threads, so this catches a wedged process, not a long upload.
timeout = _settings.WEB_TIMEOUT_SECONDS
# On SIGTERM (docker stop) requests under way get this long to finish (compose gives the web
# container stop_grace_period 40s, so Docker does not kill it first).
graceful_timeout = 30
# Idle keep-alive connections are closed after this: longer than nginx keeps its idle upstream
# connections (keepalive_timeout 4s), so nginx always closes first and never reuses a dead one.
keepalive = 5
# Request-line and header limits (gunicorn answers 400 beyond them): as large as nginx's header
# buffers (large_client_header_buffers 4 8k), so what nginx lets through gunicorn accepts.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
# Replace each process after a while, staggered, so slow growth (image decoding) cannot build up.
max_requests = 2000
max_requests_jitter = 200
# The app is imported and built once, in the arbiter, and each process is forked from it: a
# replacement starts in milliseconds. Without it every replacement imported the app anew (about
# 5 s of one CPU here) while the other process served alone; at 200 status polls/s that was every
# ~20 s per process, and the slowest polls of a run were those seconds. Nothing connects while
# the app is built (database, Redis and broker connections open on first use, in the process
# that uses them), so no connection is shared across the fork. A code change then needs a restart
# (SIGHUP reloads the configuration, not the code).
preload_app = True
# No runtime control socket (gunicornc): nothing here uses it, and processes of one user would all
# share its default path (~/.gunicorn/gunicorn.ctl).
control_socket_disable = True
# Access log to stdout, for `docker compose logs`; the app logs to stderr.
accesslog = "-"
# The heartbeat file the arbiter watches, in memory: a slow disk must not make a process look dead.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None


# Metrics (core/metrics_export.py): with PROMETHEUS_MULTIPROC_DIR set (the Docker image sets it),
# every process writes its values to files that GET /metrics sums. The arbiter gives the node a
# fresh directory before it forks the first process, forgets a process's live gauges when it
# exits (max_requests replaces processes all the time), and removes the directory on exit.
_metrics_dir = None


def on_starting(server: object) -> None:
    """Before the first fork: this node's own, empty metrics directory."""
    global _metrics_dir
    _metrics_dir = _metrics.start_fresh_directory("web-")


def child_exit(server: object, worker: object) -> None:
    """A process ended: drop its live gauges from the node's sum."""
    _metrics.process_exited(worker.pid)  # type: ignore[attr-defined]


def on_exit(server: object) -> None:
    """The node stops: its metrics directory goes with it."""
    _metrics.remove_directory(_metrics_dir)
