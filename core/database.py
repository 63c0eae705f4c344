"""The database: Flask-SQLAlchemy's ``db`` and Flask-Migrate, created unbound; every process's
app (``core.app.create_core_app``) attaches them."""

import select
import sqlite3

import psycopg2.extensions
from flask import g
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DisconnectionError

# Named constraints keep Alembic migrations identical on SQLite and Postgres.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION))
migrate = Migrate()

# A second engine on the same database whose connections are in autocommit
# (core.app: SQLALCHEMY_BINDS). The status poll's statements stand alone; on it they cost no
# BEGIN before them and no ROLLBACK when the connection goes back to the pool, which were two of
# a poll's five round trips, and the poll never touches the ORM session.
AUTOCOMMIT_BIND = "autocommit"
_AUTOCOMMIT_CONNECTION = "_scanqueue_autocommit_connection"


def autocommit_connection() -> Connection:
    """This app context's connection on which every statement commits by itself.

    For reads, and for writes that are one statement; anything that must change several rows
    together belongs on ``db.session``. It is another connection than the session's: it does not
    see what the session has not committed, and on SQLite it waits for the session's write lock.
    Closed when the request (or app context) ends.
    """
    connection = g.get(_AUTOCOMMIT_CONNECTION)
    if connection is None:
        connection = db.engines[AUTOCOMMIT_BIND].connect()
        setattr(g, _AUTOCOMMIT_CONNECTION, connection)
    return connection


def close_autocommit_connection(_error: BaseException | None = None) -> None:
    """Return the autocommit connection to its pool (a request and app-context teardown)."""
    connection = g.pop(_AUTOCOMMIT_CONNECTION, None)
    if connection is not None:
        connection.close()


@event.listens_for(Engine, "connect")
def _configure_sqlite(dbapi_connection: object, _record: object) -> None:
    """SQLite: enforce foreign keys and let the web and a worker share the file (WAL, busy wait)."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()


def uses_psycopg2(database_url: str) -> bool:
    """Whether the URL's driver is psycopg2 (SQLAlchemy's default for postgresql://)."""
    return make_url(database_url).drivername in {"postgresql", "postgresql+psycopg2"}


def closed_by_server(dbapi_connection: psycopg2.extensions.connection) -> bool:
    """Whether an idle pooled Postgres connection was closed by its server, without a round trip.

    An idle connection that is not listening for notifications is sent nothing, except when the
    server ends it (a restart, ``pg_terminate_backend``): then the socket holds the server's
    farewell and its end of file, or an error. So a socket with anything to read is dead.
    """
    if dbapi_connection.closed:
        return True
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


def _drop_if_closed_by_server(dbapi_connection: object, _record: object, _proxy: object) -> None:
    if isinstance(dbapi_connection, psycopg2.extensions.connection) and closed_by_server(
        dbapi_connection
    ):
        raise DisconnectionError("the server closed this pooled connection")


def drop_connections_closed_by_server(engine: Engine) -> None:
    """Replace, at checkout, the engine's pooled connections that their server has closed.

    SQLAlchemy's pre-ping without its ``SELECT 1`` round trip (a fifth of a status poll's time):
    raising DisconnectionError makes the pool discard the connection and check out a fresh one.
    A connection that dies between the check and its statement still fails that statement.
    """
    event.listen(engine, "checkout", _drop_if_closed_by_server)
