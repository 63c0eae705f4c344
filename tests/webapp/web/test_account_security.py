"""Account attacks: pre-hijack, credentials outliving a reset or sign-out, open redirects, script
injection through a subject's name, missing browser protections, lock-outs and account
enumeration."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.database import db
from core.records import ApiToken, Job, OutboundEmail, Subject, User
from scripts.mail_sink import MailSink
from tests.builders import (
    DEFAULT_PASSWORD,
    bearer,
    csrf_token,
    link_path,
    make_prediction,
    make_subject,
    make_user,
    post_form,
    sign_in,
)
from tests.conftest import build_app
from tests.webapp.web.test_accounts import NEW_PASSWORD, deliver_outbox, new_address


def queued_job(subject: Subject) -> Job:
    """A saved perimeter job of the subject, waiting in the queue."""
    job = Job(owner_id=subject.owner_id, subject_id=subject.id, type="perimeter", params={})
    db.session.add(job)
    db.session.commit()
    return job


ATTACKER_PASSWORD = "attacker knows this one"


def basic(email: str, password: str = DEFAULT_PASSWORD) -> dict[str, str]:
    """HTTP Basic headers."""
    return {"Authorization": "Basic " + base64.b64encode(f"{email}:{password}".encode()).decode()}


def second_browser(client: FlaskClient, address: str = "127.0.0.1") -> FlaskClient:
    """Another client of the same app, from the given client address."""
    other = client.application.test_client()
    other.environ_base["REMOTE_ADDR"] = address
    return other


def copy_of(client: FlaskClient) -> FlaskClient:
    """Another browser holding a copy of this one's session cookie (a stolen cookie)."""
    thief = second_browser(client, "10.9.9.9")
    thief.set_cookie("session", client.get_cookie("session").value)
    return thief


def sign_up(client: FlaskClient, email: str, password: str) -> None:
    response = post_form(
        client, "/account/signup", {"email": email, "password": password, "repeat": password}
    )
    assert response.status_code == 302


def personal_token(client: FlaskClient) -> str | None:
    """Make a personal token on the tokens page; its secret, or None if none was made."""
    page = post_form(client, "/account/tokens", {"name": "script"}).get_data(as_text=True)
    found = re.search(r'<code id="new-token">([^<]+)</code>', page)
    return found.group(1) if found else None


def reads_jobs(client: FlaskClient, headers: dict[str, str]) -> bool:
    return client.get("/api/v1/jobs", headers=headers).status_code == 200


def latest_link(app: Flask, mail_sink: MailSink, email: str) -> str:
    deliver_outbox(app)
    return link_path(mail_sink.to(email)[-1])


# --- 4. Pre-hijack; credentials that outlive a reset or a sign-out ---------------------------


def test_pre_hijacked_account_gives_the_attacker_nothing(
    app: Flask, client: FlaskClient, mail_sink: MailSink
) -> None:
    victim_email = new_address()
    attacker = client
    sign_up(attacker, victim_email, ATTACKER_PASSWORD)
    assert sign_in(attacker, victim_email, ATTACKER_PASSWORD).status_code == 302
    # Unconfirmed accounts make no tokens, signed or personal.
    refused = attacker.post("/api/v1/tokens", headers=basic(victim_email, ATTACKER_PASSWORD))
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "email_unconfirmed"
    assert personal_token(attacker) is None
    assert db.session.scalar(db.select(db.func.count(ApiToken.id))) == 0

    # The owner of the address signs up: the unconfirmed account is theirs now, with their
    # password; the attacker's session and password are worth nothing.
    victim = second_browser(client, "10.0.0.2")
    sign_up(victim, victim_email, DEFAULT_PASSWORD)
    assert attacker.get("/").status_code == 302
    assert sign_in(attacker, victim_email, ATTACKER_PASSWORD).status_code == 200
    deliver_outbox(app)
    # Two confirmations: the attacker's (it names the replaced account) and the victim's.
    attackers_link, victims_link = (link_path(m) for m in mail_sink.to(victim_email))
    assert victim.get(attackers_link).status_code == 400
    assert post_form(victim, victims_link, {"password": DEFAULT_PASSWORD}).status_code == 302
    subject = make_subject(db.session.scalar(db.select(User).filter_by(email=victim_email)))
    make_prediction(subject)
    headers = bearer(victim, victim_email)
    secret = personal_token(victim)
    assert secret is not None and reads_jobs(victim, headers)

    # The victim resets the password: every token and session from before it is dead.
    stolen_cookie = copy_of(victim)
    post_form(victim, "/account/forgot", {"email": victim_email})
    reset = post_form(
        victim,
        latest_link(app, mail_sink, victim_email),
        {"password": NEW_PASSWORD, "repeat": NEW_PASSWORD},
    )
    assert reset.status_code == 302
    outsider = second_browser(client, "10.0.0.3")
    assert not reads_jobs(outsider, headers)
    assert not reads_jobs(outsider, {"Authorization": f"Bearer {secret}"})
    assert stolen_cookie.get(f"/subjects/{subject.id}").status_code == 302
    assert victim.get("/").status_code == 302
    assert sign_in(victim, victim_email, NEW_PASSWORD).status_code == 302
    assert victim.get(f"/subjects/{subject.id}").status_code == 200


