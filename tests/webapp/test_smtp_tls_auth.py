"""SMTP_STARTTLS and SMTP_USERNAME/SMTP_PASSWORD against a real SMTP server (aiosmtpd) that
requires both: the message goes out encrypted and authenticated, or not at all."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from core.config import Settings, load_settings
from core.mailer import deliver
from core.records import OutboundEmail
from tests.conftest import REPO_ROOT, free_port

# A self-signed certificate for localhost and 127.0.0.1, made for these tests only (valid to
# 2126): openssl req -x509 -newkey rsa:2048 -nodes -days 36500 -subj /CN=localhost
#   -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout smtp-test.key -out smtp-test.crt
CERTIFICATE = REPO_ROOT / "tests" / "data" / "tls" / "smtp-test.crt"
KEY = REPO_ROOT / "tests" / "data" / "tls" / "smtp-test.key"
USER, PASSWORD = "scanqueue", "mail password"


@dataclass
class Received:
    """What the server accepted: (login, encrypted, recipients) per message."""

    messages: list[tuple[str, bool, list[str]]] = field(default_factory=list)

    async def handle_DATA(self, _server: Any, session: Any, envelope: Any) -> str:
        login = session.auth_data.login.decode() if session.authenticated else ""
        self.messages.append((login, session.ssl is not None, list(envelope.rcpt_tos)))
        return "250 OK"


def authenticate(_server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any):
    """Accept only USER with PASSWORD."""
    if isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    ):
        return AuthResult(success=True, auth_data=data)
    return AuthResult(success=False, handled=False)


@contextmanager
def smtp_server(tls: bool = True) -> Iterator[tuple[int, Received]]:
    """An SMTP server that requires STARTTLS (if ``tls``) and a login for every message."""
    received, port = Received(), free_port()
    options: dict[str, Any] = {"authenticator": authenticate, "auth_required": True}
    if tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(CERTIFICATE, KEY)
        options |= {"tls_context": context, "require_starttls": True, "auth_require_tls": True}
    else:
        options["auth_require_tls"] = False
    controller = Controller(received, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()


def send(port: int, **smtp: object) -> None:
    """Deliver one message with the mailer, on SMTP settings made of ``smtp``."""
    settings: Settings = load_settings().model_copy(
        update={"SMTP_HOST": "127.0.0.1", "SMTP_PORT": port, "SMTP_TIMEOUT_SECONDS": 5, **smtp}
    )
    row = OutboundEmail(to_address="ann@example.org", subject="Hello", body="Hi", kind="test")
    deliver(row, settings)


LOGIN = {"SMTP_STARTTLS": True, "SMTP_USERNAME": USER, "SMTP_PASSWORD": PASSWORD}


@pytest.fixture
def trust_the_test_certificate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the test certificate the one trusted authority, as an operator's CA bundle would be."""
    monkeypatch.setenv("SSL_CERT_FILE", str(CERTIFICATE))


@pytest.mark.usefixtures("trust_the_test_certificate")
def test_starttls_then_login_delivers_encrypted_and_authenticated() -> None:
    with smtp_server() as (port, received):
        send(port, **LOGIN)
    assert received.messages == [(USER, True, ["ann@example.org"])]


@pytest.mark.usefixtures("trust_the_test_certificate")
@pytest.mark.parametrize(
    ("smtp", "error"),
    [
        ({**LOGIN, "SMTP_PASSWORD": "wrong"}, smtplib.SMTPAuthenticationError),
        ({**LOGIN, "SMTP_USERNAME": ""}, smtplib.SMTPSenderRefused),  # no login: 530
        ({**LOGIN, "SMTP_STARTTLS": False}, smtplib.SMTPNotSupportedError),  # no AUTH in clear
    ],
    ids=["wrong password", "no login", "no starttls"],
)
def test_a_server_that_is_not_satisfied_gets_no_message(
    smtp: dict[str, object], error: type[Exception]
) -> None:
    with smtp_server() as (port, received), pytest.raises(error):
        send(port, **smtp)
    assert received.messages == []


def test_starttls_refuses_a_server_without_tls_rather_than_log_in_in_clear() -> None:
    with smtp_server(tls=False) as (port, received), pytest.raises(smtplib.SMTPNotSupportedError):
        send(port, **LOGIN)
    assert received.messages == []


def test_starttls_refuses_a_certificate_nobody_vouches_for() -> None:
    # Without trusting the test certificate, a server showing it could be anyone: no password
    # and no message may go to it.
    with smtp_server() as (port, received), pytest.raises(ssl.SSLCertVerificationError):
        send(port, **LOGIN)
    assert received.messages == []
