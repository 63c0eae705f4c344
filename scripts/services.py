#!/usr/bin/env python3
"""Make Redis (and, for tests, Postgres) reachable, export their URLs, then run a command.

Usage::

    python scripts/services.py [--redis] [--postgres] -- CMD ARGS...
    python scripts/services.py [--redis] [--postgres]     # print `export NAME=URL` lines
    python scripts/services.py stop [--purge]

``REDIS_URL`` (default redis://127.0.0.1:6379/0) and ``TEST_DATABASE_URL`` (default
postgresql://postgres@127.0.0.1:5432/postgres) are used when they answer; otherwise a private
server is started (or reused) on 127.0.0.1 with its files under ``instance/services/`` (as root,
Postgres's are in the temp dir, which the postgres user can reach), installed with apt-get when
missing and we are root on Debian. ``stop`` ends them; ``--purge`` also deletes their data.
Probes use the venv's redis and psycopg2; ``stop`` needs only the standard library (CI runs it
with the system python3).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICES_DIR = REPO_ROOT / "instance" / "services"
REDIS_DIR = SERVICES_DIR / "redis"
REDIS_PID, REDIS_LOG = REDIS_DIR / "redis.pid", REDIS_DIR / "redis.log"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PROBE_TIMEOUT_S, START_TIMEOUT_S, STOP_TIMEOUT_S = 2.0, 60.0, 15.0


class ServiceError(RuntimeError):
    """A service could not be reached or started; the message says what to do about it."""


def say(message: str) -> None:
    """Report progress on stderr, so that the wrapped command's stdout stays its own."""
    print(f"services: {message}", file=sys.stderr, flush=True)


