"""GET /metrics under the committed gunicorn configuration sums every gunicorn process
(prometheus_client's multiprocess mode), those that have exited included."""

from __future__ import annotations

import http.client
import os
import signal
import sys
import time
from pathlib import Path

from tests.conftest import build_app, free_port, fresh_postgres_database
from tests.metric_samples import moved
from tests.test_reverse_proxy import APP, GUNICORN_CONFIG, app_env, running

HEALTHZ = {"route": "/healthz", "method": "GET", "status": "200"}
LATENCY = "scanqueue_http_request_duration_seconds_count"


def get(port: int, path: str, timeout: float = 10) -> tuple[int, str]:
    """One request on a new connection (any gunicorn process may take it)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            # The command name (2nd field) is in parentheses and may hold spaces.
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


def test_metrics_sum_every_gunicorn_process_including_replaced_ones(
    tmp_path: Path, redis_url: str
) -> None:
    port = free_port()
    base = tmp_path / "metrics"
    command = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG)]
    # --preload: the app is imported once and forked, so replacement processes start at once
    # (importing it takes seconds on a busy machine); each process still records on its own,
    # into its own files. Short graceful stops: nothing here is in flight when it stops.
    command += ["--preload", "--graceful-timeout", "1", "--keep-alive", "1"]
    command += ["-b", f"127.0.0.1:{port}", APP]
    with fresh_postgres_database() as database_url:
        build_app(database_url, redis_url, tmp_path / "media")  # migrates the schema
        env = app_env(
            tmp_path,
            redis_url,
            DATABASE_URL=database_url,
            WEB_WORKERS="2",
            PROMETHEUS_MULTIPROC_DIR=str(base),
        )
        log = tmp_path / "gunicorn.log"
        with running(command, port, log, env, ready_path="/healthz") as arbiter:
            # /healthz answers as soon as one process is up; the other may still be forking.
            deadline = time.monotonic() + 30
            while len(first := children(arbiter.pid)) < 2:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            assert len(first) == 2
            before = get(port, "/metrics")[1]
            for _ in range(20):
                assert get(port, "/healthz")[0] == 200
            # Every process that served those requests goes; the arbiter starts new ones.
            for pid in first:
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while first & children(arbiter.pid):  # until the arbiter has reaped them
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            for _ in range(5):
                assert get(port, "/healthz")[0] == 200
            status, after = get(port, "/metrics")
            [node_dir] = base.iterdir()  # the arbiter's own fresh directory
        assert not node_dir.exists()  # removed when gunicorn stopped
    assert status == 200
    # 20 answered by the processes now gone, 5 by their successors.
    assert moved(before, after, LATENCY, **HEALTHZ) == 25
    assert node_dir.name.startswith("web-")
