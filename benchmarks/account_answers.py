"""How long sign-up, password-reset and confirmation requests take, per kind of address: the
answers must not tell an address with an account from one without.

    python -m benchmarks.account_answers [--rounds 30]

In process (Flask's test client) on a temporary SQLite database and the Redis at REDIS_URL
(database 14, where the emails' messages are published). The kinds are interleaved round by
round, so a machine that slows down slows every kind alike.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from flask.testing import FlaskClient
from flask_migrate import upgrade

from core.config import load_settings
from core.database import db
from core.records import User, utcnow
from webapp import create_app

BENCH_REDIS_DB = 14
PASSWORD = "a long enough password"


def _address() -> str:
    return f"nobody-{uuid.uuid4().hex[:10]}@example.org"


def _user(email: str, confirmed: bool) -> str:
    user = User(email=email, email_confirmed_at=utcnow() if confirmed else None)
    user.set_password(PASSWORD)
    db.session.add(user)
    db.session.commit()
    return email


def _timed(client: FlaskClient, path: str, data: dict[str, str]) -> float:
    start = time.perf_counter()
    response = client.post(path, data=data)
    elapsed = time.perf_counter() - start
    assert response.status_code == 302, (path, response.status_code)
    return elapsed * 1000


def main() -> None:
    """Print the median and p95 per request and kind of address."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    rounds = parser.parse_args().rounds
    parts = urlsplit(load_settings().REDIS_URL)
    redis_url = urlunsplit((parts.scheme, parts.netloc, f"/{BENCH_REDIS_DB}", "", ""))
    base = Path(tempfile.mkdtemp(prefix="scanqueue-accounts-"))
    app = create_app(
        {
            "SCANQUEUE_ENV": "testing",
            "DATABASE_URL": f"sqlite:///{base / 'bench.db'}",
            "REDIS_URL": redis_url,
            "MEDIA_ROOT": base / "media",
            "EMAIL_REQUEST_LIMIT_PER_ADDRESS": "1000000 per hour",
        }
    )
    app.config["WTF_CSRF_ENABLED"] = False  # the forms' CSRF check is not what is measured
    with app.app_context():
        upgrade()
        confirmed = _user("confirmed@example.org", confirmed=True)
        unconfirmed = _user("unconfirmed@example.org", confirmed=False)
        client = app.test_client()
        signup = {"password": PASSWORD, "repeat": PASSWORD}
        kinds: dict[str, Callable[[], float]] = {
            "sign-up, new address": lambda: _timed(
                client, "/account/signup", {**signup, "email": _address()}
            ),
            "sign-up, unconfirmed account": lambda: _timed(
                client, "/account/signup", {**signup, "email": unconfirmed}
            ),
            "sign-up, confirmed account": lambda: _timed(
                client, "/account/signup", {**signup, "email": confirmed}
            ),
            "reset, no account": lambda: _timed(client, "/account/forgot", {"email": _address()}),
            "reset, account": lambda: _timed(client, "/account/forgot", {"email": confirmed}),
            "resend confirmation, no account": lambda: _timed(
                client, "/account/confirm", {"email": _address()}
            ),
            "resend confirmation, confirmed": lambda: _timed(
                client, "/account/confirm", {"email": confirmed}
            ),
            "resend confirmation, unconfirmed": lambda: _timed(
                client, "/account/confirm", {"email": unconfirmed}
            ),
        }
        samples: dict[str, list[float]] = {name: [] for name in kinds}
        for _ in range(rounds):
            for name, run in kinds.items():
                samples[name].append(run())
        db.engine.dispose()
    print(f"| request | median ms | p95 ms |  ({rounds} rounds)")
    print("|---|---:|---:|")
    for name, values in samples.items():
        p95 = statistics.quantiles(values, n=20)[-1]
        print(f"| {name} | {statistics.median(values):.1f} | {p95:.1f} |")


if __name__ == "__main__":
    main()
