"""Slow clients against the real web front: nginx (deploy/nginx) before gunicorn (deploy/).

A client that trickles its request at 10 B/s holds whatever reads it. Against the single sync
gunicorn worker the image used to run, that was the whole site (shown below, so the test shows
what it protects against); with the committed nginx and gunicorn configurations in front,
/healthz keeps answering at once. Real processes, a few seconds each.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import string
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
NGINX_TEMPLATE = REPO_ROOT / "deploy" / "nginx" / "templates" / "default.conf.template"
GUNICORN_CONFIG = REPO_ROOT / "deploy" / "gunicorn.conf.py"
NGINX = Path(shutil.which("nginx") or "/usr/sbin/nginx")
APP = "webapp:create_app()"
TRICKLE_BYTES_PER_SECOND = 10
# A probe slower than this counts as a stall (a healthy /healthz answers in milliseconds).
PROBE_TIMEOUT = 2.0


# --------------------------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------------------------


def answers(port: int, path: str | None) -> bool:
    """Whether the port accepts a connection (path None) or answers GET path with 200."""
    try:
        if path is None:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
        try:
            connection.request("GET", path)
            return connection.getresponse().status == 200
        finally:
            connection.close()
    except OSError:
        return False


@contextmanager
def running(
    command: list[str], port: int, log: Path, env: dict[str, str], ready_path: str | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A server process for the duration of the block, stopped (then killed) afterwards.

    It is ready when the port accepts connections, or when ``ready_path`` answers 200 (gunicorn
    listens before its worker has loaded the app).
    """
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while not answers(port, ready_path):
            assert process.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, f"{command[0]} not ready:\n{log.read_text()}"
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def app_env(tmp_path: Path, redis_url: str, **extra: str) -> dict[str, str]:
    """The web process's environment: testing settings on a throwaway SQLite and media root."""
    return {
        **os.environ,
        "SCANQUEUE_ENV": "testing",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'web.db'}",
        "REDIS_URL": redis_url,
        "MEDIA_ROOT": str(tmp_path / "media"),
        **extra,
    }


def render_nginx_config(tmp_path: Path, listen_port: int, web_port: int) -> Path:
    """The committed server block rendered as the nginx image does (envsubst of the variables
    it is given, every other $name left for nginx), inside a minimal main configuration."""
    server = string.Template(NGINX_TEMPLATE.read_text()).safe_substitute(
        NGINX_PORT=f"127.0.0.1:{listen_port}", SCANQUEUE_WEB=f"127.0.0.1:{web_port}"
    )
    (tmp_path / "scanqueue.conf").write_text(server)
    temp = tmp_path / "nginx-temp"
    temp.mkdir()
    # Started as root, nginx would run its workers as nobody, who cannot use the temp dirs here.
    user = "user root;" if os.geteuid() == 0 else ""
    main = f"""
        {user}
        worker_processes 1;
        pid {tmp_path / "nginx.pid"};
        error_log {tmp_path / "nginx-error.log"} warn;
        events {{ worker_connections 256; }}
        http {{
            access_log off;
            client_body_temp_path {temp / "body"};
            proxy_temp_path {temp / "proxy"};
            fastcgi_temp_path {temp / "fastcgi"};
            uwsgi_temp_path {temp / "uwsgi"};
            scgi_temp_path {temp / "scgi"};
            include {tmp_path / "scanqueue.conf"};
        }}
    """
    path = tmp_path / "nginx.conf"
    path.write_text(main)
    return path


@pytest.fixture(scope="module")
def nginx_binary() -> Path:
    """Debian's nginx, which `make test` installs like Chromium."""
    assert NGINX.is_file(), "nginx missing: `make test` installs Debian's nginx-light package"
    return NGINX


# --------------------------------------------------------------------------------------------
# clients
# --------------------------------------------------------------------------------------------


class SlowClient(threading.Thread):
    """Sends a sign-in POST at TRICKLE_BYTES_PER_SECOND: headers at once then a trickled body,
    or (slowloris) the headers themselves trickled."""

    def __init__(self, port: int, stop: threading.Event, trickle_headers: bool = False) -> None:
        super().__init__(daemon=True)
        self.port, self.stop, self.trickle_headers = port, stop, trickle_headers
        self.bytes_sent = 0
        self.cut_off: str | None = None  # why the server dropped us, if it did

    def run(self) -> None:
        body = b"email=slow%40example.org&password=" + b"x" * 4000
        head = (
            b"POST /account/signin HTTP/1.1\r\nHost: scanqueue.test\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                if not self.trickle_headers:
                    sock.sendall(head)
                for byte in (head if self.trickle_headers else b"") + body:
                    if self.stop.wait(1 / TRICKLE_BYTES_PER_SECOND):
                        return
                    sock.sendall(bytes([byte]))
                    self.bytes_sent += 1
        except OSError as exc:
            self.cut_off = repr(exc)


@contextmanager
def slow_clients(port: int, bodies: int, headers: int = 0) -> Iterator[list[SlowClient]]:
    """Some slow clients at work for the duration of the block."""
    stop = threading.Event()
    clients = [SlowClient(port, stop) for _ in range(bodies)]
    clients += [SlowClient(port, stop, trickle_headers=True) for _ in range(headers)]
    for client in clients:
        client.start()
    try:
        time.sleep(1.0)  # let them get their connections in first
        yield clients
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=5)


