"""Scan job types at upload: one job per file, pixel spacing from params or DICOM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from flask.testing import FlaskClient

from core.database import db
from core.records import Job
from tests.builders import dicom_bytes, ellipse_mask_png, submit_job


def scan_png() -> bytes:
    """A small grayscale image standing in for an ultrasound frame."""
    return ellipse_mask_png(width=160, height=120, center=(80, 60), semi_axes=(50, 30))


def test_head_circumference_without_any_pixel_size_is_refused(
    client: FlaskClient, headers: dict[str, str], media_root: Path
) -> None:
    response = submit_job(client, headers, [(scan_png(), "a.png")], {}, "head_circumference")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "missing_pixel_spacing" and "a.png" in error["message"]
    assert db.session.scalar(db.select(db.func.count()).select_from(Job)) == 0
    assert not any(path.is_file() for path in media_root.rglob("*"))


def test_dicom_pixel_spacing_is_enough(client: FlaskClient, headers: dict[str, str]) -> None:
    dicom = dicom_bytes(np.zeros((120, 160), dtype=np.uint8), (0.2, 0.2))
    response = submit_job(client, headers, [(dicom, "a.dcm")], {}, "head_circumference")
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["params"] == {}


def test_non_square_dicom_pixels_are_refused(client: FlaskClient, headers: dict[str, str]) -> None:
    dicom = dicom_bytes(np.zeros((120, 160), dtype=np.uint8), (0.2, 0.3))
    response = submit_job(client, headers, [(dicom, "a.dcm")], {}, "head_circumference")
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "anisotropic_pixels"


def test_several_files_make_one_job_each(client: FlaskClient, headers: dict[str, str]) -> None:
    files = [(scan_png(), f"scan{i}.png") for i in range(3)]
    response = submit_job(
        client, headers, files, {"pixel_spacing_mm": 0.1}, job_type="head_circumference"
    )
    assert response.status_code == 202
    jobs = response.get_json()["jobs"]
    assert [job["inputs"][0]["filename"] for job in jobs] == ["scan0.png", "scan1.png", "scan2.png"]
    assert all(job["status"] == "queued" and len(job["inputs"]) == 1 for job in jobs)
    assert response.headers["Retry-After"]


def test_one_bad_file_refuses_the_whole_batch(
    client: FlaskClient, headers: dict[str, str], media_root: Path
) -> None:
    files = [(scan_png(), "good.png"), (b"not an image at all", "bad.png")]
    response = submit_job(client, headers, files, {"pixel_spacing_mm": 0.1}, "segmentation")
    assert response.status_code == 415
    assert "bad.png" in response.get_json()["error"]["message"]
    assert db.session.scalar(db.select(db.func.count()).select_from(Job)) == 0
    assert not any(path.is_file() for path in media_root.rglob("*"))


def test_the_scan_can_be_dated_and_a_bad_date_is_refused(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    dated = {"pixel_spacing_mm": 0.1, "gestational_age_days": 143, "scan_date": "2026-11-18"}
    response = submit_job(client, headers, [(scan_png(), "a.png")], dated, "head_circumference")
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["params"] == dated
    for bad in ({"scan_date": "18/11/2026"}, {"gestational_age_days": 400}):
        params = {"pixel_spacing_mm": 0.1, **bad}
        refused = submit_job(client, headers, [(scan_png(), "a.png")], params, "head_circumference")
        assert refused.status_code == 400
        assert refused.get_json()["error"]["code"] == "invalid_params", bad
