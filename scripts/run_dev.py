#!/usr/bin/env python3
"""Supervisor behind ``make run``: one terminal, the whole system, Ctrl-C stops it all.

It migrates the database, makes sure a demo login exists, then runs the web server, a Celery
worker (both queues), Celery beat and Flower as child processes, prefixing each output line with
the child's name. Ctrl-C or SIGTERM stops every child (SIGTERM, then SIGKILL after
``STOP_TIMEOUT_S``) and exits 0; a child that dies on its own brings the rest down and the
supervisor exits non-zero, so a broken worker is never mistaken for a running system.

Runs inside the virtualenv (``make run`` wraps it in scripts/services.py, which exports
REDIS_URL). Standard library only. Environment: PORT (web, default 5000), FLOWER_PORT
(default 5555).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

REPO_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_DIR = REPO_ROOT / "instance"
LOGIN_FILE = INSTANCE_DIR / "dev-login.json"
BEAT_SCHEDULE = INSTANCE_DIR / "celerybeat-schedule"
METRICS_DIR = INSTANCE_DIR / "metrics"

DEMO_EMAIL = "demo@scanqueue.local"
# Key of the access token in the POST /api/v1/tokens response (used in the printed example).
TOKEN_FIELD = "token"
DEFAULT_PORT = 5000
DEFAULT_FLOWER_PORT = 5555
DEFAULT_SMTP_PORT = 8025
MAIL_DIR = INSTANCE_DIR / "mail"
# A filled disc on black: a valid binary mask for the perimeter example (Pillow is in .[web]).
MAKE_MASK = (
    '.venv/bin/python -c \'from PIL import Image, ImageDraw; im = Image.new("L", (256, 256)); '
    'ImageDraw.Draw(im).ellipse((64, 64, 192, 192), fill=255); im.save("mask.png")\''
)
STOP_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.2
# How long to wait for the web port before printing the banner anyway.
BANNER_WAIT_S = 30.0

RESET = "\033[0m"
BOLD = "\033[1m"


@dataclass(frozen=True)
class ProcessSpec:
    """One long-running child: its name (the output prefix), command line and colour."""

    name: str
    argv: tuple[str, ...]
    color: str
    # Variables for this child only, on top of the shared environment.
    extra_env: tuple[tuple[str, str], ...] = ()


def process_specs(python: str, port: int, flower_port: int, smtp_port: int) -> list[ProcessSpec]:
    """The processes ``make run`` supervises.

    ``python -m flask`` / ``python -m celery`` rather than the console scripts, so the children
    use exactly this interpreter's environment whatever PATH says.
    """
    flask = (python, "-m", "flask", "--app", "webapp")
    celery = (python, "-m", "celery", "-A", "workers.celery_app")
    worker = ("worker", "-Q", "gpu,cpu", "--loglevel", "INFO", "--concurrency", "2", "-n", "dev@%h")
    return [
        ProcessSpec(
            "web",
            (*flask, "run", "--host", "127.0.0.1", "--port", str(port)),
            "\033[36m",
        ),
        # Its pool processes' metrics are summed from files there (http://127.0.0.1:9808/metrics).
        ProcessSpec(
            "worker",
            (*celery, *worker),
            "\033[33m",
            (("PROMETHEUS_MULTIPROC_DIR", str(METRICS_DIR)),),
        ),
        ProcessSpec(
            "beat",
            (*celery, "beat", "--loglevel", "INFO", "--schedule", str(BEAT_SCHEDULE)),
            "\033[35m",
        ),
        ProcessSpec(
            "flower",
            (*celery, "flower", "--address=127.0.0.1", f"--port={flower_port}"),
            "\033[32m",
        ),
        # Email goes nowhere real in development: a local SMTP sink keeps it as .eml files.
        ProcessSpec(
            "mail",
            (
                python,
                str(REPO_ROOT / "scripts" / "mail_sink.py"),
                "--port",
                str(smtp_port),
                "--folder",
                str(MAIL_DIR),
            ),
            "\033[34m",
        ),
    ]


class Output:
    """Serialises lines from several children onto one stream, each with a name prefix."""

    def __init__(self, stream: IO[str], width: int) -> None:
        self._stream = stream
        self._width = width
        self._lock = threading.Lock()
        self._color = stream.isatty() and "NO_COLOR" not in os.environ

    def line(self, name: str, color: str, text: str) -> None:
        """Write one prefixed line."""
        prefix = f"{name:<{self._width}} |"
        if self._color:
            prefix = f"{color}{prefix}{RESET}"
        with self._lock:
            self._stream.write(f"{prefix} {text}\n")
            self._stream.flush()

    def note(self, text: str) -> None:
        """Write a supervisor message (unprefixed lines, bold when colour is on)."""
        if self._color:
            text = f"{BOLD}{text}{RESET}"
        with self._lock:
            self._stream.write(text + "\n")
            self._stream.flush()


class Child:
    """A running ``ProcessSpec`` plus the thread that copies its output."""

    def __init__(self, spec: ProcessSpec, env: dict[str, str], output: Output) -> None:
        self.spec = spec
        # Own process group: the terminal's Ctrl-C reaches only the supervisor, which then stops
        # the children in order, and a final SIGKILL can reach grandchildren (reloader, pool).
        self.proc = subprocess.Popen(
            spec.argv,
            cwd=REPO_ROOT,
            env={**env, **dict(spec.extra_env)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        self._pump = threading.Thread(
            target=self._copy_output, args=(output,), name=f"out-{spec.name}", daemon=True
        )
        self._pump.start()

    def _copy_output(self, output: Output) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            output.line(self.spec.name, self.spec.color, raw.decode(errors="replace").rstrip())

    def running(self) -> bool:
        """Whether the process has not exited yet."""
        return self.proc.poll() is None

    def signal_group(self, sig: signal.Signals, leader_only: bool = False) -> None:
        """Send ``sig`` to the child (or its whole process group); gone already is fine."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if leader_only:
                self.proc.send_signal(sig)
            else:
                os.killpg(self.proc.pid, sig)

    def finish_output(self, timeout: float = 1.0) -> None:
        """Give the output thread a moment to print the child's last lines."""
        self._pump.join(timeout)