def redact(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` for printing."""
    password = urlsplit(url).password
    return url if password is None else url.replace(f":{password}@", ":***@", 1)


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    """Call ``check`` until it returns true or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def probe_redis(url: str, timeout: float = PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """PING the Redis at ``url``; return (answered, reason when it did not)."""
    import redis  # the venv's; `stop` must work without it

    try:
        # retry=None: a probe asks once; redis-py's default retries would multiply the wait.
        kwargs = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "retry": None}
        with redis.Redis.from_url(url, **kwargs) as client:
            client.ping()
    except (redis.RedisError, OSError, ValueError) as exc:
        return False, str(exc) or type(exc).__name__
    return True, ""


def redis_ping(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the Redis at ``url`` answers PING."""
    return probe_redis(url, timeout)[0]


def probe_postgres(url: str, timeout: float = PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """Whether ``url`` accepts a login and a query; (ok, reason when not)."""
    import psycopg2  # the venv's; `stop` must work without it

    dsn = url.replace("+psycopg2://", "://", 1)  # libpq rejects SQLAlchemy's driver suffix
    try:
        with contextlib.closing(psycopg2.connect(dsn, connect_timeout=max(1, int(timeout)))) as db:
            db.cursor().execute("select 1")
    except psycopg2.Error as exc:
        return False, (str(exc).strip().splitlines() or ["connection failed"])[0]
    return True, ""


def running_pid(pid_file: Path, name: str) -> int | None:
    """The pid in ``pid_file`` if that process runs ``name`` (not a stale file's reused pid)."""
    try:
        pid = int(pid_file.read_text().split()[0])
        return pid if name.encode() in Path(f"/proc/{pid}/cmdline").read_bytes() else None
    except (OSError, ValueError, IndexError):
        return None


def saved_port(directory: Path) -> int | None:
    """The port a private server was last given (``state.json``), so restarts keep the URL."""
    with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
        return int(json.loads((directory / "state.json").read_text()).get("port"))
    return None


def pick_port(directory: Path, configured: str, default: int) -> int:
    """A free port: the server's last one, else the configured one, else any."""
    with contextlib.suppress(ValueError):
        default = urlsplit(configured).port or default
    for port in (saved_port(directory) or default, default, 0):
        with socket.socket() as sock:
            # Servers set SO_REUSEADDR too, so a port in TIME_WAIT is free, as it is for them.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with contextlib.suppress(OSError):
                sock.bind(("127.0.0.1", port))
                return int(sock.getsockname()[1])
    raise ServiceError("no free port on 127.0.0.1")


def log_tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a server log, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) or "(empty log)"
    except OSError:
        return "(no log)"


def run_checked(cmd: list[str], what: str, log: Path, cwd: Path | None = None) -> None:
    """Run a server command, raising ServiceError with its output and the log when it fails."""
    result = subprocess.run(
        cmd, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=START_TIMEOUT_S * 2,
    )  # fmt: skip
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise ServiceError(
            f"{what} failed (exit {result.returncode}):\n{output}\n--- {log} ---\n{log_tail(log)}"
        )


def installed(find: Callable[[], str | Path | None], package: str) -> Path:
    """What ``find`` finds, after installing Debian ``package`` with apt-get if needed."""
    if (found := find()) is not None:
        return Path(found)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ServiceError(
            f"{package} is not installed and cannot be installed automatically (that needs "
            f"root and apt-get). Install it, e.g. `sudo apt-get install -y {package}`, "
            "or point the URL variable at a running server."
        )
    say(f"{package} not found; installing it with apt-get (one time)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["update"], ["install", "-y", "--no-install-recommends", package]):
        # apt's chatter goes to stderr: stdout belongs to the command we exec afterwards.
        apt = subprocess.run(
            ["apt-get", *cmd], env=env, stdin=subprocess.DEVNULL, stdout=sys.stderr
        )
        if apt.returncode != 0:
            raise ServiceError(f"`apt-get {' '.join(cmd)}` failed with exit code {apt.returncode}")
    if (found := find()) is None:
        raise ServiceError(f"{package} is still missing after apt-get install")
    return Path(found)


@contextlib.contextmanager
def services_lock() -> Iterator[None]:
    """Serialise concurrent callers (two `make test` at once) so they start one server, not two."""
    SERVICES_DIR.mkdir(parents=True, exist_ok=True)
    with open(SERVICES_DIR / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@dataclass(frozen=True)
class Private:
    """A private server: where its files are, how to start and stop it, what its URL is."""

    name: str  # also a word of its process's command line
    directory: Path
    pid_file: Path
    log: Path
    default_port: int
    start: Callable[[int], None]
    url: Callable[[int], str]
    stop_signal: signal.Signals


def start_redis(port: int) -> None:
    """Start a private, daemonized redis-server on ``port``."""
    path = f"{os.environ.get('PATH', '')}:/usr/bin:/usr/sbin"  # Debian's, even if not on PATH
    binary = installed(lambda: shutil.which("redis-server", path=path), "redis-server")
    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    run_checked(
        [str(binary), "--bind", "127.0.0.1", "--port", str(port), "--daemonize", "yes",
         "--pidfile", str(REDIS_PID), "--logfile", str(REDIS_LOG), "--dir", str(REDIS_DIR),
         # A dev/test broker: nothing worth keeping across restarts, so no disk writes at all.
         "--save", "", "--appendonly", "no"],
        "redis-server", REDIS_LOG,
    )  # fmt: skip


def private_redis(configured: str) -> Private:
    """The private Redis; its URL keeps the configured database number."""
    db = urlsplit(configured).path.strip("/") or "0"
    return Private(
        "redis", REDIS_DIR, REDIS_PID, REDIS_LOG, 6379, start_redis,
        lambda port: f"redis://127.0.0.1:{port}/{db}", signal.SIGTERM,
    )  # fmt: skip


def postgres_dir() -> Path:
    """The private cluster's directory; as root, one the postgres user can reach (not /root)."""
    if os.geteuid() != 0:
        return SERVICES_DIR / "postgres"
    digest = hashlib.sha256(str(REPO_ROOT).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"scanqueue-postgres-{digest}"


def find_postgres_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl (Debian: /usr/lib/postgresql/<major>/bin)."""
    on_path = [Path(p).resolve().parent for p in filter(None, [shutil.which("initdb")])]
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0,
        reverse=True,
    )
    both = [d for d in on_path + debian if (d / "initdb").exists() and (d / "pg_ctl").exists()]
    return both[0] if both else None


def as_postgres_user(directory: Path) -> list[str]:
    """Command prefix that drops root to the postgres user, who is given ``directory``."""
    if os.geteuid() != 0:
        return []
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        # Binaries present without the account (unusual packaging): create a system user.
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home",
             "--shell", "/usr/sbin/nologin", "postgres"],
            check=True,
        )  # fmt: skip
        user = pwd.getpwnam("postgres")
    os.chown(directory, user.pw_uid, user.pw_gid)
    return ["runuser", "-u", "postgres", "--"]


def start_postgres(port: int) -> None:
    """Start the private Postgres cluster on ``port``, creating it on first use."""
    bindir = installed(find_postgres_bindir, "postgresql")
    directory = postgres_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    prefix = as_postgres_user(directory)  # Postgres refuses to run as root
    data, log = directory / "data", directory / "postgres.log"
    if not (data / "PG_VERSION").exists():
        say(f"postgres: creating a private cluster in {data}")
        run_checked(
            [*prefix, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
             "-E", "UTF8", "--no-locale"],
            "initdb", log, cwd=directory,
        )  # fmt: skip
    # TCP only (-k ''), and a throwaway test cluster: durability settings off for speed.
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k '' -c fsync=off "
    options += "-c synchronous_commit=off -c full_page_writes=off"
    run_checked(
        [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w",
         "-t", str(int(START_TIMEOUT_S)), "-o", options, "start"],
        "pg_ctl start", log, cwd=directory,  # the postgres user may not enter our cwd
    )  # fmt: skip


def private_postgres() -> Private:
    """The private Postgres cluster."""
    directory = postgres_dir()
    return Private(
        "postgres", directory, directory / "data" / "postmaster.pid",
        directory / "postgres.log", 5432, start_postgres,
        lambda port: f"postgresql://postgres@127.0.0.1:{port}/postgres",
        # SIGINT is Postgres's "fast" shutdown (what pg_ctl -m fast sends); no runuser needed.
        signal.SIGINT,
    )  # fmt: skip


def ensure(configured: str, probe: Callable[[str], tuple[bool, str]], private: Private) -> str:
    """The configured URL if it answers, else that of a running or newly started private one."""
    ok, why = probe(configured)
    if ok:
        say(f"{private.name}: using {redact(configured)}")
        return configured
    failed = f"{private.name}: {redact(configured)} not reachable ({why})"
    port = saved_port(private.directory)
    if port and running_pid(private.pid_file, private.name):
        url = private.url(port)
        # A running Postgres may still be recovering after a crash: give it a moment.
        if wait_for(lambda: probe(url)[0], 10.0, interval=0.5):
            say(f"{failed}; reusing private {url}")
            return url
    port = pick_port(private.directory, configured, private.default_port)
    private.start(port)
    url = private.url(port)
    if not wait_for(lambda: probe(url)[0], START_TIMEOUT_S, interval=0.5):
        raise ServiceError(
            f"private {private.name} on port {port} does not answer: {probe(url)[1]}\n"
            f"--- {private.log} ---\n{log_tail(private.log)}"
        )
    (private.directory / "state.json").write_text(json.dumps({"port": port}) + "\n")
    say(f"{failed}; started private {url}")
    return url


def stop(private: Private) -> None:
    """Stop a running private server, with SIGKILL if it ignores its stop signal."""
    name, sig = private.name, private.stop_signal
    if (pid := running_pid(private.pid_file, name)) is None:
        say(f"{name}: no private server running")
        return
    os.kill(pid, sig)
    if not wait_for(lambda: not running_pid(private.pid_file, name), STOP_TIMEOUT_S):
        say(f"{name}: pid {pid} ignored {sig.name} for {STOP_TIMEOUT_S:.0f}s; killing it")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    say(f"{name}: stopped private server (pid {pid})")


def stop_services(purge: bool = False) -> int:
    """Stop the private servers this script started; with ``purge`` also delete their data."""
    for private in (private_redis(DEFAULT_REDIS_URL), private_postgres()):
        stop(private)
        if purge:
            shutil.rmtree(private.directory, ignore_errors=True)
            say(f"{private.name}: removed private server data in {private.directory}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns an exit code, or does not return once it has exec'd the command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["stop"]:
        stop_parser = argparse.ArgumentParser(prog="services.py stop")
        stop_parser.add_argument("--purge", action="store_true", help="also delete their data")
        return stop_services(stop_parser.parse_args(argv[1:]).purge)
    parser = argparse.ArgumentParser(
        prog="services.py",
        description="Ensure Redis/Postgres are reachable, export their URLs, exec a command.",
        usage="%(prog)s [--redis] [--postgres] [-- CMD ARGS...] | stop [--purge]",
    )
    parser.add_argument("--redis", action="store_true", help="ensure REDIS_URL answers PING")
    parser.add_argument("--postgres", action="store_true", help="ensure TEST_DATABASE_URL works")
    split = argv.index("--") if "--" in argv else len(argv)
    args, command = parser.parse_args(argv[:split]), argv[split + 1 :]

    exports: dict[str, str] = {}
    try:
        with services_lock():
            if args.redis:
                url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
                exports["REDIS_URL"] = ensure(url, probe_redis, private_redis(url))
            if args.postgres:
                url = os.environ.get("TEST_DATABASE_URL") or DEFAULT_TEST_DATABASE_URL
                exports["TEST_DATABASE_URL"] = ensure(url, probe_postgres, private_postgres())
    except (ServiceError, subprocess.SubprocessError, OSError) as exc:
        say(f"error: {exc}")
        return 1
    os.environ.update(exports)
    if not command:
        # No command: print shell exports, for `eval "$(python scripts/services.py --redis)"`.
        for name, url in exports.items():
            print(f"export {name}={shlex.quote(url)}")
        return 0
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        say(f"error: cannot run {command[0]!r}: {exc}")
    return 127  # only reached when execvp failed


if __name__ == "__main__":
    sys.exit(main())
