"""The job types the API accepts: which files, which parameters, which Celery task runs them."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipelines.faces import CROP_SIZE_RANGE
from pipelines.faces import DEFAULTS as FACE_DEFAULTS
from pipelines.scans import PIXEL_SPACING_RANGE_MM

ParamsValidator = Callable[[Mapping[str, Any]], dict[str, Any]]


class JobRequestError(ValueError):
    """A job request this table refuses, with a stable code and a readable message; the web
    answers it as a 400."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid_params(message: str) -> JobRequestError:
    """The error for parameters that are missing, unknown or out of range."""
    return JobRequestError("invalid_params", message)


def reject_unknown(params: Mapping[str, Any], allowed: set[str]) -> None:
    """Refuse parameters the job type does not know, so typos do not pass silently."""
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise invalid_params(
            f"Unknown parameter(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}."
        )


def _number_in(params: Mapping[str, Any], name: str, low: float, high: float) -> float:
    value = params[name]
    # bool is an int in Python; NaN fails every comparison, so the range check refuses it too.
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise invalid_params(f"'{name}' must be a number from {low:g} to {high:g}, got {value!r}.")
    return float(value)


def pixel_spacing_mm(params: Mapping[str, Any]) -> float:
    """The required pixel size in mm: finite and within PIXEL_SPACING_RANGE_MM."""
    if "pixel_spacing_mm" not in params:
        raise invalid_params("'pixel_spacing_mm' is required.")
    return _number_in(params, "pixel_spacing_mm", *PIXEL_SPACING_RANGE_MM)


def _perimeter_params(params: Mapping[str, Any]) -> dict[str, Any]:
    reject_unknown(params, {"pixel_spacing_mm"})
    return {"pixel_spacing_mm": pixel_spacing_mm(params)}


def _segmentation_params(params: Mapping[str, Any]) -> dict[str, Any]:
    reject_unknown(params, {"pixel_spacing_mm"})
    if "pixel_spacing_mm" not in params:
        return {}
    return {"pixel_spacing_mm": pixel_spacing_mm(params)}


