"""Static checks of docker-compose.yml (no Docker needed) and of the service probes.

The compose file is easy to break silently: a renamed module, a settings field that no longer
exists, a lost healthcheck or a second beat only show up at deploy time. These tests read the
YAML and hold it to the architecture instead. The probe tests talk to real servers, no mocks.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import runpy
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"

BACKEND_SERVICES = ("redis", "postgres")
APP_SERVICES = ("migrate", "web", "worker-gpu", "worker-cpu", "beat", "flower")
FRONT_SERVICES = ("nginx",)
MONITORING_SERVICES = ("prometheus", "grafana")
PROMETHEUS_CONFIG = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_DATASOURCES = REPO_ROOT / "deploy" / "grafana" / "provisioning" / "datasources"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The parsed compose file (anchors and merge keys resolved by PyYAML)."""
    with COMPOSE_FILE.open() as handle:
        data = yaml.safe_load(handle)
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture()
def repo_on_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make the repository importable however pytest was started (editable install or not)."""
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    yield


@pytest.fixture(scope="module")
def services_module() -> ModuleType:
    """scripts/services.py, loaded by path so no other `scripts` package can shadow it."""
    spec = importlib.util.spec_from_file_location(
        "scanqueue_services_under_test", REPO_ROOT / "scripts" / "services.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and friends look modules up by name
    spec.loader.exec_module(module)
    return module


def argv_of(service: dict[str, Any]) -> list[str]:
    """A service's command as a list, whether written as a list or a string."""
    command = service.get("command")
    if command is None:
        return []
    return [str(part) for part in command] if isinstance(command, list) else shlex.split(command)


def option(argv: list[str], *names: str) -> str | None:
    """Value of the first of ``names`` in ``argv`` (``--opt value`` or ``--opt=value``)."""
    for index, arg in enumerate(argv):
        for name in names:
            if arg == name and index + 1 < len(argv):
                return argv[index + 1]
            if name.startswith("--") and arg.startswith(name + "="):
                return arg[len(name) + 1 :]
    return None


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping (compose also allows a list of NAME=value)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def app_target(argv: list[str]) -> str | None:
    """The ``module[:attr]`` an application command loads: celery -A, flask --app, gunicorn."""
    if not argv:
        return None
    program = Path(argv[0]).name
    if program == "celery":
        return option(argv, "-A", "--app")
    if program == "flask":
        return option(argv, "--app")
    if program == "gunicorn":
        apps = [arg for arg in argv[1:] if not arg.startswith("-") and ":" in arg]
        return apps[-1] if apps else None
    return None


def _top_level_in_repo(location: Path, module: str) -> bool:
    """Whether ``location`` lies in this checkout's own top-level package (not in .venv)."""
    try:
        parts = location.resolve().relative_to(REPO_ROOT).parts
    except ValueError:
        return False
    top = module.split(".")[0]
    return bool(parts) and parts[0] in (top, f"{top}.py")


def resolves_in_repo(target: str) -> bool:
    """Whether ``module[:attr]`` names code in this repository.

    Celery also accepts ``package.attribute`` for an app object defined in the package, so when
    the dotted name is not a module its parent must be one whose source defines that name.
    """
    module, _, _attr = target.partition(":")
    candidates = [(module, None)]
    if "." in module:
        parent, _, name = module.rpartition(".")
        candidates.append((parent, name))
    for name, attribute in candidates:
        try:
            spec = importlib.util.find_spec(name)
        except ImportError:  # a missing parent package raises instead of returning None
            spec = None
        if spec is None:
            continue
        location = spec.origin or next(iter(spec.submodule_search_locations or []), None)
        if location is None or not _top_level_in_repo(Path(location), name):
            continue
        if attribute is None:
            return True
        if spec.origin and attribute in Path(spec.origin).read_text(errors="replace"):
            return True
    return False


# --------------------------------------------------------------------------------------------
# compose structure
# --------------------------------------------------------------------------------------------


def test_expected_services_exist(compose: dict[str, Any]) -> None:
    expected = BACKEND_SERVICES + APP_SERVICES + FRONT_SERVICES + MONITORING_SERVICES
    missing = set(expected) - set(compose["services"])
    assert not missing, f"docker-compose.yml lacks services: {sorted(missing)}"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_share_the_app_environment(compose: dict[str, Any], name: str) -> None:
    shared = {str(k): str(v) for k, v in compose["x-app-env"].items()}
    env = environment_of(compose["services"][name])
    assert {k: env.get(k) for k in shared} == shared, f"{name} does not use the x-app-env block"


