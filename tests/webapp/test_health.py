"""Liveness and readiness against the real database and broker."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskClient

from tests.conftest import build_app


def test_healthz(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_when_database_and_broker_answer(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": "ok", "broker": "ok"}


def test_readyz_names_the_unreachable_broker(tmp_path: Path) -> None:
    app = build_app(f"sqlite:///{tmp_path / 'r.db'}", "redis://127.0.0.1:1/0", tmp_path / "m")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("broker unreachable")


def test_readyz_names_the_unreachable_database(tmp_path: Path, redis_url: str) -> None:
    from webapp import create_app

    app = create_app(
        {
            "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
            "REDIS_URL": redis_url,
            "MEDIA_ROOT": tmp_path,
        }
    )
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"].startswith("database unreachable")


def test_unknown_route_is_json_404(client: FlaskClient) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