def probe_healthz(port: int, seconds: float) -> list[float | str]:
    """GET /healthz every 0.25 s for ``seconds``: each answer's latency, or why it failed."""
    results: list[float | str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=PROBE_TIMEOUT)
        try:
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            response.read()
            ok = response.status == 200
            results.append(time.monotonic() - started if ok else f"HTTP {response.status}")
        except OSError as exc:
            results.append(repr(exc))
        finally:
            connection.close()
        time.sleep(0.25)
    return results


# --------------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------------


def test_slow_clients_stall_a_bare_sync_gunicorn(tmp_path: Path, redis_url: str) -> None:
    """What the front protects against: the image's old command, one sync worker, no proxy."""
    port = free_port()
    # The image's old command (no control socket: other test servers may run beside it).
    command = [sys.executable, "-m", "gunicorn", "--no-control-socket"]
    command += ["-b", f"127.0.0.1:{port}", APP]
    env = app_env(tmp_path, redis_url)
    with (
        running(command, port, tmp_path / "gunicorn.log", env, ready_path="/healthz"),
        slow_clients(port, bodies=1),
    ):
        during = probe_healthz(port, 2 * PROBE_TIMEOUT)
    assert all(isinstance(result, str) for result in during), during


def test_nginx_and_gunicorn_keep_answering_while_slow_clients_trickle(
    tmp_path: Path, redis_url: str, nginx_binary: Path
) -> None:
    web_port, front_port = free_port(), free_port()
    # One gunicorn process, so the test shows nginx alone is what keeps the site up.
    env = app_env(tmp_path, redis_url, WEB_WORKERS="1", WEB_THREADS="4")
    gunicorn = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG)]
    gunicorn += ["-b", f"127.0.0.1:{web_port}", APP]
    config = render_nginx_config(tmp_path, front_port, web_port)
    nginx = [str(nginx_binary), "-c", str(config), "-g", "daemon off;"]
    with (
        running(gunicorn, web_port, tmp_path / "gunicorn.log", env, ready_path="/healthz"),
        running(nginx, front_port, tmp_path / "nginx.log", dict(os.environ)),
        # More slow clients than gunicorn has threads, body tricklers and slowloris alike.
        slow_clients(front_port, bodies=6, headers=2) as clients,
    ):
        during = probe_healthz(front_port, 5.0)
        still_trickling = [client for client in clients if client.cut_off is None]

    assert during and all(isinstance(result, float) for result in during), during
    # The attack was under way the whole time (nginx held the connections, did not refuse them).
    assert len(still_trickling) == len(clients), [c.cut_off for c in clients]
    assert all(client.bytes_sent >= 30 for client in clients)


def test_nginx_refuses_an_oversized_upload_in_the_api_shape(
    tmp_path: Path, redis_url: str, nginx_binary: Path
) -> None:
    web_port, front_port = free_port(), free_port()
    config = render_nginx_config(tmp_path, front_port, web_port)
    nginx = [str(nginx_binary), "-c", str(config), "-g", "daemon off;"]
    # No gunicorn at all: nginx answers from the Content-Length alone, before any body.
    with running(nginx, front_port, tmp_path / "nginx.log", dict(os.environ)):
        connection = http.client.HTTPConnection("127.0.0.1", front_port, timeout=5)
        connection.putrequest("POST", "/api/v1/jobs")
        connection.putheader("Content-Length", str(1501 * 1024 * 1024 + 1))
        connection.endheaders()
        response = connection.getresponse()
        body = response.read()
        connection.close()
        down = http.client.HTTPConnection("127.0.0.1", front_port, timeout=5)
        down.request("GET", "/api/v1/jobs")
        unavailable = down.getresponse()
        unavailable_body = unavailable.read()
        down.close()

    assert response.status == 413
    assert json.loads(body)["error"]["code"] == "request_too_large"
    # gunicorn down (restarting): a JSON 503 with Retry-After, not nginx's HTML 502 page.
    assert unavailable.status == 503 and unavailable.getheader("Retry-After") == "5"
    assert json.loads(unavailable_body)["error"]["code"] == "service_unavailable"
