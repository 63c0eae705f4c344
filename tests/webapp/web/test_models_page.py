"""The Models page shows every model with its versions, metrics and card (rendered without any
HTML or script from the card), and the upload form offers the models of each type's task."""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.settings_access import current_settings
from tests.builders import make_user, sign_in
from tests.model_builders import write_manifest_only

HOSTILE_CARD = """# Tissue U-Net

<script>alert("card")</script> **bold** and [a link](javascript:alert(1)) and
<img src=x onerror=alert(2)> ![tracker](https://example.org/t.png)

| class | recall |
|---|---|
| fat | 0.9 |
"""


@pytest.fixture
def registry(app: Flask, tmp_path: Path) -> Iterator[Path]:
    """A segmenter with a hostile card, in two versions, and a classifier."""
    settings = current_settings()
    original = settings.MODEL_DIR
    for version in ("1.0.0", "1.1.0"):
        write_manifest_only(
            tmp_path, "tissue", version, "segmentation", ("rest", "muscle", "fat"), HOSTILE_CARD
        )
    write_manifest_only(tmp_path, "cxr", "1.0.0", "classification", ("a", "b"), None)
    settings.MODEL_DIR = tmp_path
    yield tmp_path
    settings.MODEL_DIR = original


def test_the_models_page_renders_cards_without_their_html(
    client: FlaskClient, registry: Path
) -> None:
    assert client.get("/models").status_code == 302  # signed-in users only
    sign_in(client, make_user().email)
    page = client.get("/models").get_data(as_text=True)
    assert "<h1>Tissue U-Net</h1>" in page and "<strong>bold</strong>" in page
    assert "<th>recall</th>" in page and "<td>0.9</td>" in page  # the card's table
    assert "<th>recall.a</th>" in page  # nested metrics, flattened
    assert "&lt;script&gt;alert(&quot;card&quot;)&lt;/script&gt;" in page
    assert "<script>alert" not in page and "<img" not in page and 'href="javascript' not in page
    assert page.count('id="model-tissue"') == 1 and page.count("Version 1.") == 3


class _ModelChoices(HTMLParser):
    """Each model list of the upload form (by task) and its option values."""

    def __init__(self) -> None:
        super().__init__()
        self.lists: dict[str, list[str]] = {}
        self.type_tasks: dict[str, str] = {}
        self._task: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "label" and "data-model-task" in found:
            self._task = found["data-model-task"]
            self.lists[self._task] = []
        elif tag == "option" and self._task is not None and "data-params" not in found:
            self.lists[self._task].append(found["value"])
        elif tag == "option" and "data-params" in found:
            self.type_tasks[found["value"]] = found["data-model-task"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._task = None


def test_the_upload_form_offers_the_models_of_each_types_task(
    client: FlaskClient, registry: Path
) -> None:
    sign_in(client, make_user().email)
    parser = _ModelChoices()
    parser.feed(client.get("/upload").get_data(as_text=True))
    assert parser.lists == {
        "classification": ["", "cxr"],
        "segmentation": ["", "tissue", "tissue@1.0.0"],
    }
    assert parser.type_tasks == {
        "classification": "classification",
        "face_extraction": "",
        "head_circumference": "segmentation",
        "perimeter": "",
        "segmentation": "segmentation",
        "sequence_inference": "sequence",
    }