class Supervisor:
    """Starts the children, watches them, and stops them all on a signal or a death."""

    def __init__(self, specs: list[ProcessSpec], env: dict[str, str], output: Output) -> None:
        self.specs = specs
        self.env = env
        self.output = output
        self.children: list[Child] = []
        self.stop_requested = threading.Event()
        self.force_kill = threading.Event()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # A second Ctrl-C while stopping means "don't wait": escalate to SIGKILL.
        if self.stop_requested.is_set():
            self.force_kill.set()
        self.stop_requested.set()

    def install_signal_handlers(self) -> None:
        """Route Ctrl-C, SIGTERM and a closed terminal to a clean stop."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def start(self) -> None:
        """Start every child."""
        for spec in self.specs:
            self.children.append(Child(spec, self.env, self.output))

    def watch(self, on_tick: Callable[[], None] | None = None) -> Child | None:
        """Block until a stop is requested (returns None) or a child exits (returns it)."""
        while not self.stop_requested.wait(POLL_INTERVAL_S):
            for child in self.children:
                if not child.running():
                    return child
            if on_tick is not None:
                on_tick()
        return None

    def stop(self) -> None:
        """SIGTERM every child, wait up to STOP_TIMEOUT_S, SIGKILL what is left."""
        alive = [c for c in self.children if c.running()]
        if alive:
            names = ", ".join(c.spec.name for c in alive)
            self.output.note(f"stopping {names} (Ctrl-C again to kill now)")
        # SIGTERM to the leader only: celery's master shuts its own pool down (warm shutdown),
        # and signalling pool processes directly would turn that into lost-task errors.
        for child in alive:
            child.signal_group(signal.SIGTERM, leader_only=True)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while (
            any(c.running() for c in alive)
            and time.monotonic() < deadline
            and not self.force_kill.is_set()
        ):
            time.sleep(0.1)
        for child in self.children:
            if child.running():
                self.output.note(f"{child.spec.name} did not stop in time; killing it")
            # Also sweeps up grandchildren a dead leader left behind (they would hold the port).
            child.signal_group(signal.SIGKILL)
            child.proc.wait()
            child.finish_output()


def port_is_free(port: int) -> bool:
    """Whether something could listen on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def port_answers(port: int) -> bool:
    """Whether a server accepts connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def flask_cli(
    python: str, env: dict[str, str], *args: str, capture: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run ``flask --app webapp ARGS`` with the project's environment."""
    return subprocess.run(
        [python, "-m", "flask", "--app", "webapp", *args],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=capture,
        text=True,
    )


def load_password() -> str | None:
    """The demo password saved by an earlier run, if any."""
    try:
        data = json.loads(LOGIN_FILE.read_text())
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and data.get("email") == DEMO_EMAIL and data.get("password"):
        return str(data["password"])
    return None


def save_password(password: str) -> None:
    """Keep the demo password so it is the same on every run (readable by the owner only)."""
    INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOGIN_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"email": DEMO_EMAIL, "password": password}, handle, indent=2)
        handle.write("\n")


def ensure_demo_login(python: str, env: dict[str, str]) -> str | None:
    """Create the demo user if needed; return its password, or None when it is unknown."""
    stored = load_password()
    exists = flask_cli(python, env, "users", "exists", DEMO_EMAIL, capture=True)
    if exists.returncode not in (0, 1):
        raise RuntimeError(
            f"`flask users exists` failed (exit {exists.returncode}):\n"
            f"{(exists.stdout + exists.stderr).strip()}"
        )
    if exists.returncode == 0:
        return stored  # None: created by hand or the JSON file was deleted
    password = stored or secrets.token_urlsafe(12)
    # Saved first: if creation fails half-way, the next run retries with the same password.
    save_password(password)
    created = flask_cli(python, env, "users", "create", DEMO_EMAIL, "--password", password)
    if created.returncode != 0:
        raise RuntimeError(f"`flask users create {DEMO_EMAIL}` failed (exit {created.returncode})")
    return password


