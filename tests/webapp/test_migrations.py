"""Migrations build exactly the schema the records describe, on SQLite and on Postgres."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask

from core.database import db


def test_migrated_schema_matches_the_records(app: Flask) -> None:
    # The app fixture ran `flask db upgrade` on this backend; nothing may be left to migrate.
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, db.metadata)
    assert differences == []
