"""Request latency by Flask URL rule, method and status: the HTTP duration histogram.

Timed from Flask's ``request_started`` to ``request_finished`` signals rather than from
``before_request``/``after_request`` hooks: the signals fire around every request, including one
that an earlier ``before_request`` hook answers itself (a rate limit's 429) or one that ends in
an error handler. The route label is the rule's template (``/api/v1/jobs/<uuid:job_id>``), never
the path, so no id reaches a label; a request no rule matched is ``unmatched``.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, Response, request, request_finished, request_started

from core.metrics import HTTP_REQUEST_DURATION

UNMATCHED = "unmatched"
# Any other method a client invents is counted as "other": labels must stay few.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# In the WSGI environ, which belongs to this request alone.
_STARTED = "scanqueue.request_started"


def _started(_sender: Flask, **_extra: Any) -> None:
    request.environ[_STARTED] = time.perf_counter()


def _finished(_sender: Flask, response: Response, **_extra: Any) -> None:
    started = request.environ.get(_STARTED)
    if started is None:
        return
    route = request.url_rule.rule if request.url_rule is not None else UNMATCHED
    method = request.method if request.method in METHODS else "other"
    HTTP_REQUEST_DURATION.labels(route, method, str(response.status_code)).observe(
        time.perf_counter() - started
    )


def register_request_metrics(app: Flask) -> None:
    """Time every request of this app."""
    request_started.connect(_started, app, weak=False)
    request_finished.connect(_finished, app, weak=False)