def test_confirming_the_address_ends_every_earlier_session(
    app: Flask, client: FlaskClient, mail_sink: MailSink
) -> None:
    email = new_address()
    sign_up(client, email, DEFAULT_PASSWORD)
    sign_in(client, email)
    stolen = copy_of(client)
    assert stolen.get("/").status_code == 200
    link = latest_link(app, mail_sink, email)
    confirming = second_browser(client)
    assert post_form(confirming, link, {"password": DEFAULT_PASSWORD}).status_code == 302
    assert stolen.get("/").status_code == 302
    assert client.get("/").status_code == 302
    assert confirming.get("/").status_code == 200


def test_a_sign_up_after_the_owner_is_not_confirmed_by_the_owner_clicking(
    app: Flask, client: FlaskClient, mail_sink: MailSink
) -> None:
    # The owner signs up first; an attacker signs up again with the owner's address (replacing
    # the unconfirmed account with their own password); the newest link lands in the owner's
    # inbox. Following it must not confirm an account whose password the attacker knows.
    email = new_address()
    owner = second_browser(client, "10.0.0.4")
    sign_up(owner, email, DEFAULT_PASSWORD)
    sign_up(client, email, ATTACKER_PASSWORD)
    link = latest_link(app, mail_sink, email)
    assert owner.get(link).status_code == 200  # a GET (a mail scanner) confirms nothing
    refused = post_form(owner, link, {"password": DEFAULT_PASSWORD})
    assert refused.status_code == 200
    assert "not the password this account was signed up with" in refused.get_data(as_text=True)
    assert not db.session.scalar(db.select(User).filter_by(email=email)).is_confirmed
    assert sign_in(client, email, ATTACKER_PASSWORD).status_code == 302
    refused_tokens = client.post("/api/v1/tokens", headers=basic(email, ATTACKER_PASSWORD))
    assert refused_tokens.status_code == 403


def test_a_signed_token_made_before_a_password_change_is_refused(client: FlaskClient) -> None:
    user = make_user()
    headers = bearer(client, user.email)
    user.set_password(NEW_PASSWORD)
    db.session.commit()
    refused = client.get("/api/v1/jobs", headers=headers)
    assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "invalid_token"


def test_a_cookie_copied_before_sign_out_is_signed_out_too(client: FlaskClient) -> None:
    sign_in(client, make_user().email)
    stolen = copy_of(client)
    assert stolen.get("/").status_code == 200
    assert stolen.get("/api/v1/jobs").status_code == 200
    post_form(client, "/account/signout", {}, page="/")
    assert client.get("/").status_code == 302
    page = stolen.get("/")
    assert page.status_code == 302 and page.headers["Location"].startswith("/account/signin")
    assert stolen.get("/api/v1/jobs").status_code == 401


# --- 5. Open redirect -----------------------------------------------------------------------

OFF_SITE = [
    "/%09/evil.example:8080/x",
    "/%0a/evil.example",
    "/%0d%0a/evil.example",
    "%09//evil.example",
    "//evil.example",
    "///evil.example",
    "/%5Cevil.example",
    "%5C%5Cevil.example",
    "/%2F%2Fevil.example",
    "%2F%2Fevil.example",
    "https://evil.example",
    "https:evil.example",
    "http:/evil.example",
    "javascript:alert(1)",
    "evil.example",
    "%20//evil.example",
]


def browser_view(location: str) -> str:
    """The Location as a browser reads it: tabs and newlines dropped, backslashes as slashes."""
    return re.sub(r"[\t\n\r]", "", location).replace("\\", "/").strip()


