"""Database records: users, jobs, their uploaded inputs and produced artifacts."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates
from werkzeug.security import check_password_hash, generate_password_hash

from core.database import db


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def new_security_stamp() -> str:
    """A fresh random security stamp (see ``User.security_stamp``)."""
    return secrets.token_hex(16)


class JobStatus(StrEnum):
    """Life cycle of a job; the last three are final."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """Whether the job can no longer change."""
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

_STATUS_VALUES = ", ".join(f"'{s.value}'" for s in JobStatus)


class User(db.Model):
    """Someone who submits jobs; owns everything they upload."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(256))
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    # Set when the user followed the confirmation link (or an operator created the account).
    email_confirmed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # Every session and signed API token carries the stamp it was issued under; a new stamp
    # (password changed or reset, address confirmed) makes all of them invalid at once.
    security_stamp: Mapped[str] = mapped_column(sa.String(32), default=new_security_stamp)

    jobs: Mapped[list[Job]] = relationship(back_populates="owner", cascade="all, delete-orphan")
    subjects: Mapped[list[Subject]] = relationship(
        back_populates="owner", cascade="all, delete-orphan"
    )

    # Flask-Login's user protocol.
    @property
    def is_authenticated(self) -> bool:
        """Every loaded user is authenticated (anonymous users are another class)."""
        return True

    @property
    def is_anonymous(self) -> bool:
        """Never anonymous."""
        return False

    def get_id(self) -> str:
        """The session's user id, with the security stamp: a new stamp ends every session."""
        return f"{self.id}:{self.security_stamp}"

    @property
    def is_confirmed(self) -> bool:
        """Whether the email address was confirmed."""
        return self.email_confirmed_at is not None

    def set_password(self, password: str) -> None:
        """Store a salted scrypt hash of the password (werkzeug's default KDF) under a new
        security stamp, so sessions and signed tokens of the old password stop working."""
        self.password_hash = generate_password_hash(password, method="scrypt")
        self.security_stamp = new_security_stamp()

    def check_password(self, password: str) -> bool:
        """Whether the password matches the stored hash."""
        return check_password_hash(self.password_hash, password)

    @staticmethod
    def normalise_email(email: str) -> str:
        """Emails compare case-insensitively and without surrounding spaces."""
        return email.strip().lower()

    @validates("email")
    def _store_normalised_email(self, _key: str, email: str) -> str:
        return self.normalise_email(email)


class Job(db.Model):
    """One unit of work and the source of truth for its state."""

    __tablename__ = "jobs"
    __table_args__ = (
        sa.CheckConstraint(f"status IN ({_STATUS_VALUES})", name="status_valid"),
        sa.CheckConstraint("progress >= 0 AND progress <= 100", name="progress_range"),
        sa.Index("ix_jobs_owner_created", "owner_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(sa.String(64), index=True)
    status: Mapped[str] = mapped_column(sa.String(16), default=JobStatus.QUEUED.value, index=True)
    progress: Mapped[int] = mapped_column(default=0)
    params: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    error_code: Mapped[str | None] = mapped_column(sa.String(64))
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    attempts: Mapped[int] = mapped_column(default=0)
    worker: Mapped[str | None] = mapped_column(sa.String(255))
    model_name: Mapped[str | None] = mapped_column(sa.String(128))
    model_version: Mapped[str | None] = mapped_column(sa.String(64))
    model_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # A job that is one step of a larger job (a photo's face extraction within a sequence) points
    # at it, with its place among the parent's inputs.
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("jobs.id", ondelete="CASCADE"), index=True
    )
    parent_position: Mapped[int | None]
    subject_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("subjects.id", ondelete="SET NULL"), index=True
    )
    # The last sign of life from the worker running it (claim, progress, stage hand-over); the
    # stale-job sweep re-queues a running job that has been silent for too long.
    heartbeat_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # Set when the retention policy removed the job's artifact files.
    artifacts_purged_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    owner: Mapped[User] = relationship(back_populates="jobs")
    subject: Mapped[Subject | None] = relationship(back_populates="jobs")
    parent: Mapped[Job | None] = relationship(back_populates="children", remote_side=[id])
    children: Mapped[list[Job]] = relationship(
        back_populates="parent", cascade="all, delete-orphan", order_by="Job.parent_position"
    )
    inputs: Mapped[list[JobInput]] = relationship(
        back_populates="job", cascade="all, delete-orphan", order_by="JobInput.position"
    )
    artifacts: Mapped[list[Artifact]] = relationship(
        back_populates="job", cascade="all, delete-orphan", order_by="Artifact.name"
    )

    @property
    def status_enum(self) -> JobStatus:
        """The status as an enum member."""
        return JobStatus(self.status)


