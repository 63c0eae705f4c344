"""Static checks of the Kubernetes manifests (deploy/k8s) and their KEDA autoscaling.

No cluster is available here, so the manifests are checked for what can be checked without one:
the core kinds against Kubernetes' own schemas (kubernetes-validate, strict: a misspelt field
fails), the KEDA objects against KEDA's CRD schema (committed under schemas/, check-jsonschema),
and the architecture's invariants (one process per GPU, a grace period that outlasts the hard
time limit, exactly one beat, the queues KEDA watches are the ones the workers consume and the
ones our publishers fill, the same images, commands and settings as docker-compose.yml).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import redis
import yaml
from check_jsonschema import main as check_jsonschema_cli

from tests.test_compose import argv_of, nginx_directives, option, resolves_in_repo

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = REPO_ROOT / "deploy" / "k8s"
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"

KEDA_KINDS = {
    "ScaledObject": SCHEMA_DIR / "keda.sh_scaledobjects.json",
    "TriggerAuthentication": SCHEMA_DIR / "keda.sh_triggerauthentications.json",
}
# The oldest release the manifests target (preStop `sleep` is on by default from 1.30) and the
# newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
# Kustomization fields the loader below applies; anything else would make it lie.
LOADER_FIELDS = {"apiVersion", "kind", "namespace", "labels", "resources"}
CLUSTER_SCOPED = {"Namespace"}

# Each workload and the compose service it mirrors.
COMPOSE_SERVICE = {
    "web": "web",
    "worker-gpu": "worker-gpu",
    "worker-cpu": "worker-cpu",
    "beat": "beat",
    "flower": "flower",
    "scanqueue-migrate": "migrate",
}
# Options Kubernetes adds to compose's command, and why: Celery's default concurrency is the
# node's CPU count, not the pod's share.
K8S_ONLY_OPTIONS = {"worker-cpu": ("--concurrency",)}
# Deployments without probes, and why: beat has no health check of its own (nor in compose).
UNPROBED = {"beat"}
# The web's probes (webapp/health.py).
WEB_PROBES = {"readinessProbe": "/readyz", "livenessProbe": "/healthz"}
# Secrets created by hand (README, "Kubernetes"): the app's settings, Flower's login, KEDA's.
APP_SECRET = "scanqueue-secrets"
SECRETS_EXAMPLE = K8S_DIR / "secrets.example.env"
# The worker metrics port of the metrics contract (WORKER_METRICS_PORT's default).
CONTRACT_WORKER_METRICS_PORT = 9808


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------


def kustomization() -> dict[str, Any]:
    """deploy/k8s/kustomization.yaml."""
    return yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())


def build() -> list[dict[str, Any]]:
    """What `kustomize build deploy/k8s` gives, for the fields the kustomization uses."""
    spec = kustomization()
    objects = []
    for resource in spec["resources"]:
        for document in yaml.safe_load_all((K8S_DIR / resource).read_text()):
            if document is None:
                continue
            metadata = document.setdefault("metadata", {})
            if document["kind"] not in CLUSTER_SCOPED:
                metadata["namespace"] = spec["namespace"]
            for entry in spec.get("labels", []):
                metadata.setdefault("labels", {}).update(entry["pairs"])
            objects.append(document)
    return objects


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    """Every object of the build."""
    return build()


def of_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """The objects of one kind, by name."""
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def pod_templates(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The pod template of every Deployment and Job, by workload name."""
    return {
        o["metadata"]["name"]: o["spec"]["template"]
        for o in objects
        if o["kind"] in ("Deployment", "Job")
    }


