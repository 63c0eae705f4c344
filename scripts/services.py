#!/usr/bin/env python3
"""Make Redis (and, for tests, Postgres) reachable, export their URLs, then run a command.

Usage::

    python scripts/services.py [--redis] [--postgres] -- CMD ARGS...
    python scripts/services.py [--redis] [--postgres]     # print `export NAME=URL` lines
    python scripts/services.py stop [--purge]

For each requested service the configured URL is tried first (``REDIS_URL``, default
redis://127.0.0.1:6379/0; ``TEST_DATABASE_URL``, default
postgresql://postgres@127.0.0.1:5432/postgres). When it does not answer, a private server is
started on 127.0.0.1 with its files under ``instance/services/`` and the variable is pointed at
it. The binaries are installed with apt-get when they are missing and we are root on Debian.
A later call reuses a private server that is still running; ``stop`` ends them (``--purge``
also deletes their data).

Standard library only: this runs with the system Python before the virtualenv exists.
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
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICES_DIR = REPO_ROOT / "instance" / "services"
REDIS_DIR = SERVICES_DIR / "redis"
POSTGRES_DIR = SERVICES_DIR / "postgres"
LOCK_FILE = SERVICES_DIR / ".lock"

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_PORT = 6379
DEFAULT_POSTGRES_PORT = 5432
POSTGRES_SYSTEM_USER = "postgres"

PROBE_TIMEOUT_S = 2.0
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# sun_path is 108 bytes on Linux; Postgres appends "/.s.PGSQL.NNNNN" to the socket directory.
MAX_UNIX_SOCKET_PATH = 107


class ServiceError(RuntimeError):
    """A service could not be reached or started; the message says what to do about it."""


def say(message: str) -> None:
    """Report progress on stderr, so that the wrapped command's stdout stays its own."""
    print(f"services: {message}", file=sys.stderr, flush=True)


def redact(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    userinfo = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{userinfo}:***@{netloc[1]}"))


# --------------------------------------------------------------------------------------------
# Small process, port and file helpers
# --------------------------------------------------------------------------------------------


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``host:port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR too, so a port in TIME_WAIT counts as free, as it is for them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(preferred: Iterable[int | None]) -> int:
    """Return the first free port of ``preferred``, else one the kernel picks."""
    for port in preferred:
        if port and port_is_free(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def local_port(url: str, default: int) -> int | None:
    """The port of ``url`` when it points at this machine (so a private server may take it)."""
    try:
        parts = urlsplit(url)
        if (parts.hostname or "127.0.0.1") in LOOPBACK_HOSTS:
            return parts.port or default
    except ValueError:
        pass
    return None


def pid_alive(pid: int | None, expect_in_cmdline: str | None = None) -> bool:
    """Whether process ``pid`` exists (and, where /proc tells, runs ``expect_in_cmdline``).

    The command-line check guards against a stale pid file whose number now belongs to an
    unrelated process, which we must neither reuse nor signal.
    """
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if expect_in_cmdline:
        cmdline = Path(f"/proc/{pid}/cmdline")
        with contextlib.suppress(OSError):
            return expect_in_cmdline in cmdline.read_bytes().decode(errors="replace")
    return True


def read_pid(path: Path) -> int | None:
    """The pid on the first line of ``path``, or None when absent or unreadable."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def read_state(directory: Path) -> dict[str, int]:
    """Read ``state.json`` of a private service (the port it was last given)."""
    try:
        data = json.loads((directory / "state.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_state(directory: Path, state: dict[str, int]) -> None:
    """Record a private service's port, so that restarts keep the same URL."""
    (directory / "state.json").write_text(json.dumps(state) + "\n")


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    """Call ``check`` until it returns true or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def log_tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a server log, for error messages."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(empty log)"


@contextlib.contextmanager
def services_lock() -> Iterator[None]:
    """Serialise concurrent callers (two `make test` at once) so they start one server, not two."""
    SERVICES_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def apt_install(packages: Sequence[str], what: str) -> None:
    """Install Debian ``packages`` non-interactively, or explain why we cannot."""
    names = " ".join(packages)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ServiceError(
            f"{what} is not installed and cannot be installed automatically "
            f"(that needs root and apt-get). Install it, e.g. `sudo apt-get install -y {names}`, "
            "or point the URL variable at a running server."
        )
    say(f"{what} not found; installing {names} with apt-get (one time)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", *packages],
    ):
        # apt's chatter goes to stderr: stdout belongs to the command we exec afterwards.
        result = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=sys.stderr)
        if result.returncode != 0:
            raise ServiceError(f"`{' '.join(cmd)}` failed with exit code {result.returncode}")


# --------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------


def _resp_command(*args: str) -> bytes:
    """Encode a Redis command as a RESP array of bulk strings."""
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _read_line(sock: socket.socket, limit: int = 65536) -> bytes:
    """Read one CRLF-terminated RESP reply line."""
    buf = b""
    while not buf.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk or len(buf) > limit:
            raise ConnectionError("connection closed before a full reply")
        buf += chunk
    return buf


def probe_redis(url: str, timeout: float = PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """PING the Redis at ``url``; return (answered PONG, reason when it did not)."""
    try:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            return False, f"unsupported scheme {parts.scheme!r} (want redis:// or rediss://)"
        host, port = parts.hostname or "127.0.0.1", parts.port or DEFAULT_REDIS_PORT
        raw = socket.create_connection((host, port), timeout=timeout)
        sock: socket.socket = raw
        try:
            if parts.scheme == "rediss":
                sock = ssl.create_default_context().wrap_socket(raw, server_hostname=host)
            if parts.password is not None:
                creds = [unquote(parts.password)]
                if parts.username:
                    creds.insert(0, unquote(parts.username))
                sock.sendall(_resp_command("AUTH", *creds))
                reply = _read_line(sock)
                if not reply.startswith(b"+OK"):
                    return False, f"AUTH refused: {reply.decode(errors='replace').strip()}"
            sock.sendall(_resp_command("PING"))
            reply = _read_line(sock)
        finally:
            sock.close()
            raw.close()
    except (OSError, ValueError) as exc:
        return False, str(exc) or type(exc).__name__
    if reply.startswith(b"+PONG"):
        return True, ""
    return False, f"PING answered {reply.decode(errors='replace').strip()!r}"


def redis_ping(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the Redis at ``url`` answers PING with PONG."""
    return probe_redis(url, timeout)[0]


def find_redis_server() -> str | None:
    """Path of the redis-server binary, if installed (Debian keeps it in /usr/bin)."""
    return shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if os.access(p, os.X_OK)),
        None,
    )


