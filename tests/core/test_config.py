"""Settings: single-machine defaults, environment overrides, production refuses defaults."""

from __future__ import annotations

import pytest

from core.config import DEV_SECRET_KEY, ConfigurationError, Environment, load_settings


def test_defaults_are_a_single_machine_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "MEDIA_ROOT", "SECRET_KEY", "SCANQUEUE_ENV"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.DATABASE_URL.startswith("sqlite:///") and "instance" in settings.DATABASE_URL
    assert settings.REDIS_URL == "redis://127.0.0.1:6379/0"
    assert settings.MEDIA_ROOT.parts[-2:] == ("instance", "media")
    assert settings.MAX_UPLOAD_BYTES == 50 * 1024 * 1024


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    from webapp import FORM_OVERHEAD_BYTES, create_app

    monkeypatch.setenv("DATABASE_URL", "postgresql://x@db/scanqueue")
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "1234")
    monkeypatch.setenv("MAX_FILES_PER_JOB", "3")
    # Not only read back: the values reach what the running app uses.
    app = create_app()
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql://x@db/scanqueue"
    assert app.config["MAX_CONTENT_LENGTH"] == 1234 * 3 + FORM_OVERHEAD_BYTES
    # An explicit override beats the environment.
    assert load_settings(MAX_UPLOAD_BYTES=99).MAX_UPLOAD_BYTES == 99


@pytest.mark.parametrize("secret", [None, DEV_SECRET_KEY, "short"])
def test_production_refuses_default_or_weak_secret(
    monkeypatch: pytest.MonkeyPatch, secret: str | None
) -> None:
    monkeypatch.setenv("SCANQUEUE_ENV", "production")
    if secret is None:
        monkeypatch.delenv("SECRET_KEY", raising=False)
    else:
        monkeypatch.setenv("SECRET_KEY", secret)
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        load_settings()


def test_production_accepts_a_real_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCANQUEUE_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "x" * 48)
    monkeypatch.setenv("PUBLIC_URL", "https://scanqueue.example.org")
    assert load_settings().SCANQUEUE_ENV is Environment.PRODUCTION


def test_production_refuses_the_development_public_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCANQUEUE_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "x" * 48)
    monkeypatch.delenv("PUBLIC_URL", raising=False)
    with pytest.raises(ConfigurationError, match="PUBLIC_URL"):
        load_settings()


def test_inconsistent_time_limits_fail_fast() -> None:
    with pytest.raises(ConfigurationError, match="BROKER_VISIBILITY_TIMEOUT"):
        load_settings(TASK_SOFT_TIME_LIMIT=10, TASK_TIME_LIMIT=20, BROKER_VISIBILITY_TIMEOUT=15)
    with pytest.raises(ConfigurationError, match="TASK_SOFT_TIME_LIMIT"):
        load_settings(TASK_SOFT_TIME_LIMIT=30, TASK_TIME_LIMIT=20)


def test_bad_number_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "lots")
    with pytest.raises(ConfigurationError, match="MAX_UPLOAD_BYTES"):
        load_settings()


def test_worker_liveness_settings_must_leave_room_for_a_missed_beat() -> None:
    with pytest.raises(ConfigurationError, match="WORKER_HEARTBEAT_TTL_SECONDS"):
        load_settings(WORKER_HEARTBEAT_SECONDS=10, WORKER_HEARTBEAT_TTL_SECONDS=15)
    with pytest.raises(ConfigurationError, match="ORPHAN_MESSAGE_GRACE_SECONDS"):
        load_settings(WORKER_HEARTBEAT_TTL_SECONDS=30, ORPHAN_MESSAGE_GRACE_SECONDS=20)
    # Equal to the TTL leaves no beat for a record that expired to be written again.
    with pytest.raises(ConfigurationError, match="ORPHAN_MESSAGE_GRACE_SECONDS"):
        load_settings(
            WORKER_HEARTBEAT_SECONDS=10,
            WORKER_HEARTBEAT_TTL_SECONDS=30,
            ORPHAN_MESSAGE_GRACE_SECONDS=30,
        )
    assert load_settings().WORKER_PROC_ALIVE_TIMEOUT > 4  # Celery's default kills model loads
