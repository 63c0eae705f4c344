"""deploy/prometheus: the compose stack's scrape config, alert rules and their unit tests.

promtool (Debian's, a real binary) checks the config and rules and runs alerts_test.yml; the rest
holds the rules to the metric contract and to the runbook the README promises.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.deploy.metric_contract import is_contract_series, metric_names_in
from tests.deploy.promtool import promtool

PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
# The alerts under the names the metrics contract gives them, plus the one that says
# the others have gone blind.
ALERTS = {
    "ScanQueueGpuNoConsumer",
    "ScanQueueGpuBacklogOld",
    "ScanQueueJobFailureRate",
    "ScanQueueDeadLetters",
    "ScanQueueBrokerDown",
    "ScanQueueWorkerDown",
    "ScanQueueWebDown",
}


def load(name: str) -> dict[str, Any]:
    """A YAML file of deploy/prometheus, parsed."""
    data = yaml.safe_load((PROMETHEUS_DIR / name).read_text())
    assert isinstance(data, dict), name
    return data


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of alerts.yml."""
    return [rule for group in load("alerts.yml")["groups"] for rule in group["rules"]]


def test_the_compose_config_passes_promtool(tmp_path: Path) -> None:
    # A copy, because the bearer token file exists only inside the container
    # (/run/secrets/metrics_token); promtool insists that it exists.
    config = load("prometheus.yml")
    token = tmp_path / "metrics_token"
    token.write_text("test-token\n")
    for job in config["scrape_configs"]:
        if "authorization" in job:
            assert job["authorization"]["credentials_file"].startswith("/run/secrets/")
            job["authorization"]["credentials_file"] = str(token)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    for rule_file in config["rule_files"]:
        shutil.copy(PROMETHEUS_DIR / rule_file, tmp_path / rule_file)

    result = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    # check config also checks every rule file it names.
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_promtool_rejects_a_config_whose_rule_file_is_missing(tmp_path: Path) -> None:
    # The check above could pass vacuously if promtool ignored rule_files; it does not.
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({"rule_files": ["alerts.yml"]}))
    result = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert result.returncode != 0 and "alerts.yml" in result.stdout + result.stderr


def test_the_alert_rules_pass_promtool() -> None:
    result = promtool("check", "rules", "alerts.yml", cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alert_unit_tests_pass() -> None:
    result = promtool("test", "rules", "alerts_test.yml", cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_unit_tests_fail_on_a_broken_rule(tmp_path: Path) -> None:
    # Proof that alerts_test.yml tests the committed rules: the GPU backlog threshold lowered
    # from 10 minutes to 1 makes its "silent" cases fail.
    rules = (PROMETHEUS_DIR / "alerts.yml").read_text()
    assert rules.count("> 600") == 1
    (tmp_path / "alerts.yml").write_text(rules.replace("> 600", "> 60"))
    shutil.copy(PROMETHEUS_DIR / "alerts_test.yml", tmp_path / "alerts_test.yml")
    result = promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "ScanQueueGpuBacklogOld" in result.stdout + result.stderr


def test_the_alerts_are_the_contracts() -> None:
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names)), "an alert is defined twice"
    assert set(names) == ALERTS


def test_every_alert_has_a_firing_and_a_silent_unit_test() -> None:
    fires: set[str] = set()
    silent: set[str] = set()
    for case in load("alerts_test.yml")["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    assert ALERTS - fires == set(), "no test where these fire"
    assert ALERTS - silent == set(), "no test where these stay silent"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_every_alert_says_what_it_means_and_what_to_do(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"warning", "critical"}
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    # The runbook: long enough to name a cause and a command, not a restated summary.
    assert len(annotations["description"].split()) >= 30, rule["alert"]


def test_rules_use_only_contract_metrics() -> None:
    used = set().union(*(metric_names_in(rule["expr"]) for rule in alert_rules()))
    assert used, "the rules mention no scanqueue metric at all"
    unknown = sorted(name for name in used if not is_contract_series(name))
    assert not unknown, f"alerts.yml uses metrics outside the contract: {unknown}"


def test_the_contract_check_catches_a_misspelt_metric() -> None:
    assert is_contract_series("scanqueue_job_run_seconds_bucket")
    assert is_contract_series("scanqueue_jobs_failed_total")
    assert not is_contract_series("scanqueue_queue_message")
    assert not is_contract_series("scanqueue_job_runtime_seconds_bucket")
    assert metric_names_in('rate(scanqueue_jobs_failed_total{type="x"}[5m])') == {
        "scanqueue_jobs_failed_total"
    }


def test_scrape_jobs_match_the_alerts() -> None:
    # ScanQueueWorkerDown and ScanQueueWebDown select targets by job name.
    jobs = {job["job_name"] for job in load("prometheus.yml")["scrape_configs"]}
    assert {"scanqueue-web", "scanqueue-worker-gpu", "scanqueue-worker-cpu"} <= jobs
    rules = {rule["alert"]: rule["expr"] for rule in alert_rules()}
    assert 'job=~"scanqueue-worker-.+"' in rules["ScanQueueWorkerDown"]
    assert 'job="scanqueue-web"' in rules["ScanQueueWebDown"]
