"""Fixtures shared by the API tests."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from tests.builders import bearer, make_user


@pytest.fixture
def headers(client: FlaskClient) -> dict[str, str]:
    """A signed-in user's authorization headers."""
    return bearer(client, make_user().email)