def _integer_in(params: Mapping[str, Any], name: str, low: int, high: int) -> int:
    value = params[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid_params(f"'{name}' must be an integer from {low} to {high}, got {value!r}.")
    return value


def _face_params(params: Mapping[str, Any], allowed: set[str]) -> dict[str, Any]:
    """Face-detection parameters, defaults filled in so the job records what it used."""
    resolved = {name: FACE_DEFAULTS[name] for name in allowed}
    if "min_confidence" in params:
        resolved["min_confidence"] = _number_in(params, "min_confidence", 0.0, 1.0)
    if "min_face_size" in params:
        resolved["min_face_size"] = _integer_in(params, "min_face_size", 1, 10_000)
    if "crop_size" in params and "crop_size" in allowed:
        resolved["crop_size"] = _integer_in(params, "crop_size", *CROP_SIZE_RANGE)
    if "largest_only" in params and "largest_only" in allowed:
        if not isinstance(params["largest_only"], bool):
            raise invalid_params(
                f"'largest_only' must be true or false, got {params['largest_only']!r}."
            )
        resolved["largest_only"] = params["largest_only"]
    return resolved


FACE_EXTRACTION_PARAMS = {"min_confidence", "min_face_size", "crop_size", "largest_only"}
SEQUENCE_FACE_PARAMS = {"min_confidence", "min_face_size"}


def _face_extraction_params(params: Mapping[str, Any]) -> dict[str, Any]:
    reject_unknown(params, FACE_EXTRACTION_PARAMS)
    return _face_params(params, FACE_EXTRACTION_PARAMS)


_MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def _classification_params(params: Mapping[str, Any]) -> dict[str, Any]:
    reject_unknown(params, {"model", "uncertain_below"})
    resolved: dict[str, Any] = {}
    if "model" in params:
        name = params["model"]
        if not isinstance(name, str) or not _MODEL_NAME.match(name):
            raise invalid_params(f"'model' must be a registry model name, got {name!r}.")
        resolved["model"] = name
    if "uncertain_below" in params:
        resolved["uncertain_below"] = _number_in(params, "uncertain_below", 0.0, 1.0)
    return resolved


def parse_taken_at(value: object) -> datetime:
    """An ISO 8601 date or date-time; one without a zone is taken as UTC."""
    if not isinstance(value, str):
        raise invalid_params(f"'taken_at' entries must be ISO 8601 strings, got {value!r}.")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise invalid_params(f"'taken_at' entry {value!r} is not an ISO 8601 date.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _sequence_params(params: Mapping[str, Any]) -> dict[str, Any]:
    reject_unknown(params, SEQUENCE_FACE_PARAMS | {"taken_at"})
    resolved = _face_params(params, SEQUENCE_FACE_PARAMS)
    if "taken_at" in params:
        taken_at = params["taken_at"]
        if not isinstance(taken_at, list):
            raise invalid_params("'taken_at' must be a list of ISO 8601 dates, one per photo.")
        for value in taken_at:
            parse_taken_at(value)
        resolved["taken_at"] = taken_at
    return resolved


def _taken_at_matches_files(params: Mapping[str, Any], file_count: int) -> None:
    taken_at = params.get("taken_at")
    if taken_at is not None and len(taken_at) != file_count:
        raise JobRequestError(
            "taken_at_mismatch",
            f"'taken_at' has {len(taken_at)} date(s) for {file_count} photo(s); give one per "
            "photo, in upload order.",
        )


def sequence_child_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The face-extraction params of one photo of a sequence: its largest face, default crop."""
    return {
        **{name: params[name] for name in SEQUENCE_FACE_PARAMS if name in params},
        "crop_size": FACE_DEFAULTS["crop_size"],
        "largest_only": True,
    }


def order_by_taken_at(taken_at: Sequence[str] | None, count: int) -> list[int]:
    """Input positions in time order: by taken_at (ties keep upload order), else upload order."""
    if not taken_at:
        return list(range(count))
    moments = [parse_taken_at(value) for value in taken_at]
    return sorted(range(count), key=lambda position: moments[position])


@dataclass(frozen=True)
class JobType:
    """What a job type accepts and which task (by name; the web never imports tasks) runs it."""

    name: str
    task_name: str
    description: str
    min_files: int
    max_files: int
    image_formats: frozenset[str]
    validate_params: ParamsValidator
    # Several files make several jobs, one per file, instead of one job over all of them.
    one_job_per_file: bool = False
    # pixel_spacing_mm must come from the params or from every file (DICOM PixelSpacing).
    needs_pixel_spacing: bool = False
    # Checks the params against the number of files (after both were validated on their own).
    check_file_count: Callable[[Mapping[str, Any], int], None] | None = None
    # A fan-out type runs one job of this type per file first (its children, in parallel), and
    # its own task once they have all ended.
    child_type: str | None = None
    child_params: ParamsValidator | None = None


MASK_FORMATS = frozenset({"PNG", "JPEG", "TIFF"})
PHOTO_FORMATS = frozenset({"PNG", "JPEG"})
MAX_SEQUENCE_PHOTOS = 30
SCAN_FORMATS = MASK_FORMATS | {"DICOM"}

JOB_TYPES: dict[str, JobType] = {
    job_type.name: job_type
    for job_type in (
        JobType(
            name="perimeter",
            task_name="scanqueue.perimeter",
            description=(
                "Fit an ellipse to a binary mask (white = object) and report its circumference "
                "in mm, semi-axes, centre and angle, with an overlay PNG."
            ),
            min_files=1,
            max_files=1,
            image_formats=MASK_FORMATS,
            validate_params=_perimeter_params,
        ),
        JobType(
            name="segmentation",
            task_name="scanqueue.segmentation",
            description=(
                "Segment a scan (PNG, JPEG, TIFF or DICOM) with the configured registry model: "
                "mask and overlay PNGs at the scan's resolution, pixel area of every class "
                "(in mm² when pixel_spacing_mm is given or the DICOM has PixelSpacing)."
            ),
            min_files=1,
            max_files=30,
            image_formats=SCAN_FORMATS,
            validate_params=_segmentation_params,
            one_job_per_file=True,
        ),
        JobType(
            name="head_circumference",
            task_name="scanqueue.head_circumference.segment",
            description=(
                "Fetal head circumference from an ultrasound image (PNG, JPEG, TIFF or DICOM): "
                "segmentation on a GPU worker, then an ellipse fit at full resolution: HC, "
                "semi-axes, centre and angle in mm, mask and overlay, quality flags. Needs "
                "pixel_spacing_mm unless the DICOM has PixelSpacing."
            ),
            min_files=1,
            max_files=30,
            image_formats=SCAN_FORMATS,
            validate_params=_segmentation_params,
            one_job_per_file=True,
            needs_pixel_spacing=True,
        ),
        JobType(
            name="face_extraction",
            task_name="scanqueue.face_extraction",
            description=(
                "Find the faces in one or more photos (PNG or JPEG, EXIF orientation applied) "
                "with MTCNN: per photo every face's box, confidence and five landmarks, an "
                "aligned square crop (crop_size px) and an overlay. A photo without a face is "
                "reported as such, not an error."
            ),
            min_files=1,
            max_files=30,
            image_formats=PHOTO_FORMATS,
            validate_params=_face_extraction_params,
        ),
        JobType(
            name="sequence_inference",
            task_name="scanqueue.sequence_inference.predict",
            description=(
                "A time-ordered series of 1 to 30 face photos of one person (order from "
                "taken_at, else upload order) -> probability that the skin condition improved "
                "rather than deteriorated. Runs a face_extraction job per photo in parallel, "
                "then the sequence model on the face crops; photos without a face are masked "
                "out and named in the result."
            ),
            min_files=1,
            max_files=MAX_SEQUENCE_PHOTOS,
            image_formats=PHOTO_FORMATS,
            validate_params=_sequence_params,
            check_file_count=_taken_at_matches_files,
            child_type="face_extraction",
            child_params=sequence_child_params,
        ),
        JobType(
            name="classification",
            task_name="scanqueue.classification",
            description=(
                "Classify one or more images of one subject with a registry classifier "
                "(default CLASSIFICATION_MODEL, the HC18 trimester model; params.model names "
                "another): class probabilities per image and their mean for the set, whose "
                "most probable class is the prediction, or 'uncertain' when its probability is "
                "below uncertain_below (the model card's, else 0.6)."
            ),
            min_files=1,
            max_files=30,
            image_formats=SCAN_FORMATS,
            validate_params=_classification_params,
        ),
    )
}


def get_job_type(name: str | None) -> JobType:
    """The job type by name, or a JobRequestError listing the known ones."""
    if not name or name not in JOB_TYPES:
        raise JobRequestError(
            "unknown_job_type",
            f"Unknown job type {name!r}; known types: {', '.join(sorted(JOB_TYPES))}.",
        )
    return JOB_TYPES[name]