def containers(template: dict[str, Any]) -> list[dict[str, Any]]:
    """The containers of a pod template (init containers included)."""
    spec = template["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def the_container(objects: list[dict[str, Any]], workload: str) -> dict[str, Any]:
    """The one container of a workload."""
    [container] = pod_templates(objects)[workload]["spec"]["containers"]
    return container


def scaled_deployments(objects: list[dict[str, Any]]) -> set[str]:
    """The Deployments a KEDA ScaledObject scales."""
    return {s["spec"]["scaleTargetRef"]["name"] for s in of_kind(objects, "ScaledObject").values()}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels form) picks pods with these labels."""
    return all(labels.get(key) == value for key, value in selector.items())


def env_file_keys(path: Path) -> set[str]:
    """The variable names of a NAME=value file (comments and blank lines skipped)."""
    lines = (line.strip() for line in path.read_text().splitlines())
    return {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The parsed docker-compose.yml."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def settings_fields() -> dict[str, Any]:
    """core.config.Settings' fields (importing it needs no backend)."""
    from core.config import Settings

    return Settings.model_fields


def hard_time_limit(objects: list[dict[str, Any]], settings_fields: dict[str, Any]) -> int:
    """TASK_TIME_LIMIT as the pods get it: the ConfigMap's value, else the settings default."""
    config = of_kind(objects, "ConfigMap")["scanqueue-config"]["data"]
    return int(config.get("TASK_TIME_LIMIT", settings_fields["TASK_TIME_LIMIT"].default))


# --------------------------------------------------------------------------------------------
# the build and the schemas
# --------------------------------------------------------------------------------------------


def test_the_loader_understands_every_field_of_the_kustomization() -> None:
    spec = kustomization()
    assert set(spec) <= LOADER_FIELDS, f"teach build() {sorted(set(spec) - LOADER_FIELDS)}"
    for entry in spec.get("labels", []):
        assert not entry.get("includeSelectors") and not entry.get("includeTemplates"), entry
    listed = {K8S_DIR / name for name in spec["resources"]}
    unlisted = set(K8S_DIR.glob("*.yaml")) - listed - {K8S_DIR / "kustomization.yaml"}
    assert not unlisted, f"manifests not in the kustomization: {sorted(map(str, unlisted))}"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) not installed")
def test_kubectl_kustomize_builds_the_same_objects(objects: list[dict[str, Any]]) -> None:
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S_DIR)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    built = [o for o in yaml.safe_load_all(result.stdout) if o]

    def key(o: dict[str, Any]) -> str:
        return f"{o['kind']}/{o['metadata']['name']}"

    assert sorted(built, key=key) == sorted(objects, key=key)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_objects_match_the_kubernetes_schemas(
    objects: list[dict[str, Any]], version: str
) -> None:
    problems = []
    for o in objects:
        if o["kind"] in KEDA_KINDS:
            continue
        try:
            kubernetes_validate.validate(o, version, strict=True)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as e:
            problems.append(f"{o['kind']}/{o['metadata']['name']}: {e}")
    assert not problems, "\n".join(problems)
    # The check is strict: a misspelt field is refused, not ignored.
    broken = copy.deepcopy(of_kind(objects, "Deployment")["worker-gpu"])
    broken["spec"]["template"]["spec"]["terminationGracePeriod"] = 180
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)


