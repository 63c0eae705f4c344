"""Tokens: issued against email and password, signed, expiring."""

from __future__ import annotations

import base64
import time

from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from tests.builders import DEFAULT_PASSWORD, bearer, make_user
from webapp.auth import TOKEN_SALT


class SignerTwoHoursAgo(TimestampSigner):
    """Stamps signatures with a time two hours in the past."""

    def get_timestamp(self) -> int:
        return int(time.time()) - 7200


def basic(email: str, password: str) -> dict[str, str]:
    """HTTP Basic headers."""
    return {"Authorization": "Basic " + base64.b64encode(f"{email}:{password}".encode()).decode()}


def test_token_is_issued_for_the_right_password(client: FlaskClient) -> None:
    user = make_user("Ada@Example.org")
    response = client.post("/api/v1/tokens", headers=basic(" ada@example.ORG ", DEFAULT_PASSWORD))
    assert response.status_code == 201
    body = response.get_json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    headers = {"Authorization": f"Bearer {body['token']}"}
    assert client.get("/api/v1/jobs", headers=headers).status_code == 200
    assert user.password_hash.startswith("scrypt:")


def test_wrong_password_and_unknown_email_look_the_same(client: FlaskClient) -> None:
    user = make_user()
    wrong = client.post("/api/v1/tokens", headers=basic(user.email, "nope"))
    unknown = client.post("/api/v1/tokens", headers=basic("ghost@example.org", "nope"))
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json() == unknown.get_json()
    assert client.post("/api/v1/tokens").get_json()["error"]["code"] == "missing_credentials"


def test_tampered_and_foreign_tokens_are_refused(client: FlaskClient, app: Flask) -> None:
    user = make_user()
    token = bearer(client, user.email)["Authorization"].split()[1]
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    forged = URLSafeTimedSerializer("another-secret", salt=TOKEN_SALT).dumps({"uid": user.id})
    for bad in (tampered, forged, "garbage"):
        response = client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {bad}"})
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "invalid_token"


def test_expired_token_is_refused(client: FlaskClient, app: Flask) -> None:
    user = make_user()
    serializer = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=TOKEN_SALT)
    # Sign as if two hours ago: past the one-hour lifetime.
    old = serializer.dumps({"uid": user.id, "stamp": user.security_stamp})
    serializer_past = URLSafeTimedSerializer(
        app.config["SECRET_KEY"], salt=TOKEN_SALT, signer=SignerTwoHoursAgo
    )
    expired = serializer_past.dumps({"uid": user.id, "stamp": user.security_stamp})
    assert client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {old}"}).status_code == 200
    response = client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "token_expired"


def test_deactivated_user_token_stops_working(client: FlaskClient) -> None:
    from core.database import db

    user = make_user()
    headers = bearer(client, user.email)
    user.is_active = False
    db.session.commit()
    assert client.get("/api/v1/jobs", headers=headers).status_code == 401


def test_a_personal_token_stops_working_when_its_owner_is_deactivated_or_unconfirmed(
    client: FlaskClient,
) -> None:
    """The owner's state is checked in the token's query, on every request."""
    from core.database import db
    from webapp.personal_tokens import create_token

    user = make_user()
    _row, secret = create_token(user, "poller")
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/jobs", headers=headers).status_code == 200
    for field, refused, restored in (
        ("is_active", False, True),
        ("email_confirmed_at", None, user.email_confirmed_at),
    ):
        setattr(user, field, refused)
        db.session.commit()
        response = client.get("/api/v1/jobs", headers=headers)
        assert response.status_code == 401, field
        assert response.get_json()["error"]["code"] == "invalid_token"
        setattr(user, field, restored)
        db.session.commit()
        assert client.get("/api/v1/jobs", headers=headers).status_code == 200, field
