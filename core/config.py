"""Typed settings from the environment: single-machine defaults, fail-fast checks for production."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipelines.limits import (
    DEFAULT_MAX_DECODED_BYTES,
    DEFAULT_MAX_FRAMES,
    DEFAULT_MAX_PIXELS,
    ImageLimits,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_DIR = PROJECT_ROOT / "instance"

# Recognisable so that production can refuse it; never valid outside development and tests.
DEV_SECRET_KEY = "dev-insecure-secret-key-change-me"
MIN_PRODUCTION_SECRET_LENGTH = 32
DEV_PUBLIC_URL = "http://127.0.0.1:5000"


class Environment(StrEnum):
    """Where the process runs; production turns the safety checks on."""

    DEVELOPMENT = "development"
    TESTING = "testing"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """Every knob of the system; names match the environment variables."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=True, extra="ignore")

    SCANQUEUE_ENV: Environment = Environment.DEVELOPMENT
    SECRET_KEY: str = DEV_SECRET_KEY
    DATABASE_URL: str = f"sqlite:///{INSTANCE_DIR / 'scanqueue.db'}"
    REDIS_URL: str = "redis://127.0.0.1:6379/0"
    MEDIA_ROOT: Path = INSTANCE_DIR / "media"

    # Uploads: refused before anything is stored.
    MAX_UPLOAD_BYTES: int = Field(default=50 * 1024 * 1024, gt=0)
    MAX_IMAGE_PIXELS: int = Field(default=DEFAULT_MAX_PIXELS, gt=0)
    # DICOM: frames per file, and the decoded size of all frames together (rows x columns x
    # frames x samples x bytes), checked from the header before any pixel data is inflated.
    MAX_DICOM_FRAMES: int = Field(default=DEFAULT_MAX_FRAMES, gt=0)
    MAX_DECODED_IMAGE_BYTES: int = Field(default=DEFAULT_MAX_DECODED_BYTES, gt=0)
    MAX_FILES_PER_JOB: int = Field(default=30, gt=0)
    # Per user, over jobs not yet final (a batch counts one job per file, a sequence one job):
    # a submission that would go over either limit gets 429 with Retry-After (seconds).
    MAX_QUEUED_JOBS_PER_USER: int = Field(default=100, gt=0)
    MAX_QUEUED_BYTES_PER_USER: int = Field(default=2 * 1024**3, gt=0)
    QUEUE_QUOTA_RETRY_AFTER: int = Field(default=30, gt=0)

    # API tokens (signed with SECRET_KEY).
    TOKEN_TTL_SECONDS: int = Field(default=3600, gt=0)

    # Task limits. The broker's visibility timeout must outlast the hard limit, or Redis would
    # hand a still-running task to a second worker (acks_late leaves it unacknowledged meanwhile).
    TASK_SOFT_TIME_LIMIT: int = Field(default=120, gt=0)
    TASK_TIME_LIMIT: int = Field(default=150, gt=0)
    BROKER_VISIBILITY_TIMEOUT: int = Field(default=3600, gt=0)
    # A task that loses the database is retried after BASE, 2xBASE, 4xBASE ... seconds, at most
    # MAX_DELAY apart, TASK_MAX_RETRIES times: the defaults wait out 3.5 minutes of outage, and a
    # job resumes at most MAX_DELAY after the database is back (no sweep needed).
    TASK_MAX_RETRIES: int = Field(default=10, ge=0)
    DB_RETRY_BASE_SECONDS: int = Field(default=2, gt=0)
    DB_RETRY_MAX_DELAY_SECONDS: int = Field(default=30, gt=0)
    # While the database is unreachable requests answer 503 database_unavailable with this
    # Retry-After; connecting gives up after CONNECT_TIMEOUT so a dead host cannot hang requests.
    DATABASE_RETRY_AFTER_SECONDS: int = Field(default=5, gt=0)
    DATABASE_CONNECT_TIMEOUT_SECONDS: int = Field(default=5, gt=0)

    # The web server (deploy/gunicorn.conf.py): processes, threads per process (1: sync
    # processes, behind nginx), and how long a process may stay unresponsive before gunicorn
    # replaces it (for sync processes: the longest a request may take; as nginx's read timeout).
    WEB_WORKERS: int = Field(default=4, gt=0)
    WEB_THREADS: int = Field(default=1, gt=0)
    WEB_TIMEOUT_SECONDS: int = Field(default=120, gt=0)
    # How many reverse proxies (nginx in compose) stand in front of the app: their
    # X-Forwarded-For/-Proto are trusted so rate limits count the client, not the proxy.
    TRUSTED_PROXIES: int = Field(default=0, ge=0)
    # How long a new pool process may take to start (model loading and warm-up happen then)
    # before Celery kills it. Celery's default, 4 s, is shorter than loading the models, and a
    # process killed for it is replaced by one that is killed again, for ever.
    WORKER_PROC_ALIVE_TIMEOUT: float = Field(default=180.0, gt=0)
    # Test hook only: extra seconds each pool process sleeps at start-up (a slow model load).
    WORKER_STARTUP_DELAY_SECONDS: float = Field(default=0.0, ge=0)
    # Each worker writes its liveness (and the delivery tags of the messages it holds) to Redis
    # every WORKER_HEARTBEAT_SECONDS, valid for WORKER_HEARTBEAT_TTL_SECONDS. A message delivered
    # more than ORPHAN_MESSAGE_GRACE_SECONDS ago that no live worker holds belonged to a worker
    # that died: it is put back on its queue once two sweeps (every ORPHAN_SWEEP_SECONDS)
    # TTL + one heartbeat apart found it held by none. From a death to the restore: the dead
    # worker's record expiring (up to the TTL), the next sweep, then TTL + heartbeat more until
    # a sweep confirms it (and at least the grace since delivery): about 80 s with these
    # defaults, under 2 minutes at worst.
    WORKER_HEARTBEAT_SECONDS: float = Field(default=10.0, gt=0)
    WORKER_HEARTBEAT_TTL_SECONDS: float = Field(default=30.0, gt=0)
    ORPHAN_MESSAGE_GRACE_SECONDS: float = Field(default=60.0, gt=0)
    ORPHAN_SWEEP_SECONDS: float = Field(default=20.0, gt=0)

    # Dynamic batching (models.batching): a gpu worker runs up to GPU_BATCH_MAX jobs at once
    # (threads pool) and merges their model calls, at most GPU_BATCH_MAX rows per call, waiting
    # at most GPU_BATCH_WAIT_MS for more; 1 = one job per process and call, as before.
    GPU_BATCH_MAX: int = Field(default=16, ge=1, le=256)
    GPU_BATCH_WAIT_MS: float = Field(default=15.0, ge=0, le=60_000)

    # Models: the registry folder and which model (and version; empty = newest) serves a job type.
    MODEL_DIR: Path = PROJECT_ROOT / "models" / "registry"
    SEGMENTATION_MODEL: str = "hc18-unet"
    SEGMENTATION_MODEL_VERSION: str = ""
    # The sequence model (face series -> improving vs deteriorating); empty version = newest.
    SEQUENCE_MODEL: str = "skin-trend-convlstm"
    SEQUENCE_MODEL_VERSION: str = ""
    # The default classifier; a job may name another registered one (params.model).
    CLASSIFICATION_MODEL: str = "hc18-trimester"
    CLASSIFICATION_MODEL_VERSION: str = ""
    # What one worker process keeps loaded (least recently used out; 0 = no limit): models, and
    # bytes of weights in memory (shapes x dtype sizes). The model a job needs is always loaded.
    MODEL_CACHE_MAX_MODELS: int = Field(default=8, ge=0)
    MODEL_CACHE_MAX_BYTES: int = Field(default=4 * 1024**3, ge=0)
    # Below this top probability a classification is "uncertain", unless the model's manifest
    # or the job's params give another threshold.
    CLASSIFICATION_UNCERTAIN_BELOW: float = Field(default=0.6, ge=0, le=1)

    # Polling hint for clients, seconds.
    POLL_RETRY_AFTER: int = Field(default=1, gt=0)

    # The site's public address: links in emails (sent from workers) are built on it.
    PUBLIC_URL: str = DEV_PUBLIC_URL
    # GET /metrics needs "Authorization: Bearer <METRICS_TOKEN>"; left empty, it answers only
    # requests from this machine (loopback), and 404 to everyone else.
    METRICS_TOKEN: str = ""
    # Each worker node's main process serves its metrics (every pool process's, summed) on this
    # port (0 = off), on this address: loopback for `make run`; the Docker images set 0.0.0.0,
    # to be reached on the private network only (never publish the port).
    WORKER_METRICS_PORT: int = Field(default=9808, ge=0, lt=65536)
    WORKER_METRICS_BIND: str = "127.0.0.1"
    # Outgoing email over SMTP. `make run` starts a local sink on 127.0.0.1:8025.
    SMTP_HOST: str = "127.0.0.1"
    SMTP_PORT: int = Field(default=8025, gt=0, lt=65536)
    SMTP_USERNAME: str = ""
    SMTP_PASSWORD: str = ""
    SMTP_STARTTLS: bool = False
    SMTP_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0)
    MAIL_FROM: str = "ScanQueue <no-reply@scanqueue.local>"
    # A failed send is retried after BASE, 2xBASE, 4xBASE ... seconds (at most MAX_DELAY apart),
    # MAIL_MAX_RETRIES times; after that the periodic outbox sweep queues it again.
    MAIL_RETRY_BASE_SECONDS: int = Field(default=10, gt=0)
    MAIL_RETRY_MAX_DELAY_SECONDS: int = Field(default=900, gt=0)
    MAIL_MAX_RETRIES: int = Field(default=12, ge=0)
    # Links in account emails (confirm address, reset password) stop working after this long.
    ACCOUNT_LINK_TTL_SECONDS: int = Field(default=3600, gt=0)

    # FAILED sign-ins (web form and POST /api/v1/tokens share the counts): per account from one
    # client address (the owner elsewhere is not locked out), and per client address overall.
    SIGNIN_LIMIT_PER_ACCOUNT: str = "5 per 15 minutes"
    SIGNIN_LIMIT_PER_ADDRESS: str = "30 per 15 minutes"
    # Sign-up, confirmation and reset requests per client address (each sends an email).
    EMAIL_REQUEST_LIMIT_PER_ADDRESS: str = "10 per hour"
    # Where the limiter counts; empty = REDIS_URL (shared by every web process).
    RATELIMIT_STORAGE_URL: str = ""

    # Outcome follow-ups: asked this many days after a subject's due date, by a beat job that
    # runs every FOLLOWUP_CHECK_SECONDS; the right/wrong links work for FOLLOWUP_LINK_TTL_DAYS.
    FOLLOWUP_DELAY_DAYS: int = Field(default=7, ge=0)
    FOLLOWUP_LINK_TTL_DAYS: int = Field(default=30, gt=0)
    FOLLOWUP_CHECK_SECONDS: int = Field(default=86400, gt=0)
    # A job is run at most this many times: a job whose process dies under it (out of memory, a
    # crash) is re-delivered, and the delivery after the last attempt fails it with worker_lost.
    MAX_ATTEMPTS: int = Field(default=3, gt=0)
    # A running job silent (no heartbeat) for TASK_TIME_LIMIT + this is presumed lost with its
    # worker: re-queued, or failed once it has had MAX_ATTEMPTS attempts.
    STALE_JOB_GRACE_SECONDS: int = Field(default=60, ge=0)
    STALE_SWEEP_SECONDS: int = Field(default=300, gt=0)
    # The same sweep publishes again a job still queued after this long whose message the broker
    # no longer holds (a Redis restarted without its data). Younger jobs are not looked at.
    LOST_MESSAGE_AFTER_SECONDS: int = Field(default=600, gt=0)
    # Artifacts of jobs that finished longer ago than this are removed (rows are kept, marked).
    ARTIFACT_RETENTION_DAYS: int = Field(default=365, gt=0)
    RETENTION_SWEEP_SECONDS: int = Field(default=86400, gt=0)

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if self.TASK_SOFT_TIME_LIMIT >= self.TASK_TIME_LIMIT:
            raise ValueError("TASK_SOFT_TIME_LIMIT must be below TASK_TIME_LIMIT")
        if self.BROKER_VISIBILITY_TIMEOUT <= self.TASK_TIME_LIMIT:
            raise ValueError("BROKER_VISIBILITY_TIMEOUT must exceed TASK_TIME_LIMIT")
        # A live worker must renew its liveness before it expires, and must have recorded a new
        # message as held before the orphan sweep may look at it.
        if self.WORKER_HEARTBEAT_TTL_SECONDS < 2 * self.WORKER_HEARTBEAT_SECONDS:
            raise ValueError(
                "WORKER_HEARTBEAT_TTL_SECONDS must be at least twice WORKER_HEARTBEAT_SECONDS"
            )
        # A record expiring just as a new message arrives leaves one beat to list it.
        settle = self.WORKER_HEARTBEAT_TTL_SECONDS + self.WORKER_HEARTBEAT_SECONDS
        if settle > self.ORPHAN_MESSAGE_GRACE_SECONDS:
            raise ValueError(
                "ORPHAN_MESSAGE_GRACE_SECONDS must be at least WORKER_HEARTBEAT_TTL_SECONDS "
                "+ WORKER_HEARTBEAT_SECONDS"
            )
        weak_secret = (
            self.SECRET_KEY == DEV_SECRET_KEY or len(self.SECRET_KEY) < MIN_PRODUCTION_SECRET_LENGTH
        )
        if self.SCANQUEUE_ENV is Environment.PRODUCTION and weak_secret:
            raise ValueError(
                "SECRET_KEY must be set to a random value of at least "
                f"{MIN_PRODUCTION_SECRET_LENGTH} characters in production "
                '(python -c "import secrets; print(secrets.token_urlsafe(48))")'
            )
        if self.SCANQUEUE_ENV is Environment.PRODUCTION and self.PUBLIC_URL == DEV_PUBLIC_URL:
            raise ValueError(
                "PUBLIC_URL must be set in production: links in emails are built on it "
                "(e.g. https://scanqueue.example.org)"
            )
        return self

    @property
    def image_limits(self) -> ImageLimits:
        """The size limits every image decode checks first (upload and worker alike)."""
        return ImageLimits(
            self.MAX_IMAGE_PIXELS, self.MAX_DICOM_FRAMES, self.MAX_DECODED_IMAGE_BYTES
        )

    @property
    def is_sqlite(self) -> bool:
        """Whether the database is a local SQLite file."""
        return self.DATABASE_URL.startswith("sqlite")


class ConfigurationError(RuntimeError):
    """Settings are missing or unsafe; the message says which and how to fix them."""


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment (overrides win) or stop with a readable message."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigurationError(f"Invalid ScanQueue configuration: {problems}") from None