@pytest.mark.usefixtures("repo_on_path")
def test_app_environment_names_are_settings_fields(compose: dict[str, Any]) -> None:
    # Importing the settings class must not need a database or a broker.
    from core.config import Settings

    unknown = set(compose["x-app-env"]) - set(Settings.model_fields)
    assert not unknown, f"x-app-env sets variables Settings does not read: {sorted(unknown)}"
    assert compose["x-app-env"]["SCANQUEUE_ENV"] == "production"


@pytest.mark.usefixtures("repo_on_path")
@pytest.mark.parametrize("name", APP_SERVICES)
def test_commands_name_modules_in_this_repo(compose: dict[str, Any], name: str) -> None:
    argv = argv_of(compose["services"][name])
    target = app_target(argv)
    assert target, f"{name}: no celery -A / flask --app / gunicorn app in {argv}"
    if Path(argv[0]).name == "gunicorn":
        assert target.endswith(":create_app()"), f"{name}: gunicorn must use the app factory"
    assert resolves_in_repo(target), f"{name}: {target!r} does not resolve to a module here"


@pytest.mark.parametrize(("name", "probe"), [("redis", "redis-cli"), ("postgres", "pg_isready")])
def test_backends_have_healthchecks(compose: dict[str, Any], name: str, probe: str) -> None:
    healthcheck = compose["services"][name].get("healthcheck") or {}
    test = healthcheck.get("test")
    assert test and not healthcheck.get("disable"), f"{name} has no healthcheck"
    text = test if isinstance(test, str) else " ".join(map(str, test))
    assert probe in text


def test_web_waits_for_backends_and_migrations(compose: dict[str, Any]) -> None:
    depends = compose["services"]["web"].get("depends_on")
    assert isinstance(depends, dict), "web.depends_on must be a mapping with conditions"
    for backend in BACKEND_SERVICES:
        assert depends.get(backend, {}).get("condition") == "service_healthy"
    assert depends.get("migrate", {}).get("condition") == "service_completed_successfully"


def test_migrate_runs_once(compose: dict[str, Any]) -> None:
    migrate = compose["services"]["migrate"]
    assert argv_of(migrate)[-2:] == ["db", "upgrade"]
    assert str(migrate.get("restart")) == "no"


def test_gpu_worker_reserves_one_gpu_and_runs_a_thread_per_batched_job(
    compose: dict[str, Any],
) -> None:
    service = compose["services"]["worker-gpu"]
    argv = argv_of(service)
    assert option(argv, "-Q", "--queues") == "gpu"
    # One process per GPU; GPU_BATCH_MAX threads (one message each) share its model calls.
    assert option(argv, "-P", "--pool") == "threads"
    batch_max = compose["x-app-env"]["GPU_BATCH_MAX"]
    assert option(argv, "-c", "--concurrency") == batch_max == "${GPU_BATCH_MAX:-16}"
    assert option(argv, "--prefetch-multiplier") == "1"
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    gpus = [d for d in devices if "gpu" in d.get("capabilities", [])]
    assert len(gpus) == 1 and gpus[0].get("count") == 1


@pytest.mark.parametrize("name", ["worker-gpu", "worker-cpu"])
def test_workers_have_their_own_healthcheck(compose: dict[str, Any], name: str) -> None:
    healthcheck = compose["services"][name].get("healthcheck") or {}
    test = [str(part) for part in healthcheck.get("test") or []]
    assert test[-3:] == ["python", "-m", "workers.health"], f"{name}: {test}"
    assert resolves_in_repo("workers.health")
    # Loading the models must fit in the start period, or a starting worker counts as failing.
    assert healthcheck.get("start_period"), name


def test_cpu_worker_consumes_cpu(compose: dict[str, Any]) -> None:
    queues = option(argv_of(compose["services"]["worker-cpu"]), "-Q", "--queues") or ""
    assert "cpu" in queues.split(",")
    assert "gpu" not in queues.split(","), "the cpu worker must not take GPU jobs"