def _redis_url_for_port(port: int, configured: str) -> str:
    """A URL for a private server on ``port`` that keeps the configured database number."""
    try:
        db = urlsplit(configured).path.strip("/") or "0"
    except ValueError:
        db = "0"
    return f"redis://127.0.0.1:{port}/{db}"


def ensure_redis(configured: str) -> str:
    """Return a Redis URL that answers PING, starting a private server when needed."""
    ok, why = probe_redis(configured)
    if ok:
        say(f"redis: using {redact(configured)}")
        return configured

    pid_file = REDIS_DIR / "redis.pid"
    state = read_state(REDIS_DIR)
    if pid_alive(read_pid(pid_file), "redis") and state.get("port"):
        url = _redis_url_for_port(state["port"], configured)
        if wait_for(lambda: redis_ping(url), 3.0):
            say(f"redis: {redact(configured)} not reachable ({why}); reusing private {url}")
            return url

    binary = find_redis_server()
    if binary is None:
        apt_install(["redis-server"], "redis-server")
        binary = find_redis_server()
        if binary is None:
            raise ServiceError("redis-server is still missing after apt-get install")

    data_dir = REDIS_DIR / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    log_file = REDIS_DIR / "redis.log"
    port = pick_port(
        [state.get("port"), local_port(configured, DEFAULT_REDIS_PORT), DEFAULT_REDIS_PORT]
    )
    cmd = [
        binary,
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--daemonize", "yes",
        "--pidfile", str(pid_file),
        "--dir", str(data_dir),
        "--logfile", str(log_file),
        # A dev/test broker: nothing worth keeping across restarts, so no disk writes at all.
        "--save", "",
        "--appendonly", "no",
    ]  # fmt: skip
    result = subprocess.run(
        cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=START_TIMEOUT_S
    )
    url = _redis_url_for_port(port, configured)
    if result.returncode != 0 or not wait_for(lambda: redis_ping(url), START_TIMEOUT_S):
        raise ServiceError(
            f"private redis-server on port {port} did not answer PING "
            f"(exit {result.returncode}).\n{result.stderr.strip()}\n"
            f"--- {log_file} ---\n{log_tail(log_file)}"
        )
    write_state(REDIS_DIR, {"port": port})
    say(f"redis: {redact(configured)} not reachable ({why}); started private {url}")
    return url


