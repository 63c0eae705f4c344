"""Pages that only say something: an unusable signed link."""

from __future__ import annotations

from flask import render_template, url_for

from core.links import LinkError


def unusable_link(
    error: LinkError, what: str, nothing: str, again_endpoint: str | None = None
) -> tuple[str, int]:
    """A 400 page: the link is expired or broken, and nothing was done (``nothing``: "changed",
    "recorded"); offers a new link when there is an endpoint that sends one."""
    reason = "has expired" if error.expired else "is not valid (it may be incomplete or used)"
    return (
        render_template(
            "message.html",
            title="Link not usable",
            message=f"This {what} link {reason}. Nothing was {nothing}.",
            action_url=url_for(again_endpoint) if again_endpoint else None,
            action_text="Send a new link",
        ),
        400,
    )
