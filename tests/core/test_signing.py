"""The one signed-token helper: a token only works for the purpose it was signed for."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import permutations

import pytest
from flask import Flask
from itsdangerous import URLSafeTimedSerializer

from core.links import LinkError
from core.signing import Purpose, sign, unsign


@pytest.fixture
def app_context() -> Iterator[None]:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "test-secret"
    with app.app_context():
        yield


def test_round_trip_for_every_purpose(app_context: None) -> None:
    for purpose in Purpose:
        assert unsign(purpose, sign(purpose, {"uid": 7}), max_age=60) == {"uid": 7}


def test_a_token_works_for_its_own_purpose_only(app_context: None) -> None:
    assert len({purpose.salt for purpose in Purpose}) == len(Purpose)
    for issued_for, presented_as in permutations(Purpose, 2):
        with pytest.raises(LinkError) as caught:
            unsign(presented_as, sign(issued_for, {"uid": 7}), max_age=60)
        assert caught.value.expired is False


def test_old_tokens_are_expired_and_foreign_payloads_invalid(app_context: None) -> None:
    with pytest.raises(LinkError) as caught:
        unsign(Purpose.API_TOKEN, sign(Purpose.API_TOKEN, {"uid": 7}), max_age=-1)
    assert caught.value.expired is True
    # Correctly signed but not an object: callers read fields from a dict, so refuse it here.
    listed = URLSafeTimedSerializer("test-secret", salt=Purpose.API_TOKEN.salt).dumps([7])
    with pytest.raises(LinkError) as caught:
        unsign(Purpose.API_TOKEN, listed, max_age=60)
    assert caught.value.expired is False