@pytest.mark.parametrize("target", OFF_SITE)
def test_sign_in_never_redirects_off_site(client: FlaskClient, target: str) -> None:
    user = make_user()
    path = f"/account/signin?next={target}"
    response = post_form(client, path, {"email": user.email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 302
    seen = urlsplit(browser_view(response.headers["Location"]))
    assert not seen.scheme and not seen.netloc, response.headers["Location"]
    assert response.headers["Location"] == "/"


def test_sign_in_returns_to_a_page_of_the_site(client: FlaskClient) -> None:
    user = make_user()
    path = "/account/signin?next=%2Fsubjects%2F7%3Ftab%3Djobs"
    response = post_form(client, path, {"email": user.email, "password": DEFAULT_PASSWORD})
    assert response.headers["Location"] == "/subjects/7?tab=jobs"


# --- 8. Stored XSS; browser protections ------------------------------------------------------

HOSTILE_NAME = "Ann'); alert(document.cookie); ('\" <script>alert(1)</script>"


class ScriptFinder(HTMLParser):
    """Collects inline scripts and event-handler attributes of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.inline_scripts: list[str] = []
        self.handlers: list[tuple[str, str]] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handlers += [(name, value or "") for name, value in attrs if name.startswith("on")]
        if tag == "script":
            if not dict(attrs).get("src"):
                self.inline_scripts.append("")
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts.append(data)


def test_a_subject_name_never_reaches_script(client: FlaskClient) -> None:
    user = make_user()
    sign_in(client, user.email)
    subject = make_subject(user, name=HOSTILE_NAME)
    make_prediction(subject)
    job = queued_job(subject)
    for path in (
        "/",
        f"/subjects/{subject.id}",
        f"/subjects/{subject.id}/edit",
        f"/jobs/{job.id}",
        "/upload",
        "/account/tokens",
    ):
        page = client.get(path)
        assert page.status_code == 200, path
        html = page.get_data(as_text=True)
        finder = ScriptFinder()
        finder.feed(html)
        assert finder.inline_scripts == [], path
        assert finder.handlers == [], path
        assert "<script>alert(1)" not in html and "('\"" not in html, path
    page = client.get(f"/subjects/{subject.id}").get_data(as_text=True)
    assert 'data-confirm="Delete Ann&#39;); alert(document.cookie); (&#39;&#34; &lt;script&gt;' in (
        page
    )


def test_pages_and_api_answers_carry_the_browser_protections(client: FlaskClient) -> None:
    user = make_user()
    sign_in(client, user.email)
    headers = bearer(client, user.email)
    job = queued_job(make_subject(user))
    for path, extra in (
        ("/account/signin", {}),
        ("/", {}),
        (f"/jobs/{job.id}", {}),
        (f"/api/v1/jobs/{job.id}", headers),
    ):
        response = client.get(path, headers=extra)
        assert response.status_code == 200, path
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert "frame-ancestors 'none'" in policy
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"
        assert response.headers["Cache-Control"] == "no-store", path
        assert "Strict-Transport-Security" not in response.headers  # plain HTTP here
    static = client.get("/static/jobs.js")
    assert static.status_code == 200 and "no-store" not in static.headers.get("Cache-Control", "")


def test_production_cookies_are_secure_and_https_is_remembered(
    tmp_path: Path, redis_url: str
) -> None:
    app = build_app(
        f"sqlite:///{tmp_path / 'prod.db'}",
        redis_url,
        tmp_path / "media",
        SCANQUEUE_ENV="production",
        SECRET_KEY="x" * 48,
        PUBLIC_URL="https://scanqueue.example.org",
    )
    response = app.test_client().get("/account/signin", base_url="https://scanqueue.example.org")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-session=")
    for flag in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
        assert flag in cookie
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    with app.app_context():
        db.engine.dispose()


# --- 11. Lock-outs and enumeration -----------------------------------------------------------


def test_five_failures_lock_the_account_from_that_address_only(client: FlaskClient) -> None:
    user = make_user()
    for _ in range(3):
        assert sign_in(client, user.email, "wrong password").status_code == 200
    for _ in range(2):
        assert client.post("/api/v1/tokens", headers=basic(user.email, "nope")).status_code == 401
    # Five failures, through either door: both are shut for this account from this address.
    assert sign_in(client, user.email).status_code == 429
    locked = client.post("/api/v1/tokens", headers=basic(user.email))
    assert locked.status_code == 429 and locked.get_json()["error"]["code"] == "too_many_requests"
    # The owner, elsewhere, is not locked out.
    owner = second_browser(client, "10.0.0.2")
    assert sign_in(owner, user.email).status_code == 302
    assert owner.post("/api/v1/tokens", headers=basic(user.email)).status_code == 201


def test_successful_sign_ins_do_not_count(client: FlaskClient) -> None:
    user = make_user()
    for _ in range(6):
        assert sign_in(client, user.email).status_code == 302
        assert client.post("/api/v1/tokens", headers=basic(user.email)).status_code == 201
        post_form(client, "/account/signout", {}, page="/")
    # A right password clears the failures before it.
    for _ in range(2):
        for _ in range(4):
            assert sign_in(client, user.email, "wrong password").status_code == 200
        assert sign_in(client, user.email).status_code == 302
        post_form(client, "/account/signout", {}, page="/")


def web_sign_in_naming(client: FlaskClient, email: str, password: str, decoy: str) -> int:
    """A web sign-in for ``email`` that also carries HTTP Basic credentials naming ``decoy``."""
    token = csrf_token(client)
    response = client.post(
        "/account/signin",
        data={"email": email, "password": password, "csrf_token": token},
        headers=basic(decoy, "whatever"),
    )
    return response.status_code


def test_a_decoy_basic_header_neither_spreads_nor_clears_web_failures(
    client: FlaskClient,
) -> None:
    victim, attacker = make_user(), make_user()
    # Each wrong guess names another account in an Authorization header the form ignores:
    # the count is still the victim's.
    for number in range(5):
        decoy = f"decoy-{number}@example.org"
        assert web_sign_in_naming(client, victim.email, "wrong", decoy) == 200
    assert web_sign_in_naming(client, victim.email, DEFAULT_PASSWORD, "x@example.org") == 429
    # Signing in to one's own account while naming the victim does not clear the victim's count.
    other = second_browser(client, "10.0.0.5")
    for _ in range(4):
        assert web_sign_in_naming(other, victim.email, "wrong", attacker.email) == 200
    assert web_sign_in_naming(other, attacker.email, DEFAULT_PASSWORD, victim.email) == 302
    post_form(other, "/account/signout", {}, page="/")
    assert web_sign_in_naming(other, victim.email, "wrong", attacker.email) == 200
    assert web_sign_in_naming(other, victim.email, DEFAULT_PASSWORD, attacker.email) == 429


def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count password hashes (werkzeug's scrypt is hashlib.scrypt)."""
    calls: list[int] = []
    real = hashlib.scrypt

    def counting(*args: object, **kwargs: object) -> bytes:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(hashlib, "scrypt", counting)
    return calls


_CSRF_VALUE = re.compile(
    r'(?<=name="csrf-token" content=")[^"]+|(?<=name="csrf_token" type="hidden" value=")[^"]+'
)


def answer_and_work(
    client: FlaskClient, path: str, data: dict[str, str], email: str, calls: list[int]
) -> tuple[str, str, int, int]:
    """The page a request leads to (the address blanked), and the hashes and emails it cost."""
    emails_before = db.session.scalar(db.select(db.func.count(OutboundEmail.id)))
    calls.clear()
    response = post_form(client, path, data)
    hashes = len(calls)
    emails = db.session.scalar(db.select(db.func.count(OutboundEmail.id))) - emails_before
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    page = _CSRF_VALUE.sub("CSRF", page.replace(email, "EMAIL"))  # the token differs per browser
    return response.headers["Location"], page, hashes, emails


def test_sign_up_reset_and_resend_requests_answer_alike_and_do_the_same_work(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    confirmed = make_user(new_address()).email
    unconfirmed = make_user(new_address(), confirmed=False).email
    calls = scrypt_calls(monkeypatch)
    signups = []
    for email in (new_address(), unconfirmed, confirmed):
        data = {"email": email, "password": NEW_PASSWORD, "repeat": NEW_PASSWORD}
        browser = app.test_client()
        signups.append(answer_and_work(browser, "/account/signup", data, email, calls))
    assert signups[0] == signups[1] == signups[2]
    assert signups[0][2:] == (1, 1)  # one password hash, one email each
    resets = []
    for email in (new_address(), confirmed):
        browser = app.test_client()
        resets.append(answer_and_work(browser, "/account/forgot", {"email": email}, email, calls))
    assert resets[0] == resets[1]
    assert resets[0][3] == 1
    resends = []
    for email in (new_address(), confirmed, unconfirmed):
        browser = app.test_client()
        resends.append(answer_and_work(browser, "/account/confirm", {"email": email}, email, calls))
    assert resends[0] == resends[1] == resends[2]
    assert resends[0][3] == 1
