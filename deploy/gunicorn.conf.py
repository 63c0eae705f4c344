"""Gunicorn settings of the web container (the Dockerfile's and docker-compose.yml's command).

    gunicorn -c deploy/gunicorn.conf.py 'webapp:create_app()'

The worker class is ``sync``: every process serves one request at a time, and WEB_WORKERS
processes serve them side by side (``gthread`` with WEB_THREADS threads each when WEB_THREADS > 1,
gunicorn's own rule). It runs behind nginx, which buffers each request body and response in full
(deploy/nginx; the Kubernetes ingress does the same), so the requests that reach gunicorn arrive
whole and leave at loopback speed: a slow client costs an nginx connection, never a process.
Why sync (README "Status polls", third and fourth passes): the threads of one process share its
interpreter lock, so a poll waited for the others' Python, and keep-alive connections stuck to
whichever process accepted them first (one process got 1,427 of 1,999 polls while three others
shared the rest); a sync process takes the next connection only when it is free. Measured with
``python -m benchmarks --polls`` at 200 independent polls/s on 2 CPUs, 4 sync processes (p99 7-10
ms) and 2 gthread processes x 8 threads (6-9 ms) both stay well under the 20 ms goal. Without
nginx, raise WEB_THREADS: one trickling client then holds one thread of many, not a whole process.

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
# WEB_THREADS > 1 makes gunicorn use gthread instead (its documented rule), stated here too.
worker_class = "sync" if _settings.WEB_THREADS == 1 else "gthread"
workers = _settings.WEB_WORKERS
threads = _settings.WEB_THREADS
# A process that answers nothing to the arbiter this long is replaced: for a sync process this
# is the longest a request may take, so it is not shorter than nginx's proxy_read_timeout (a test
# keeps them so); for gthread, a process whose main loop is wedged.
timeout = _settings.WEB_TIMEOUT_SECONDS
# On SIGTERM (docker stop) requests under way get this long to finish (compose gives the web
# container stop_grace_period 40s, so Docker does not kill it first).
graceful_timeout = 30
# gthread only (sync processes close each connection after its answer): idle keep-alive
# connections are closed after this, longer than nginx keeps its idle upstream connections
# (keepalive_timeout 4s), so nginx always closes first and never reuses a dead one.
keepalive = 5
# Request-line and header limits (gunicorn answers 400 beyond them): as large as nginx's header
# buffers (large_client_header_buffers 4 8k), so what nginx lets through gunicorn accepts.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
# Replace each process after a while, staggered, so slow growth (image decoding) cannot build up.
# At 200 polls/s over 4 processes 2,000 meant a replacement every 10 s; a replacement is a fork
# of the warm arbiter (below), but its first request still opens a database connection.
max_requests = 10000
max_requests_jitter = 1000
# The app is imported and built once, in the arbiter, and each process is forked from it: a
# replacement starts in milliseconds. Without it every replacement imported the app anew (about
# 5 s of one CPU here) while the other process served alone; at 200 status polls/s that was every
# ~20 s per process, and the slowest polls of a run were those seconds. Nothing connects while
# the app is built (database, Redis and broker connections open on first use, in the process
# that uses them); when_ready's warm-up closes the connections it opened before the first fork, so
# no connection is shared across it. A code change then needs a restart (SIGHUP reloads the
# configuration, not the code).
preload_app = True
# No runtime control socket (gunicornc): nothing here uses it, and processes of one user would all
# share its default path (~/.gunicorn/gunicorn.ctl).
control_socket_disable = True
# Access log to stdout, for `docker compose logs`; the app logs to stderr. gunicorn's default
# line plus, last, the microseconds from reading the request to writing the answer: the server's
# own share of a request's time (python -m benchmarks --polls reports it).
accesslog = "-"
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(D)s'
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


def when_ready(server: object) -> None:
    """The app is loaded, no process forked yet: warm it once for all of them."""
    from flask import Flask

    from webapp.warm_up import warm_up

    app = server.app.wsgi()  # type: ignore[attr-defined]
    if isinstance(app, Flask):
        warm_up(app)


def child_exit(server: object, worker: object) -> None:
    """A process ended: drop its live gauges from the node's sum."""
    _metrics.process_exited(worker.pid)  # type: ignore[attr-defined]


def on_exit(server: object) -> None:
    """The node stops: its metrics directory goes with it."""
    _metrics.remove_directory(_metrics_dir)
