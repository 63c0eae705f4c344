"""The upload form and the job page are made from the job-type declarations."""

from __future__ import annotations

import re
import uuid
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from core.database import db
from core.jobtypes import JOB_TYPES
from core.records import Job, JobStatus
from tests.builders import make_user, sign_in


class _Options(HTMLParser):
    """The job-type <option>s of the upload form and the fields tied to a param."""

    def __init__(self) -> None:
        super().__init__()
        self.options: dict[str, dict[str, str]] = {}
        self.fields: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "option" and "data-params" in found:
            self.options[found["value"]] = found
        if "data-param" in found:
            self.fields.add(found["data-param"])


def upload_form(client: FlaskClient) -> _Options:
    parser = _Options()
    parser.feed(client.get("/upload").get_data(as_text=True))
    return parser


def test_the_upload_form_offers_every_type_with_its_declared_params(client: FlaskClient) -> None:
    sign_in(client, make_user().email)
    form = upload_form(client)
    assert set(form.options) == set(JOB_TYPES)
    for name, job_type in JOB_TYPES.items():
        assert form.options[name]["data-params"].split() == sorted(job_type.param_names)
        assert form.options[name]["data-max-files"] == str(job_type.max_files)
        option = form.options[name]
        shown = (option["data-summary-key"], option["data-summary-unit"])
        assert shown == (job_type.summary or ("", ""))
    # The pixel-spacing field is shown for exactly the types that take it, and marked required
    # for the ones that need it (the form's own list once disagreed with the declarations).
    takes_spacing = {n for n, o in form.options.items() if "pixel_spacing_mm" in o["data-params"]}
    assert takes_spacing == {"perimeter", "segmentation", "head_circumference"}
    needs_spacing = {n for n, o in form.options.items() if "pixel_spacing_mm" in o["data-required"]}
    assert needs_spacing == {"perimeter", "head_circumference"}
    assert JOB_TYPES["head_circumference"].needs_pixel_spacing
    # Every field the form can fill belongs to a param some type takes.
    all_params = set().union(*(job_type.param_names for job_type in JOB_TYPES.values()))
    assert form.fields <= all_params
    assert {
        "pixel_spacing_mm",
        "taken_at",
        "model",
        "scan_date",
        "gestational_age_days",
    } <= form.fields
    assert form.options["classification"]["data-default-model"] == "hc18-trimester"


def test_the_upload_script_reads_the_declared_fields_not_a_list_of_types(app: Flask) -> None:
    text = (Path(app.root_path) / "static" / "upload.js").read_text(encoding="utf-8")
    assert "[data-param]" in text
    assert not [name for name in JOB_TYPES if re.search(f"[\"'`]{name}[\"'`]", text)]


# A small result of each type, in its declared schema's shape, and a text its partial shows.
RESULTS: dict[str, tuple[dict[str, Any], str]] = {
    "perimeter": (
        {"circumference_mm": 171.234, "semi_axes_a_mm": 30.0, "quality_flags": []},
        "Circumference: <strong>171.2 mm</strong>",
    ),
    "head_circumference": (
        {"head_circumference_mm": 180.06, "angle_rad": 0.5, "quality_flags": ["poor_fit"]},
        "Head circumference: <strong>180.1 mm</strong>",
    ),
    "segmentation": (
        {"classes": {"head": {"pixels": 12, "fraction": 0.25, "area_mm2": None}}},
        "<td>head</td><td>12</td><td>25.0 %</td>",
    ),
    "face_extraction": (
        {"faces_total": 0, "photos": [{"position": 0, "face_found": False, "faces": []}]},
        "0 face(s) in 1 photo(s)",
    ),
    "sequence_inference": (
        {
            "outcome": "undetermined",
            "p_improving": 0.5,
            "flags": ["insufficient_frames"],
            "frames": [{"position": 0, "taken_at": None, "used": False, "reason": "no_face"}],
        },
        "Outcome: <strong>undetermined</strong>",
    ),
    "classification": (
        {
            "prediction": "uncertain",
            "most_probable": "second",
            "confidence": 0.5,
            "uncertain_below": 0.6,
            "probabilities": {"first": 0.5, "second": 0.5},
            "images": [],
        },
        "(most probable: second)",
    ),
}


def test_every_type_has_a_result_partial(app: Flask) -> None:
    for job_type in JOB_TYPES.values():
        app.jinja_env.get_template(f"jobs/_result_{job_type.result_partial}.html")
    assert set(RESULTS) == set(JOB_TYPES)


def test_the_job_page_shows_each_type_with_its_partial(client: FlaskClient) -> None:
    user = make_user()
    sign_in(client, user.email)
    for name, (result, shown) in RESULTS.items():
        job = Job(
            id=uuid.uuid4(),
            owner_id=user.id,
            type=name,
            params={},
            status=JobStatus.SUCCEEDED.value,
            progress=100,
            result=result,
        )
        db.session.add(job)
        db.session.commit()
        page = client.get(f"/jobs/{job.id}").get_data(as_text=True)
        assert shown in page, name
        assert "<pre>" not in page  # not the JSON fallback


def test_fan_out_steps_are_listed_by_their_own_type(client: FlaskClient) -> None:
    user = make_user()
    sign_in(client, user.email)
    parent = Job(id=uuid.uuid4(), owner_id=user.id, type="sequence_inference", params={})
    parent.children.append(
        Job(
            id=uuid.uuid4(),
            owner_id=user.id,
            type="face_extraction",
            params={},
            parent_position=1,
        )
    )
    db.session.add(parent)
    db.session.commit()
    page = client.get(f"/jobs/{parent.id}").get_data(as_text=True)
    assert re.search(r">face extraction, file 2</a>: queued", page)
    child_page = client.get(f"/jobs/{parent.children[0].id}").get_data(as_text=True)
    assert "Step 2 of" in child_page and "a sequence inference job" in child_page
