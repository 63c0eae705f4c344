"""Warm the app once in gunicorn's arbiter, before it forks its processes.

Every process forked from a warm arbiter starts with the status poll's statements compiled, the
URL map built and the imported objects frozen out of the garbage collector, instead of paying for
them in its first requests (a replaced process's first polls took 75 to 180 ms) and in full
collections that walk every object the app imported (the poll's slowest answers under load).
"""

from __future__ import annotations

import gc
import logging
import uuid

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from core.database import db
from webapp.api.job_reads import read_files, read_owned_job
from webapp.personal_tokens import PREFIX, user_for_token

log = logging.getLogger(__name__)


def warm_up(app: Flask) -> None:
    """Run the poll's statements once (for no token and no job), close every connection they
    opened, and freeze what exists now out of the garbage collector's reach."""
    try:
        # A request context binds and compiles the URL map; the statements fill the engine's
        # compiled-statement cache, which the forked processes inherit.
        with app.test_request_context(f"/api/v1/jobs/{uuid.uuid4()}"):
            user_for_token(PREFIX + "warm-up")
            read_owned_job(uuid.uuid4(), 0)
            read_files(uuid.uuid4())
    except SQLAlchemyError as exc:  # the database may come up after the web; start anyway
        log.warning("warm-up without the database: %s", exc)
    except Exception:  # the warm-up is an optimisation: it must never stop the web starting
        log.exception("warm-up failed; the processes will warm up on their first requests")
    finally:
        with app.app_context():
            # No connection may be shared across the fork.
            for engine in db.engines.values():
                engine.dispose()
    # Objects that live as long as the process (modules, the app) are left out of every
    # collection from now on; Python's documentation recommends this right before fork(). The
    # garbage of the build goes first, or it would be frozen with them.
    gc.collect()
    gc.freeze()
