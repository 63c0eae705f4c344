"""Model cards and metrics for the Models page: markdown rendered safely, metrics as rows.

The cards come from whoever imported a model, so they are untrusted text: raw HTML is escaped,
images are not rendered, and links with a script-capable scheme (javascript:, vbscript:, data:,
file:) are refused by markdown-it's link check. No script reaches the page (the CSP forbids
inline script anyway).
"""

from __future__ import annotations

import json
from typing import Any

from markdown_it import MarkdownIt
from markupsafe import Markup

_CARDS = MarkdownIt("commonmark", {"html": False}).enable("table").disable("image")


def render_card(text: str) -> Markup:
    """A model card's markdown as safe HTML."""
    # Safe to mark: markdown-it escapes every character of raw HTML (html is off).
    return Markup(_CARDS.render(text))


def metric_rows(metrics: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested metrics as (dotted name, value) rows; lists are shown as JSON."""
    rows: list[tuple[str, str]] = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(metric_rows(value, f"{name}."))
        else:
            rows.append((name, value if isinstance(value, str) else json.dumps(value)))
    return rows