def closed_schema(schema: Any) -> Any:
    """The schema with unknown properties refused wherever it lists the known ones: the API
    server silently prunes unknown fields of a custom resource, so a misspelt one would vanish."""
    if isinstance(schema, list):
        return [closed_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {key: closed_schema(value) for key, value in schema.items()}
    open_ended = schema.get("x-kubernetes-preserve-unknown-fields") or (
        "additionalProperties" in schema
    )
    if "properties" in schema and not open_ended:
        closed["additionalProperties"] = False
    return closed


def check_jsonschema(schema: Path, documents: list[dict[str, Any]], where: Path) -> str:
    """Run check-jsonschema on the documents; its report when they fail, '' when they pass.

    Its command line, called in this process: a subprocess per check costs seconds of imports.
    """
    where.mkdir(parents=True, exist_ok=True)
    files = []
    for index, document in enumerate(documents):
        path = where / f"{index}-{document['metadata']['name']}.json"
        path.write_text(json.dumps(document))
        files.append(str(path))
    report = io.StringIO()
    with contextlib.redirect_stdout(report), contextlib.redirect_stderr(report):
        code = check_jsonschema_cli.main(
            ["--schemafile", str(schema), *files], standalone_mode=False
        )
    assert code in (0, 1), report.getvalue()  # 1: invalid; anything else: a broken run
    return "" if code == 0 else report.getvalue()


@pytest.mark.parametrize("kind", sorted(KEDA_KINDS))
def test_keda_objects_match_the_crd_schema(
    objects: list[dict[str, Any]], kind: str, tmp_path: Path
) -> None:
    documents = list(of_kind(objects, kind).values())
    assert documents, f"no {kind} in the build"
    crd_schema = KEDA_KINDS[kind]
    strict = tmp_path / f"strict-{crd_schema.name}"
    strict.write_text(json.dumps(closed_schema(json.loads(crd_schema.read_text()))))
    assert check_jsonschema(crd_schema, documents, tmp_path / "as-is") == ""
    assert check_jsonschema(strict, documents, tmp_path / "strict") == ""
    # Both schemas refuse a broken object: a missing required field, a misspelt one.
    broken = copy.deepcopy(documents[0])
    required = json.loads(crd_schema.read_text())["required"]
    broken.pop(required[-1])
    assert check_jsonschema(crd_schema, [broken], tmp_path / "broken")
    misspelt = copy.deepcopy(documents[0])
    misspelt["spec"]["minReplicas"] = 1
    assert check_jsonschema(strict, [misspelt], tmp_path / "misspelt")


# --------------------------------------------------------------------------------------------
# workers and beat
# --------------------------------------------------------------------------------------------


def test_gpu_worker_is_one_process_on_one_gpu(objects: list[dict[str, Any]]) -> None:
    container = the_container(objects, "worker-gpu")
    argv = container["command"]
    assert option(argv, "-Q", "--queues") == "gpu"
    # One process (the threads pool) whose GPU_BATCH_MAX threads share the model calls.
    assert option(argv, "-P", "--pool") == "threads"
    assert option(argv, "-c", "--concurrency") == "$(GPU_BATCH_MAX)"
    assert option(argv, "--prefetch-multiplier") == "1"
    resources = container["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == 1
    assert resources["requests"].get("nvidia.com/gpu", 1) == 1
    others = [
        name
        for name, template in pod_templates(objects).items()
        if name != "worker-gpu"
        and any("nvidia.com/gpu" in c["resources"].get("limits", {}) for c in containers(template))
    ]
    assert not others, f"only worker-gpu takes a GPU: {others}"


@pytest.mark.parametrize("name", ["worker-gpu", "worker-cpu"])
def test_a_scale_down_lets_the_running_task_finish(
    objects: list[dict[str, Any]], settings_fields: dict[str, Any], name: str
) -> None:
    limit = hard_time_limit(objects, settings_fields)
    grace = pod_templates(objects)[name]["spec"]["terminationGracePeriodSeconds"]
    assert grace > limit, f"{name}: SIGKILL after {grace} s would cut a {limit} s task short"
    # No preStop hook delays the SIGTERM that starts Celery's warm shutdown.
    assert "lifecycle" not in the_container(objects, name)


def test_cpu_worker_concurrency_fits_its_cpu_request(objects: list[dict[str, Any]]) -> None:
    container = the_container(objects, "worker-cpu")
    concurrency = option(container["command"], "-c", "--concurrency")
    assert concurrency is not None, "Celery would start one process per node CPU"
    assert int(concurrency) <= int(container["resources"]["requests"]["cpu"])
    assert "gpu" not in (option(container["command"], "-Q", "--queues") or "").split(",")


def test_exactly_one_beat(objects: list[dict[str, Any]]) -> None:
    beat = of_kind(objects, "Deployment")["beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate", "a rolling update runs two beats"
    runs_beat = [
        name
        for name, template in pod_templates(objects).items()
        if any("beat" in c.get("command", []) for c in containers(template))
    ]
    assert runs_beat == ["beat"]
    scaled = scaled_deployments(objects)
    assert "beat" not in scaled


def test_every_deployment_has_probes_and_resources(objects: list[dict[str, Any]]) -> None:
    for name, template in pod_templates(objects).items():
        for container in containers(template):
            requests = container.get("resources", {}).get("requests", {})
            assert {"cpu", "memory"} <= set(requests), f"{name}: requests {requests}"
            assert "memory" in container["resources"].get("limits", {}), name
    # Headless Services (worker metrics) only list pods; the others send them traffic.
    balancing = [
        s for s in of_kind(objects, "Service").values() if s["spec"].get("clusterIP") != "None"
    ]
    for name, deployment in of_kind(objects, "Deployment").items():
        container = the_container(objects, name)
        if name in UNPROBED:
            assert "livenessProbe" not in container, (
                f"{name} has a probe now: drop it from UNPROBED"
            )
            continue
        assert "livenessProbe" in container, f"{name} has no liveness probe"
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        if any(selects(s["spec"]["selector"], labels) for s in balancing):
            assert "readinessProbe" in container, f"{name} takes traffic with no readiness probe"


def test_probes_reach_real_endpoints(
    objects: list[dict[str, Any]], compose: dict[str, Any]
) -> None:
    from flask import Flask

    from webapp.health import bp

    probed = Flask("probe-check")
    probed.register_blueprint(bp)
    routes = {rule.rule for rule in probed.url_map.iter_rules()}
    web = the_container(objects, "web")
    for probe, path in WEB_PROBES.items():
        assert web[probe]["httpGet"]["path"] == path
        assert path in routes, f"webapp/health.py serves no {path}"
        assert _port_number(web, web[probe]["httpGet"]["port"]) == _gunicorn_port()
    for name in ("worker-gpu", "worker-cpu"):
        container = the_container(objects, name)
        for probe in ("startupProbe", "livenessProbe"):
            command = container[probe]["exec"]["command"]
            assert command == ["python", "-m", "workers.health"], (name, probe)
        assert resolves_in_repo("workers.health")
        # The start-up probe allows at least compose's start period and, where the models are
        # loaded, as long as a pool process may take for that.
        startup = container["startupProbe"]
        allowed = startup["periodSeconds"] * startup["failureThreshold"]
        start_period = compose["services"][name]["healthcheck"]["start_period"]
        assert allowed >= int(start_period.removesuffix("s")), name
    startup = the_container(objects, "worker-gpu")["startupProbe"]
    allowed = startup["periodSeconds"] * startup["failureThreshold"]
    assert allowed >= _proc_alive_timeout(objects)


def _port_number(container: dict[str, Any], port: int | str) -> int:
    """A probe's port, resolving a named container port."""
    if isinstance(port, int):
        return port
    [number] = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return int(number)


def _gunicorn_port() -> int:
    """The port deploy/gunicorn.conf.py binds."""
    config = (REPO_ROOT / "deploy" / "gunicorn.conf.py").read_text()
    match = re.search(r'^bind = "[^:"]+:(\d+)"', config, flags=re.M)
    assert match, "deploy/gunicorn.conf.py binds no port"
    return int(match.group(1))


def _proc_alive_timeout(objects: list[dict[str, Any]]) -> float:
    """WORKER_PROC_ALIVE_TIMEOUT as the workers get it."""
    from core.config import Settings

    config = of_kind(objects, "ConfigMap")["scanqueue-config"]["data"]
    default = Settings.model_fields["WORKER_PROC_ALIVE_TIMEOUT"].default
    return float(config.get("WORKER_PROC_ALIVE_TIMEOUT", default))


# --------------------------------------------------------------------------------------------
# autoscaling
# --------------------------------------------------------------------------------------------


def test_scaled_objects_target_the_workers_of_their_queue(objects: list[dict[str, Any]]) -> None:
    from core.queue_names import QUEUES

    deployments = of_kind(objects, "Deployment")
    auths = of_kind(objects, "TriggerAuthentication")
    watched = []
    for name, scaled in of_kind(objects, "ScaledObject").items():
        spec = scaled["spec"]
        target = spec["scaleTargetRef"]
        assert target.get("kind", "Deployment") == "Deployment"
        assert target["name"] in deployments, f"{name} scales no Deployment of ours"
        deployment = deployments[target["name"]]
        # A replicas field would be reset by every `kubectl apply`, fighting the autoscaler.
        assert "replicas" not in deployment["spec"], f"{target['name']} must leave replicas to KEDA"
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        consumed = (option(container["command"], "-Q", "--queues") or "").split(",")
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"], name
        for trigger in spec["triggers"]:
            assert trigger["type"] == "redis", name
            queue = trigger["metadata"]["listName"]
            assert queue in QUEUES, f"{name}: {queue!r} is not in core/queue_names.py"
            assert consumed == [queue], f"{name} scales on {queue} but its pods consume {consumed}"
            assert int(trigger["metadata"]["listLength"]) >= 1
            assert trigger["authenticationRef"]["name"] in auths
            watched.append(queue)
    assert sorted(watched) == sorted(QUEUES), "every queue, and each once, drives its workers"


def test_scaling_down_waits_longer_than_a_task(
    objects: list[dict[str, Any]], settings_fields: dict[str, Any]
) -> None:
    limit = hard_time_limit(objects, settings_fields)
    for name, scaled in of_kind(objects, "ScaledObject").items():
        spec = scaled["spec"]
        behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] > limit, name
        assert spec["cooldownPeriod"] > limit, name
        assert spec["pollingInterval"] < spec["cooldownPeriod"], name


def test_the_redis_database_keda_reads_is_the_brokers(objects: list[dict[str, Any]]) -> None:
    example = dict(
        line.split("=", 1)
        for line in SECRETS_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    )
    broker_db = example["REDIS_URL"].rsplit("/", 1)[1]
    for name, scaled in of_kind(objects, "ScaledObject").items():
        for trigger in scaled["spec"]["triggers"]:
            assert trigger["metadata"]["databaseIndex"] == broker_db, name


def _remove_messages(client: redis.Redis, keys: list[str], task_ids: set[str]) -> None:
    """Take our test messages off the lists again (other tests share this Redis database)."""
    for key in keys:
        for raw in client.lrange(key, 0, -1):
            if json.loads(raw).get("headers", {}).get("id") in task_ids:
                client.lrem(key, 1, raw)


def test_published_messages_sit_in_the_list_keda_reads(
    objects: list[dict[str, Any]], redis_url: str, tmp_path: Path
) -> None:
    """KEDA reads one list per queue, the bare name; a message in a Celery priority list
    (``gpu\\x06\\x163`` ...) would be invisible to it. Publish every task the way our code does
    and look where each message lands."""
    from core.broker_messages import queue_keys
    from core.jobtypes import JOB_TYPES
    from core.publishing import current_celery, publish_job
    from core.queues import TASK_ROUTES
    from core.records import Job
    from webapp import create_app

    watched = {
        t["metadata"]["listName"]
        for s in of_kind(objects, "ScaledObject").values()
        for t in s["spec"]["triggers"]
    }
    app = create_app(
        {
            "SCANQUEUE_ENV": "testing",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.db'}",
            "REDIS_URL": redis_url,
            "MEDIA_ROOT": tmp_path / "media",
        }
    )
    client = redis.Redis.from_url(redis_url)
    # kombu's lists for the queues: the bare name, then one per priority step.
    priority_lists = [key for key in queue_keys(watched) if key not in watched]
    before = {queue: client.llen(queue) for queue in watched}
    sent: dict[str, str] = {}  # task id -> queue it is routed to
    try:
        with app.app_context():
            for job_type in JOB_TYPES.values():  # the upload path
                job = Job(id=uuid.uuid4(), type=job_type.name)
                publish_job(job)
                sent[str(job.id)] = TASK_ROUTES[job_type.task_name]["queue"]
            for task_name, route in TASK_ROUTES.items():  # next stages, mail, sweeps
                task_id = str(uuid.uuid4())
                current_celery().send_task(task_name, args=["x"], task_id=task_id)
                sent[task_id] = route["queue"]
        assert set(sent.values()) <= watched, "a task is routed to a queue KEDA does not watch"
        for queue in watched:
            expected = sum(1 for q in sent.values() if q == queue)
            assert client.llen(queue) - before[queue] == expected, queue
        assert not [key for key in priority_lists if client.llen(key)]
    finally:
        _remove_messages(client, [*watched, *priority_lists], set(sent))
        client.close()


# --------------------------------------------------------------------------------------------
# the same system as docker-compose.yml
# --------------------------------------------------------------------------------------------


def _repository(image: str) -> str:
    """An image reference without its tag (compose's tag may be `${SCANQUEUE_TAG:-latest}`)."""
    name_start = image.rfind("/") + 1
    colon = image.find(":", name_start)
    return image if colon < 0 else image[:colon]


def _same_variables(argv: list[str]) -> list[str]:
    """The command with `$(NAME)` (Kubernetes) and `${NAME...}` (compose) both as `<NAME>`."""
    return [re.sub(r"\$\((\w+)\)|\$\{(\w+)[^}]*\}", r"<\1\2>", arg) for arg in argv]


def _without(argv: list[str], options: tuple[str, ...]) -> list[str]:
    """The command without these options and their values."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in options:
            skip = True
        elif not any(arg.startswith(o + "=") for o in options):
            kept.append(arg)
    return kept


@pytest.mark.parametrize(("workload", "service"), sorted(COMPOSE_SERVICE.items()))
def test_workloads_run_composes_image_and_command(
    objects: list[dict[str, Any]], compose: dict[str, Any], workload: str, service: str
) -> None:
    container = the_container(objects, workload)
    theirs = compose["services"][service]
    assert _repository(container["image"]) == _repository(theirs["image"])
    ours = _without(container["command"], K8S_ONLY_OPTIONS.get(workload, ()))
    assert _same_variables(ours) == _same_variables(argv_of(theirs))
    # Kubernetes leaves $(NAME) as it is unless the container's env defines NAME.
    defined = {e["name"] for e in container.get("env", [])}
    for name in re.findall(r"\$\((\w+)\)", " ".join(container["command"])):
        assert name in defined, f"{workload}: $({name}) is not defined in env"


def test_settings_match_compose_and_exist(
    objects: list[dict[str, Any]], compose: dict[str, Any], settings_fields: dict[str, Any]
) -> None:
    config = of_kind(objects, "ConfigMap")["scanqueue-config"]["data"]
    secret_keys = env_file_keys(SECRETS_EXAMPLE)
    assert not set(config) & secret_keys, "a setting is both in the ConfigMap and the Secret"
    provided = set(config) | secret_keys
    unknown = provided - set(settings_fields)
    assert not unknown, f"not fields of core.config.Settings: {sorted(unknown)}"
    missing = set(compose["x-app-env"]) - provided
    assert not missing, f"compose sets {sorted(missing)}, Kubernetes does not"
    for name in ("SCANQUEUE_ENV", "MEDIA_ROOT"):
        assert config[name] == compose["x-app-env"][name], name
    for name, template in pod_templates(objects).items():
        for container in containers(template):
            sources = container.get("envFrom", [])
            assert {"configMapRef": {"name": "scanqueue-config"}} in sources, name
            assert {"secretRef": {"name": APP_SECRET}} in sources, name
            for variable in container.get("env", []):
                assert variable["name"] in settings_fields or "valueFrom" in variable, (
                    f"{name}: {variable['name']} is no setting"
                )


def test_media_is_one_shared_volume_where_compose_mounts_it(
    objects: list[dict[str, Any]], compose: dict[str, Any]
) -> None:
    media_root = of_kind(objects, "ConfigMap")["scanqueue-config"]["data"]["MEDIA_ROOT"]
    [claim] = of_kind(objects, "PersistentVolumeClaim").values()
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"], "pods on several nodes share it"
    for workload, service in COMPOSE_SERVICE.items():
        template = pod_templates(objects)[workload]
        volumes = {
            v["name"]: v.get("persistentVolumeClaim", {}).get("claimName")
            for v in template["spec"].get("volumes", [])
        }
        mounts = {
            m["mountPath"]
            for m in the_container(objects, workload).get("volumeMounts", [])
            if volumes.get(m["name"]) == claim["metadata"]["name"]
        }
        in_compose = any(
            str(v).split(":")[1] == media_root
            for v in compose["services"][service].get("volumes", [])
        )
        assert mounts == ({media_root} if in_compose else set()), workload


def test_ingress_accepts_what_the_app_and_nginx_accept(objects: list[dict[str, Any]]) -> None:
    [ingress] = of_kind(objects, "Ingress").values()
    annotations = ingress["metadata"]["annotations"]
    [nginx_limit] = nginx_directives()["client_max_body_size"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == nginx_limit
    assert annotations["nginx.ingress.kubernetes.io/proxy-request-buffering"] == "on"
    services = of_kind(objects, "Service")
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            ports = {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
            assert backend["port"]["name"] in ports
    assert {"name": "TRUSTED_PROXIES", "value": "1"} in the_container(objects, "web")["env"]


# --------------------------------------------------------------------------------------------
# services, disruption budgets, security, metrics
# --------------------------------------------------------------------------------------------


def test_services_and_budgets_select_real_pods(objects: list[dict[str, Any]]) -> None:
    templates = pod_templates(objects)
    for kind in ("Service", "PodDisruptionBudget"):
        for name, o in of_kind(objects, kind).items():
            selector = o["spec"]["selector"]
            selector = selector.get("matchLabels", selector)
            picked = [w for w, t in templates.items() if selects(selector, t["metadata"]["labels"])]
            assert picked, f"{kind}/{name} selects no pods"
            if kind == "Service":
                for port in o["spec"]["ports"]:
                    for workload in picked:
                        named = {p.get("name") for p in the_container(objects, workload)["ports"]}
                        assert port["targetPort"] in named, (name, workload, port)


def test_drains_can_proceed_and_scaled_workers_are_covered(objects: list[dict[str, Any]]) -> None:
    deployments = of_kind(objects, "Deployment")
    budgets = of_kind(objects, "PodDisruptionBudget").values()
    scaled = scaled_deployments(objects)
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        mine = [b for b in budgets if selects(b["spec"]["selector"]["matchLabels"], labels)]
        replicas = deployment["spec"].get("replicas")
        if name in scaled or (replicas or 1) > 1:
            assert mine, f"{name} runs several pods and has no PodDisruptionBudget"
        for budget in mine:
            # A budget that keeps every pod blocks node drains for ever.
            assert budget["spec"].get("minAvailable", 0) < (replicas or 2), name


def test_every_pod_runs_as_the_images_user_without_privileges(
    objects: list[dict[str, Any]],
) -> None:
    uid = int(re.search(r"--uid (\d+)", (REPO_ROOT / "Dockerfile").read_text()).group(1))
    for name, template in pod_templates(objects).items():
        pod = template["spec"]
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] == uid, name
        assert security["fsGroup"] == uid, f"{name}: the media volume must be writable"
        assert security["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod.get("automountServiceAccountToken") is False, name
        empty_dirs = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
        for container in containers(template):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert context["readOnlyRootFilesystem"] is True, name
            # Read-only root: /tmp (gunicorn, beat's schedule, temp files) is an emptyDir.
            tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            assert [m["name"] for m in tmp] and tmp[0]["name"] in empty_dirs, name
    namespace = next(iter(of_kind(objects, "Namespace").values()))
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_worker_metrics_port_is_exposed_for_prometheus(
    objects: list[dict[str, Any]], settings_fields: dict[str, Any]
) -> None:
    field = settings_fields.get("WORKER_METRICS_PORT")
    port = field.default if field is not None else CONTRACT_WORKER_METRICS_PORT
    service = of_kind(objects, "Service")["worker-metrics"]
    assert service["spec"]["clusterIP"] == "None", "Prometheus must see every pod"
    assert [p["port"] for p in service["spec"]["ports"]] == [port]
    for name in ("worker-gpu", "worker-cpu"):
        template = pod_templates(objects)[name]
        assert selects(service["spec"]["selector"], template["metadata"]["labels"]), name
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(port), name
        assert annotations["prometheus.io/path"] == "/metrics", name
        ports = {p["name"]: p["containerPort"] for p in the_container(objects, name)["ports"]}
        assert ports["metrics"] == port, name