def test_exactly_one_beat(compose: dict[str, Any]) -> None:
    beat = compose["services"]["beat"]
    assert "beat" in argv_of(beat)
    assert beat.get("deploy", {}).get("replicas") == 1
    assert beat.get("scale", 1) == 1
    others = [n for n, s in compose["services"].items() if n != "beat" and "beat" in argv_of(s)]
    assert not others, f"beat also runs in {others}: scheduled tasks would fire twice"


def test_flower_requires_basic_auth(compose: dict[str, Any]) -> None:
    auth = option(argv_of(compose["services"]["flower"]), "--basic-auth")
    assert auth, "flower must be started with --basic-auth"


def test_redis_persists_with_appendonly(compose: dict[str, Any]) -> None:
    assert option(argv_of(compose["services"]["redis"]), "--appendonly") == "yes"


# --------------------------------------------------------------------------------------------
# scripts/services.py probes, against real sockets
# --------------------------------------------------------------------------------------------


def test_redis_probe_answers_true_for_real_redis(services_module: ModuleType) -> None:
    url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    ok, why = services_module.probe_redis(url)
    assert ok, f"no Redis answers at {url} ({why}); run the tests with `make test`"
    assert services_module.redis_ping(url) is True


def test_redis_probe_is_false_on_a_closed_port(services_module: ModuleType) -> None:
    # Bound but not listening: connections are refused and no other process can take the port.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        assert services_module.redis_ping(f"redis://127.0.0.1:{port}/0", timeout=1.0) is False


def test_redis_probe_is_false_for_a_silent_listener(services_module: ModuleType) -> None:
    # A TCP connect alone proves nothing: a listener that never answers PING is not Redis.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        assert services_module.redis_ping(f"redis://127.0.0.1:{port}/0", timeout=0.5) is False


def test_postgres_probe_logs_in(services_module: ModuleType) -> None:
    from tests.conftest import POSTGRES_ADMIN_URL

    assert services_module.probe_postgres(POSTGRES_ADMIN_URL, 2.0) == (True, "")
    missing_db = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/scanqueue_no_such_database"
    ok, why = services_module.probe_postgres(missing_db, 2.0)
    assert not ok and "does not exist" in why


def closed_port() -> int:
    """A port nothing listens on (the kernel's pick, released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def private_redis_in(
    services_module: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Point the script's private Redis files at ``tmp_path``, away from the checkout's."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    redis_dir = tmp_path / "redis"
    monkeypatch.setattr(services_module, "REDIS_DIR", redis_dir)
    monkeypatch.setattr(services_module, "REDIS_PID", redis_dir / "redis.pid")
    monkeypatch.setattr(services_module, "REDIS_LOG", redis_dir / "redis.log")
    return redis_dir


def test_a_private_redis_starts_on_a_closed_port_is_reused_and_stops(
    services_module: ModuleType, private_redis_in: Path
) -> None:
    configured = f"redis://127.0.0.1:{closed_port()}/2"
    private = services_module.private_redis(configured)
    try:
        url = services_module.ensure(configured, services_module.probe_redis, private)
        assert url == configured and services_module.redis_ping(url)
        # Configured elsewhere now (closed too): the running private server is found again.
        elsewhere = f"redis://127.0.0.1:{closed_port()}/2"
        assert services_module.ensure(elsewhere, services_module.probe_redis, private) == url
    finally:
        services_module.stop(private)
    assert not services_module.redis_ping(url, timeout=0.5)
    assert services_module.running_pid(private.pid_file, "redis") is None


def test_stop_needs_only_the_standard_library(tmp_path: Path) -> None:
    # CI's EXIT trap runs `python3 scripts/services.py stop` with no virtualenv.
    script = REPO_ROOT / "scripts" / "services.py"
    code = f"""