# --------------------------------------------------------------------------------------------
# Postgres
# --------------------------------------------------------------------------------------------


def libpq_url(url: str) -> str:
    """Drop a SQLAlchemy driver suffix (``postgresql+psycopg2://``), which libpq rejects."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}"


def probe_postgres(url: str, timeout: float = PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """Whether ``url`` accepts a login and a query; (ok, reason when not).

    Uses psycopg2 (the Makefile runs this script from the venv), else psql; a bare TCP connect
    would accept any process listening on the port.
    """
    try:
        scheme = urlsplit(url).scheme
    except ValueError as exc:
        return False, str(exc)
    if scheme.split("+", 1)[0] not in ("postgresql", "postgres"):
        return False, f"unsupported scheme {scheme!r} (want postgresql://)"
    dsn = libpq_url(url)
    try:
        import psycopg2  # type: ignore[import-not-found]  # only inside the venv
    except ImportError:
        psycopg2 = None
    if psycopg2 is not None:
        try:
            conn = psycopg2.connect(dsn, connect_timeout=max(1, int(timeout)))
            try:
                with conn.cursor() as cur:
                    cur.execute("select 1")
            finally:
                conn.close()
            return True, ""
        except psycopg2.Error as exc:
            return False, (str(exc).strip().splitlines() or ["connection failed"])[0]
    psql = shutil.which("psql")
    if psql:
        env = {**os.environ, "PGCONNECT_TIMEOUT": str(max(1, int(timeout)))}
        try:
            result = subprocess.run(
                [psql, "-X", "-w", "-tA", "-c", "select 1", dsn],
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout + 10,
            )
        except subprocess.TimeoutExpired:
            return False, "psql timed out"
        if result.returncode == 0 and result.stdout.strip() == "1":
            return True, ""
        return False, (result.stderr.strip().splitlines() or ["psql failed"])[0].strip()
    return False, "neither psycopg2 nor psql is available to check the login"


def find_postgres_bindir() -> Path | None:
    """Directory holding initdb and pg_ctl (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = shutil.which("pg_ctl")
    if found:
        bindir = Path(found).resolve().parent
        if (bindir / "initdb").exists():
            return bindir
    candidates = [
        Path(p)
        for p in Path("/usr/lib/postgresql").glob("*/bin")
        if (Path(p) / "initdb").exists() and (Path(p) / "pg_ctl").exists()
    ]

    def major(path: Path) -> float:
        try:
            return float(path.parent.name)
        except ValueError:
            return 0.0

    return max(candidates, key=major, default=None)


def _run_as_postgres() -> list[str]:
    """Command prefix that drops root to the postgres user (Postgres refuses to run as root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        # Binaries present without the account (unusual packaging): create a system user.
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home",
             "--shell", "/usr/sbin/nologin", POSTGRES_SYSTEM_USER],
            check=True,
        )  # fmt: skip
    if shutil.which("runuser") is None:
        raise ServiceError("runuser (util-linux) is needed to run Postgres as a non-root user")
    return ["runuser", "-u", POSTGRES_SYSTEM_USER, "--"]


def _chown_to_postgres(path: Path) -> None:
    """Give ``path`` to the postgres user when we are root."""
    if os.geteuid() == 0:
        entry = pwd.getpwnam(POSTGRES_SYSTEM_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _postgres_can_use(prefix: list[str], directory: Path) -> bool:
    """Whether the user Postgres runs as can write ``directory`` (every parent traversable)."""
    if not prefix:
        return os.access(directory, os.W_OK | os.X_OK)
    probe = [*prefix, "test", "-w", str(directory), "-a", "-x", str(directory)]
    return subprocess.run(probe, stdin=subprocess.DEVNULL).returncode == 0


def prepare_postgres_dir(prefix: list[str]) -> Path:
    """Create ``instance/services/postgres`` for the postgres user; return the real directory.

    When the checkout is somewhere that user cannot reach (a clone under /root, mode 700), the
    folder becomes a symlink to a per-checkout directory under the system temp dir instead, and
    that directory is returned: the postgres user must never be handed a path through /root.
    """
    SERVICES_DIR.mkdir(parents=True, exist_ok=True)
    if POSTGRES_DIR.is_symlink():
        target = POSTGRES_DIR.resolve()
        target.mkdir(mode=0o700, parents=True, exist_ok=True)  # e.g. /tmp was cleaned
        _chown_to_postgres(target)
        return target
    POSTGRES_DIR.mkdir(exist_ok=True)
    _chown_to_postgres(POSTGRES_DIR)
    if _postgres_can_use(prefix, POSTGRES_DIR):
        return POSTGRES_DIR
    digest = hashlib.sha256(str(REPO_ROOT).encode()).hexdigest()[:12]
    target = Path(tempfile.gettempdir()) / f"scanqueue-postgres-{digest}"
    target.mkdir(mode=0o700, exist_ok=True)
    _chown_to_postgres(target)
    with contextlib.suppress(OSError):
        POSTGRES_DIR.rmdir()  # only if empty; a populated dir is a real problem, reported below
    if POSTGRES_DIR.exists():
        raise ServiceError(
            f"the {POSTGRES_SYSTEM_USER} user cannot write {POSTGRES_DIR}; "
            "make its parent directories traversable (chmod o+x) or remove it"
        )
    POSTGRES_DIR.symlink_to(target, target_is_directory=True)
    say(f"postgres: {REPO_ROOT} is not reachable by user postgres; data lives in {target}")
    return target


def running_postgres_port(data_dir: Path) -> int | None:
    """Port of the private postmaster if it runs (line 4 of postmaster.pid), else None."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    return port if pid_alive(pid, "postgres") else None


def _postgres_url_for_port(port: int) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def ensure_postgres(configured: str) -> str:
    """Return a Postgres URL that accepts a login, starting a private cluster when needed."""
    ok, why = probe_postgres(configured)
    if ok:
        say(f"postgres: using {redact(configured)}")
        return configured

    data_dir = POSTGRES_DIR / "data"
    port = running_postgres_port(data_dir)
    if port is not None:
        url = _postgres_url_for_port(port)
        # A postmaster that is running may still be recovering after a crash: give it a moment.
        if wait_for(lambda: probe_postgres(url)[0], 10.0, interval=0.5):
            say(f"postgres: {redact(configured)} not usable ({why}); reusing private {url}")
            return url

    bindir = find_postgres_bindir()
    if bindir is None:
        apt_install(["postgresql"], "Postgres (initdb/pg_ctl)")
        bindir = find_postgres_bindir()
        if bindir is None:
            raise ServiceError("initdb/pg_ctl still missing after apt-get install postgresql")

    prefix = _run_as_postgres()
    base = prepare_postgres_dir(prefix)
    data_dir = base / "data"
    log_file = base / "postgres.log"

    def run(cmd: list[str], what: str) -> None:
        # cwd=base: the postgres user may not be able to enter our working directory.
        result = subprocess.run(
            [*prefix, *cmd], cwd=base, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=START_TIMEOUT_S * 2,
        )  # fmt: skip
        if result.returncode != 0:
            raise ServiceError(
                f"{what} failed (exit {result.returncode}):\n"
                f"{(result.stdout + result.stderr).strip()}\n--- {log_file} ---\n"
                f"{log_tail(log_file)}"
            )

    if not (data_dir / "PG_VERSION").exists():
        say(f"postgres: creating a private cluster in {data_dir}")
        run(
            [str(bindir / "initdb"), "-D", str(data_dir), "-A", "trust", "-U", "postgres",
             "-E", "UTF8", "--no-locale"],
            "initdb",
        )  # fmt: skip

    socket_dir = base / "run"
    socket_dir.mkdir(exist_ok=True)
    _chown_to_postgres(socket_dir)
    socket_opt = str(socket_dir.resolve())
    if len(socket_opt) + len("/.s.PGSQL.65535") > MAX_UNIX_SOCKET_PATH:
        socket_opt = ""  # path too long for a Unix socket: TCP only, which is all we use
    state = read_state(base)
    port = pick_port(
        [state.get("port"), local_port(configured, DEFAULT_POSTGRES_PORT), DEFAULT_POSTGRES_PORT]
    )
    # A throwaway test cluster: durability settings off for speed.
    server_opts = " ".join(
        [
            f"-p {port}",
            "-c listen_addresses=127.0.0.1",
            f"-k {shlex.quote(socket_opt)}",  # pg_ctl hands -o to /bin/sh, hence the quoting
            "-c fsync=off",
            "-c synchronous_commit=off",
            "-c full_page_writes=off",
        ]
    )
    run(
        [str(bindir / "pg_ctl"), "-D", str(data_dir), "-l", str(log_file), "-w",
         "-t", str(int(START_TIMEOUT_S)), "-o", server_opts, "start"],
        "pg_ctl start",
    )  # fmt: skip
    url = _postgres_url_for_port(port)
    if not wait_for(lambda: probe_postgres(url)[0], START_TIMEOUT_S, interval=0.5):
        raise ServiceError(
            f"private Postgres on port {port} started but refuses logins: "
            f"{probe_postgres(url)[1]}\n--- {log_file} ---\n{log_tail(log_file)}"
        )
    write_state(base, {"port": port})
    say(f"postgres: {redact(configured)} not usable ({why}); started private {url}")
    return url


# --------------------------------------------------------------------------------------------
# stop
# --------------------------------------------------------------------------------------------


def _terminate(pid: int, sig: signal.Signals, name: str, cmdline_hint: str) -> None:
    """Send ``sig`` to ``pid``, wait for it to go, SIGKILL it if it will not."""
    os.kill(pid, sig)
    if not wait_for(lambda: not pid_alive(pid, cmdline_hint), STOP_TIMEOUT_S):
        say(f"{name}: pid {pid} ignored {sig.name} for {STOP_TIMEOUT_S:.0f}s; killing it")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    say(f"{name}: stopped private server (pid {pid})")


def stop_services(purge: bool = False) -> int:
    """Stop the private servers this script started; with ``purge`` also delete their data."""
    redis_pid = read_pid(REDIS_DIR / "redis.pid")
    if pid_alive(redis_pid, "redis"):
        assert redis_pid is not None
        _terminate(redis_pid, signal.SIGTERM, "redis", "redis")
    else:
        say("redis: no private server running")

    postmaster_pid = read_pid(POSTGRES_DIR / "data" / "postmaster.pid")
    if pid_alive(postmaster_pid, "postgres"):
        assert postmaster_pid is not None
        # SIGINT is Postgres's "fast" shutdown (what pg_ctl -m fast sends); no runuser needed.
        _terminate(postmaster_pid, signal.SIGINT, "postgres", "postgres")
    else:
        say("postgres: no private server running")

    if purge:
        if POSTGRES_DIR.is_symlink():
            shutil.rmtree(POSTGRES_DIR.resolve(), ignore_errors=True)
            POSTGRES_DIR.unlink()
        for directory in (POSTGRES_DIR, REDIS_DIR):
            shutil.rmtree(directory, ignore_errors=True)
        say(f"removed private server data under {SERVICES_DIR}")
    return 0


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


def _split_command(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split ``[options] -- CMD ARGS`` at the first ``--``."""
    if "--" in argv:
        index = list(argv).index("--")
        return list(argv[:index]), list(argv[index + 1 :])
    return list(argv), []


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
    parser.add_argument(
        "--postgres", action="store_true", help="ensure TEST_DATABASE_URL accepts a login"
    )
    options, command = _split_command(argv)
    args = parser.parse_args(options)

    exports: dict[str, str] = {}
    try:
        with services_lock():
            if args.redis:
                exports["REDIS_URL"] = ensure_redis(
                    os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
                )
            if args.postgres:
                exports["TEST_DATABASE_URL"] = ensure_postgres(
                    os.environ.get("TEST_DATABASE_URL") or DEFAULT_TEST_DATABASE_URL
                )
    except (ServiceError, subprocess.SubprocessError, OSError) as exc:
        say(f"error: {exc}")
        return 1
    os.environ.update(exports)

    if not command:
        # No command: print shell exports, for `eval "$(python scripts/services.py --redis)"`.
        for name, value in exports.items():
            print(f"export {name}={shlex.quote(value)}")
        return 0
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        say(f"error: cannot run {command[0]!r}: {exc}")
        return 127
    return 0  # unreachable: execvp replaced this process


if __name__ == "__main__":
    sys.exit(main())
