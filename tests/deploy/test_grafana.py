"""deploy/grafana: the provisioned datasource, and the dashboard's panels and queries.

Every query must parse as PromQL (promtool checks them as recording rules) and use only the
contract's metrics; every panel must name the provisioned datasource and have a query.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.deploy.metric_contract import is_contract_series, metric_names_in
from tests.deploy.promtool import promtool

GRAFANA_DIR = REPO_ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "scanqueue.json"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
# Grafana's query variables, with a value Prometheus accepts in their place.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}
# What the issue asks the dashboard to show: each needs at least one query on it.
REQUIRED_METRICS = {
    "scanqueue_queue_messages": "queue depth",
    "scanqueue_queue_oldest_message_age_seconds": "oldest message age",
    "scanqueue_queue_consumers": "consumers per queue",
    "scanqueue_jobs_succeeded_total": "throughput",
    "scanqueue_jobs_failed_total": "failures",
    "scanqueue_job_queue_wait_seconds_bucket": "queue wait p50/p95",
    "scanqueue_job_run_seconds_bucket": "run time p50/p95",
    "scanqueue_worker_up": "workers up",
    "scanqueue_dead_letter_jobs": "dead letters",
    "scanqueue_broker_up": "broker",
}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    """The committed dashboard, parsed (a syntax error fails here)."""
    data = json.loads(DASHBOARD.read_text())
    assert isinstance(data, dict)
    return data


def query_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel but the row headers, rows' nested panels included."""
    panels: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            panels.extend(panel.get("panels", []))
        else:
            panels.append(panel)
    return panels


def expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the dashboard."""
    return [target["expr"] for panel in query_panels(dashboard) for target in panel["targets"]]


def provisioned_datasource_uid() -> str:
    """The uid of the one datasource Grafana is provisioned with."""
    [source] = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert source["type"] == "prometheus"
    return str(source["uid"])


def test_the_dashboard_has_a_stable_uid_and_panels(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "scanqueue"
    assert len(query_panels(dashboard)) >= 10
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_every_panel_queries_the_provisioned_datasource(dashboard: dict[str, Any]) -> None:
    uid = provisioned_datasource_uid()
    for panel in query_panels(dashboard):
        title = panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, title
        assert panel["targets"], f"{title} has no query"
        for target in panel["targets"]:
            assert target["expr"].strip(), title
            assert target.get("datasource", panel["datasource"]) == panel["datasource"], title
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), title
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, title


def test_every_query_is_valid_promql(dashboard: dict[str, Any], tmp_path: Path) -> None:
    # promtool parses a recording rule's expression like any query.
    rules = []
    for index, expr in enumerate(expressions(dashboard)):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"an unknown Grafana variable in {expr}"
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    document = {"groups": [{"name": "dashboard", "rules": rules}]}
    (tmp_path / "queries.yml").write_text(yaml.safe_dump(document))
    result = promtool("check", "rules", "queries.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_uses_only_contract_metrics(dashboard: dict[str, Any]) -> None:
    used = set().union(*(metric_names_in(expr) for expr in expressions(dashboard)))
    unknown = sorted(name for name in used if not is_contract_series(name))
    assert not unknown, f"the dashboard uses metrics outside the contract: {unknown}"
    missing = {what for name, what in REQUIRED_METRICS.items() if name not in used}
    assert not missing, f"no panel shows: {sorted(missing)}"


def test_latency_panels_show_p50_and_p95_per_type(dashboard: dict[str, Any]) -> None:
    for metric in ("scanqueue_job_queue_wait_seconds", "scanqueue_job_run_seconds"):
        queries = [e for e in expressions(dashboard) if f"{metric}_bucket" in e]
        quantiles = {
            re.search(r"histogram_quantile\(([0-9.]+),", e).group(1)  # type: ignore[union-attr]
            for e in queries
        }
        assert quantiles == {"0.5", "0.95"}, metric
        assert all(re.search(r"by \((type, le|le, type)\)", e) for e in queries), metric


def test_provisioning_points_at_the_dashboards_and_prometheus() -> None:
    provider_file = GRAFANA_DIR / "provisioning" / "dashboards" / "scanqueue.yml"
    [provider] = yaml.safe_load(provider_file.read_text())["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/etc/grafana/dashboards"
    [source] = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090"