import importlib.util, pathlib, sys
sys.modules["redis"] = sys.modules["psycopg2"] = None  # any import of them fails
spec = importlib.util.spec_from_file_location("services", {str(script)!r})
module = sys.modules["services"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
base = pathlib.Path({str(tmp_path)!r})
module.SERVICES_DIR = module.REDIS_DIR = base / "redis"
module.REDIS_PID = base / "redis" / "redis.pid"
module.postgres_dir = lambda: base / "postgres"
(base / "postgres").mkdir()
sys.exit(module.main(["stop", "--purge"]))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert "redis: no private server running" in result.stderr
    assert not (tmp_path / "postgres").exists()


# --------------------------------------------------------------------------------------------
# the web front: nginx before gunicorn, and the images' defaults
# --------------------------------------------------------------------------------------------

DOCKERFILE = REPO_ROOT / "Dockerfile"
GUNICORN_CONFIG = "deploy/gunicorn.conf.py"
NGINX_TEMPLATES = REPO_ROOT / "deploy" / "nginx" / "templates"


def nginx_directives() -> dict[str, list[str]]:
    """Every directive of the committed server block: name -> values, in order."""
    text = (NGINX_TEMPLATES / "default.conf.template").read_text()
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        match = re.match(r"\s*([a-z_]+)\s+([^;{]*);", line)
        if match:
            found.setdefault(match.group(1), []).append(match.group(2).strip())
    return found


def dockerfile_stages() -> dict[str, tuple[str, str]]:
    """Each named stage of the Dockerfile: name -> (the stage it builds on, its instructions)."""
    stages: dict[str, tuple[str, str]] = {}
    parts = re.split(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?\s*$", DOCKERFILE.read_text(), flags=re.M)
    for parent, name, body in zip(parts[1::3], parts[2::3], parts[3::3], strict=True):
        stages[name] = (parent, body)
    return stages


def test_only_nginx_is_published_and_it_waits_for_a_healthy_web(compose: dict[str, Any]) -> None:
    services = compose["services"]
    nginx, web = services["nginx"], services["web"]
    assert str(nginx["image"]).startswith("nginx:")
    assert "ports" not in web, "web must be reached through nginx only"
    assert [str(p) for p in web.get("expose", [])] == ["8000"]
    assert any(str(p).endswith(":8080") for p in nginx["ports"])
    assert nginx["environment"]["NGINX_PORT"] == "8080"
    assert nginx["environment"]["SCANQUEUE_WEB"] == "web:8000"
    assert nginx["depends_on"]["web"]["condition"] == "service_healthy"
    assert "./deploy/nginx/templates:/etc/nginx/templates:ro" in nginx["volumes"]
    probe = " ".join(nginx["healthcheck"]["test"])
    assert "127.0.0.1:8080/healthz" in probe
    # Behind exactly one proxy the app takes the client's address from X-Forwarded-For.
    assert environment_of(web)["TRUSTED_PROXIES"] == "1"


def test_web_and_the_image_run_gunicorn_with_the_committed_config(
    compose: dict[str, Any],
) -> None:
    argv = argv_of(compose["services"]["web"])
    assert option(argv, "-c", "--config") == GUNICORN_CONFIG
    assert (REPO_ROOT / GUNICORN_CONFIG).is_file()
    _parent, web_stage = dockerfile_stages()["web"]
    cmd = re.search(r"^CMD\s+(\[.*\])\s*$", web_stage, flags=re.M)
    assert cmd and json.loads(cmd.group(1)) == argv, "Dockerfile CMD and compose web differ"


@pytest.mark.usefixtures("repo_on_path")
def test_gunicorn_config_names_only_real_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from gunicorn.config import KNOWN_SETTINGS

    # gunicorn ignores a misspelt name silently; here it fails.
    monkeypatch.setenv("WEB_WORKERS", "3")
    monkeypatch.setenv("WEB_THREADS", "5")
    namespace = runpy.run_path(str(REPO_ROOT / GUNICORN_CONFIG))
    names = {n for n in namespace if not n.startswith("_") and n not in {"os", "load_settings"}}
    assert names - {"annotations"} <= {setting.name for setting in KNOWN_SETTINGS}
    assert namespace["worker_class"] == "gthread"
    assert (namespace["workers"], namespace["threads"]) == (3, 5)
    assert namespace["timeout"] > 0 and namespace["graceful_timeout"] > 0
    assert {"limit_request_line", "limit_request_fields", "limit_request_field_size"} <= names


@pytest.mark.usefixtures("repo_on_path")
def test_a_sync_process_may_take_as_long_as_nginx_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sync process's timeout is a limit per request: not shorter than nginx's read timeout,
    or gunicorn kills a request nginx would still wait for."""
    monkeypatch.delenv("WEB_TIMEOUT_SECONDS", raising=False)
    namespace = runpy.run_path(str(REPO_ROOT / GUNICORN_CONFIG))
    template = (REPO_ROOT / "deploy" / "nginx" / "templates" / "default.conf.template").read_text()
    longest = max(int(t) for t in re.findall(r"proxy_read_timeout\s+(\d+)s;", template))
    assert namespace["timeout"] >= longest


@pytest.mark.usefixtures("repo_on_path")
def test_gunicorn_runs_sync_processes_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind nginx, one request per process: a free process takes the next connection."""
    monkeypatch.delenv("WEB_WORKERS", raising=False)
    monkeypatch.delenv("WEB_THREADS", raising=False)
    namespace = runpy.run_path(str(REPO_ROOT / GUNICORN_CONFIG))
    assert (namespace["worker_class"], namespace["threads"]) == ("sync", 1)
    assert namespace["workers"] > 1


@pytest.mark.usefixtures("repo_on_path")
def test_nginx_body_limit_is_the_apps(compose: dict[str, Any]) -> None:
    from core.config import Settings
    from webapp import FORM_OVERHEAD_BYTES

    fields = Settings.model_fields
    env = compose["x-app-env"]
    upload = int(env.get("MAX_UPLOAD_BYTES", fields["MAX_UPLOAD_BYTES"].default))
    files = int(env.get("MAX_FILES_PER_JOB", fields["MAX_FILES_PER_JOB"].default))
    [limit] = nginx_directives()["client_max_body_size"]
    assert limit.endswith("m")
    # Equal: nginx and the app refuse the same request, nginx before reading any of it.
    assert int(limit[:-1]) * 1024 * 1024 == upload * files + FORM_OVERHEAD_BYTES


def test_nginx_buffers_requests_and_drops_stalled_clients() -> None:
    directives = nginx_directives()
    assert directives["proxy_request_buffering"] == ["on"]
    assert directives["proxy_buffering"] == ["on"]
    for name in ("client_header_timeout", "client_body_timeout", "send_timeout"):
        [value] = directives[name]
        assert value.endswith("s") and 0 < int(value[:-1]) <= 60, (name, value)
    for name in ("proxy_connect_timeout", "proxy_send_timeout", "proxy_read_timeout"):
        assert directives[name], f"{name} missing"
    # The probes are passed through (not answered by nginx itself).
    assert "location = /healthz {" in (NGINX_TEMPLATES / "default.conf.template").read_text()


@pytest.mark.parametrize("stage", ["web", "worker"])
def test_images_default_to_production(stage: str) -> None:
    stages = dockerfile_stages()
    settings = ""
    while stage in stages:  # the stage and every stage it builds on
        stage, body = stages[stage]
        settings += body
    assert re.search(r"^ENV\s+SCANQUEUE_ENV=production\s*$", settings, flags=re.M)


# --------------------------------------------------------------------------------------------
# monitoring: Prometheus and Grafana (their own files: tests/deploy)
# --------------------------------------------------------------------------------------------


def required_variable(value: str) -> str | None:
    """The variable of a ``${NAME:?message}`` value (compose refuses to start without it)."""
    match = re.fullmatch(r"\$\{([A-Z_][A-Z0-9_]*):\?[^}]+\}", value)
    return match.group(1) if match else None


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """A service's ``./repo/path:/container/path[:ro]`` volumes: container path -> repo path."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = str(volume).split(":")
        if source.startswith("./"):
            mounts[target] = source
    return mounts


def scrape_jobs() -> dict[str, dict[str, Any]]:
    """The committed Prometheus config's scrape jobs by name."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    return {job["job_name"]: job for job in config["scrape_configs"]}


def dns_targets(job: dict[str, Any]) -> set[tuple[str, int]]:
    """(name, port) of every DNS-discovered target of a scrape job."""
    return {
        (name, int(sd["port"]))
        for sd in job.get("dns_sd_configs", [])
        for name in sd["names"]
        if sd.get("type") == "A"
    }


@pytest.mark.parametrize(
    ("name", "probe"),
    [("prometheus", "127.0.0.1:9090/-/ready"), ("grafana", "127.0.0.1:3000/api/health")],
)
def test_monitoring_services_have_healthchecks(
    compose: dict[str, Any], name: str, probe: str
) -> None:
    healthcheck = compose["services"][name].get("healthcheck") or {}
    assert probe in " ".join(map(str, healthcheck.get("test") or [])), name
    assert healthcheck.get("start_period") and not healthcheck.get("disable"), name


def test_only_nginx_publishes_beyond_loopback(compose: dict[str, Any]) -> None:
    # Prometheus and Grafana (like Flower and Mailpit) are for operators on the host only.
    for name, service in compose["services"].items():
        for port in map(str, service.get("ports", [])):
            if name not in FRONT_SERVICES:
                assert port.startswith("127.0.0.1:"), f"{name} publishes {port} to the world"


def test_prometheus_runs_the_committed_config_with_the_metrics_token(
    compose: dict[str, Any],
) -> None:
    prometheus = compose["services"]["prometheus"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in argv_of(prometheus)
    assert bind_mounts(prometheus)["/etc/prometheus"] == "./deploy/prometheus"
    assert PROMETHEUS_CONFIG.is_file()
    # The bearer token Prometheus sends is the one the web checks: one variable feeds both.
    [web_job] = [job for job in scrape_jobs().values() if ("web", 8000) in dns_targets(job)]
    secret_file = web_job["authorization"]["credentials_file"]
    secret = secret_file.removeprefix("/run/secrets/")
    assert secret in prometheus["secrets"], secret
    assert compose["secrets"][secret] == {"environment": "METRICS_TOKEN"}
    web_env = environment_of(compose["services"]["web"])
    assert required_variable(web_env["METRICS_TOKEN"]) == "METRICS_TOKEN"
    assert web_job["metrics_path"] == "/metrics"
    assert [str(p) for p in compose["services"]["web"]["expose"]] == ["8000"]


@pytest.mark.parametrize("name", ["worker-gpu", "worker-cpu"])
def test_prometheus_finds_every_worker_node_on_its_metrics_port(
    compose: dict[str, Any], name: str
) -> None:
    service = compose["services"][name]
    env = environment_of(service)
    # Bound to every interface inside the container, or Prometheus could not reach it.
    assert env["WORKER_METRICS_BIND"] == "0.0.0.0"
    port = int(env["WORKER_METRICS_PORT"])
    assert str(port) in map(str, service.get("expose", []))
    # The service name resolves to every replica, so `--scale` adds targets by itself.
    assert any((name, port) in dns_targets(job) for job in scrape_jobs().values()), name


def test_every_worker_service_is_scraped(compose: dict[str, Any]) -> None:
    workers = {n for n, s in compose["services"].items() if "worker" in argv_of(s)[:4]}
    scraped = {name for job in scrape_jobs().values() for name, _port in dns_targets(job)}
    assert workers and workers <= scraped, f"not scraped: {sorted(workers - scraped)}"


@pytest.mark.usefixtures("repo_on_path")
def test_app_service_environments_are_settings_fields(compose: dict[str, Any]) -> None:
    from core.config import Settings

    for name in APP_SERVICES:
        unknown = set(environment_of(compose["services"][name])) - set(Settings.model_fields)
        assert not unknown, f"{name} sets variables Settings does not read: {sorted(unknown)}"


def test_grafana_needs_a_password_and_loads_the_committed_provisioning(
    compose: dict[str, Any],
) -> None:
    grafana = compose["services"]["grafana"]
    env = environment_of(grafana)
    assert required_variable(env["GF_SECURITY_ADMIN_PASSWORD"]) == "GRAFANA_ADMIN_PASSWORD"
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    mounts = bind_mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    assert mounts["/etc/grafana/dashboards"] == "./deploy/grafana/dashboards"
    for source in mounts.values():
        assert (REPO_ROOT / source).is_dir(), source
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (REPO_ROOT / "deploy/grafana/dashboards" / Path(home).name).is_file()
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"
    # The datasource reaches Prometheus by its compose service name and port.
    [datasource] = yaml.safe_load((GRAFANA_DATASOURCES / "prometheus.yml").read_text())[
        "datasources"
    ]
    published = str(compose["services"]["prometheus"]["ports"][0]).rsplit(":", 1)[-1]
    assert datasource["url"] == f"http://prometheus:{published}"