class StoredFile:
    """Columns shared by every file the system keeps on disk for a job."""

    content_type: Mapped[str] = mapped_column(sa.String(128))
    size: Mapped[int] = mapped_column(sa.BigInteger)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    storage_path: Mapped[str] = mapped_column(sa.String(512))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class JobInput(StoredFile, db.Model):
    """A file uploaded for a job, in upload order."""

    __tablename__ = "job_inputs"
    __table_args__ = (sa.UniqueConstraint("job_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"))
    position: Mapped[int]
    filename: Mapped[str] = mapped_column(sa.String(255))

    job: Mapped[Job] = relationship(back_populates="inputs")


class Artifact(StoredFile, db.Model):
    """A file a job produced; at most one per name, so re-running a job replaces it."""

    __tablename__ = "artifacts"
    __table_args__ = (sa.UniqueConstraint("job_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(128))
    # The file was removed by the retention policy at this time; the row stays as the record.
    purged_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    job: Mapped[Job] = relationship(back_populates="artifacts")


def subject_label(subject_id: int, name: str | None) -> str:
    """A subject's name, or a stand-in when there is none (also for rows read without the ORM)."""
    return name or f"Subject #{subject_id}"


class Subject(db.Model):
    """The person the scans are of (a patient, an unborn baby); deleting only hides it."""

    __tablename__ = "subjects"
    __table_args__ = (sa.Index("ix_subjects_owner_deleted", "owner_id", "deleted_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(sa.String(200))
    due_date: Mapped[date | None] = mapped_column(sa.Date)
    notes: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    owner: Mapped[User] = relationship(back_populates="subjects")
    jobs: Mapped[list[Job]] = relationship(back_populates="subject", order_by="Job.created_at")

    @property
    def label(self) -> str:
        """The name, or a stand-in when there is none."""
        return subject_label(self.id, self.name)


class ApiToken(db.Model):
    """A personal, revocable API token for scripts; only its sha256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    token_sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    # The first characters, so the owner can tell tokens apart without the secret.
    prefix: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    owner: Mapped[User] = relationship()


class UserSession(db.Model):
    """A signed-in browser. The session cookie holds a random key whose sha256 is stored here;
    signing out ends the row, so a copy of the cookie taken before is worth nothing."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key_sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class OutboundEmail(db.Model):
    """An email to send: the outbox row is written first, so a message is never lost."""

    __tablename__ = "outbound_emails"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    to_address: Mapped[str] = mapped_column(sa.String(320))
    subject: Mapped[str] = mapped_column(sa.String(255))
    body: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    last_attempt_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # A sender holds the row until then; another sender waits (no message goes out twice at once).
    claimed_until: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), index=True)


class Outcome(StrEnum):
    """What the people told us about a prediction."""

    RIGHT = "right"
    WRONG = "wrong"


_OUTCOME_VALUES = ", ".join(f"'{o.value}'" for o in Outcome)


class FollowUp(db.Model):
    """A subject's prediction awaiting its outcome: the request email, and the answer.

    One per subject (unique): however many beat ticks, workers or retries look at a subject, the
    database admits one follow-up, so the request is sent once.
    """

    __tablename__ = "followups"
    __table_args__ = (
        sa.CheckConstraint(f"outcome IS NULL OR outcome IN ({_OUTCOME_VALUES})", name="outcome"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_id: Mapped[int] = mapped_column(
        sa.ForeignKey("subjects.id", ondelete="CASCADE"), unique=True
    )
    job_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"))
    prediction: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    # The request email (None when the owner answered on the subject page before it was due).
    email_id: Mapped[int | None] = mapped_column(sa.ForeignKey("outbound_emails.id"))
    outcome: Mapped[str | None] = mapped_column(sa.String(8))
    outcome_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # "email_link" or "subject_page".
    outcome_source: Mapped[str | None] = mapped_column(sa.String(16))

    subject: Mapped[Subject] = relationship()
    job: Mapped[Job] = relationship()
    email: Mapped[OutboundEmail | None] = relationship()
