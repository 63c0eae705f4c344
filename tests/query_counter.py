"""Count the SQL statements a block of code sends, with SQLAlchemy's cursor event."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine


@contextmanager
def statements_sent(engine: Engine | type[Engine] = Engine) -> Iterator[list[str]]:
    """The statements sent through ``engine`` (by default every engine: the app has one for
    transactions and one in autocommit) inside the block (the list fills as they run)."""
    sent: list[str] = []

    def record(*args: Any) -> None:
        # (connection, cursor, statement, parameters, context, executemany)
        sent.append(" ".join(args[2].split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def on_other_backends(engine: Engine, expression: str) -> list[Any]:
    """``expression`` evaluated for every other server process on the engine's Postgres
    database (pg_stat_activity), from a connection of its own."""
    with engine.connect() as connection:
        return list(
            connection.execute(
                text(
                    f"SELECT {expression} FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalars()
        )
