"""Response headers that keep pages safe in the browser: a Content-Security-Policy without inline
script, no framing, no MIME sniffing, no referrer to other sites, and nothing with medical data
left in a cache."""

from __future__ import annotations

from flask import Flask, request
from flask.wrappers import Response

# Scripts, styles and images only from this site, and no inline script or style: an injected
# <script> or on...= attribute does not run even if escaping were ever missed.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers without CSP level 2
    # Same-origin keeps the Referer that Flask-WTF checks on HTTPS form posts, and sends nothing
    # (a reset link's token, a job id) to other sites.
    "Referrer-Policy": "same-origin",
}
# Browsers remember to use HTTPS only for this site (production serves HTTPS only).
HSTS = "max-age=31536000; includeSubDomains"


def _add_headers(response: Response, production: bool) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if production:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    # Pages, API answers and artifacts carry medical data: never stored by a browser or proxy.
    # Only the static files (script, style) may be cached.
    if request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"
    return response


def register_security_headers(app: Flask, production: bool) -> None:
    """Add the headers to every response of the app."""
    app.after_request(lambda response: _add_headers(response, production))