def banner(port: int, flower_port: int, smtp_port: int, password: str | None) -> str:
    """URLs, login and copy-paste API examples."""
    base = f"http://127.0.0.1:{port}"
    if password is None:
        login = (
            f"{DEMO_EMAIL} (password unknown: the user exists but {LOGIN_FILE} is missing; "
            "delete the user or the dev database to get a fresh one)"
        )
        password = "PASSWORD"
    else:
        login = f"{DEMO_EMAIL} / {password}   (kept in {os.path.relpath(LOGIN_FILE, REPO_ROOT)})"
    extract = f"python3 -c 'import json,sys; print(json.load(sys.stdin)[\"{TOKEN_FIELD}\"])'"
    return "\n".join(
        [
            "",
            "ScanQueue is running. Ctrl-C stops everything.",
            f"  Web       {base}/",
            f"  API docs  {base}/api/v1/openapi.json",
            f"  Flower    http://127.0.0.1:{flower_port}/",
            f"  Mail      smtp://127.0.0.1:{smtp_port} keeps every email as "
            f"{os.path.relpath(MAIL_DIR, REPO_ROOT)}/*.eml (confirmation and reset links)",
            f"  Login     {login}",
            "",
            "  Get a token:",
            f"    curl -u '{DEMO_EMAIL}:{password}' -X POST {base}/api/v1/tokens",
            "  Or keep it in a variable, make a test mask and submit a perimeter job:",
            f"    TOKEN=$(curl -s -u '{DEMO_EMAIL}:{password}' -X POST {base}/api/v1/tokens"
            f" | {extract})",
            f"    {MAKE_MASK}",
            '    curl -H "Authorization: Bearer $TOKEN" -F type=perimeter -F files=@mask.png '
            f"-F 'params={{\"pixel_spacing_mm\":0.1}}' {base}/api/v1/jobs",
            "",
        ]
    )


def child_env() -> dict[str, str]:
    """Environment for every child: development settings, unbuffered output through pipes."""
    env = dict(os.environ)
    env.setdefault("SCANQUEUE_ENV", "development")
    # No FLASK_DEBUG by default: the interactive debugger runs code; export it to opt in.
    # Without this, Python children block-buffer their logs when writing into our pipe.
    env["PYTHONUNBUFFERED"] = "1"
    return env


def main() -> int:
    """Prepare, supervise, and return the exit code (0 after Ctrl-C/SIGTERM)."""
    python = sys.executable
    port = int(os.environ.get("PORT") or DEFAULT_PORT)
    flower_port = int(os.environ.get("FLOWER_PORT") or DEFAULT_FLOWER_PORT)
    smtp_port = int(os.environ.get("SMTP_PORT") or DEFAULT_SMTP_PORT)
    env = child_env()
    env.setdefault("SMTP_HOST", "127.0.0.1")
    env["SMTP_PORT"] = str(smtp_port)
    env.setdefault("PUBLIC_URL", f"http://127.0.0.1:{port}")
    specs = process_specs(python, port, flower_port, smtp_port)
    output = Output(sys.stdout, max(len(s.name) for s in specs))

    for what, number, variable in (
        ("web", port, "PORT"),
        ("Flower", flower_port, "FLOWER_PORT"),
        ("mail sink", smtp_port, "SMTP_PORT"),
    ):
        if not port_is_free(number):
            output.note(f"error: port {number} ({what}) is in use; set {variable}=... to another")
            return 1

    INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    output.note("applying migrations: flask --app webapp db upgrade")
    if (rc := flask_cli(python, env, "db", "upgrade").returncode) != 0:
        output.note(f"error: migrations failed (exit {rc})")
        return rc
    try:
        password = ensure_demo_login(python, env)
    except RuntimeError as exc:
        output.note(f"error: {exc}")
        return 1

    supervisor = Supervisor(specs, env, output)
    # Handlers before the first child starts: a Ctrl-C at any later moment stops cleanly.
    supervisor.install_signal_handlers()
    supervisor.start()

    started = time.monotonic()
    shown = False

    def show_banner_when_web_is_up() -> None:
        nonlocal shown
        if not shown and (port_answers(port) or time.monotonic() - started > BANNER_WAIT_S):
            output.note(banner(port, flower_port, smtp_port, password))
            shown = True

    dead = supervisor.watch(on_tick=show_banner_when_web_is_up)
    if dead is None:
        supervisor.stop()
        output.note("all processes stopped")
        return 0
    rc = dead.proc.returncode
    output.note(f"{dead.spec.name} exited unexpectedly (code {rc}); stopping the others")
    supervisor.stop()
    return rc if rc > 0 else 1  # killed by a signal (negative) or exited 0: still a failure


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C during migrations or user setup, before supervision
        sys.exit(130)
