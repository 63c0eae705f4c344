"""Building blocks of the params validators: strict types and ranges, stable error codes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from core.jobtypes.spec import JobRequestError
from core.model_registry import MODEL_NAME, VERSION
from pipelines.faces import CROP_SIZE_RANGE
from pipelines.faces import DEFAULTS as FACE_DEFAULTS
from pipelines.scans import PIXEL_SPACING_RANGE_MM


def invalid_params(message: str) -> JobRequestError:
    """The error for parameters that are missing, unknown or out of range."""
    return JobRequestError("invalid_params", message)


def reject_unknown(params: Mapping[str, Any], allowed: set[str] | frozenset[str]) -> None:
    """Refuse parameters the job type does not know, so typos do not pass silently."""
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise invalid_params(
            f"Unknown parameter(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}."
        )


def number_in(params: Mapping[str, Any], name: str, low: float, high: float) -> float:
    """The named param as a float within [low, high]."""
    value = params[name]
    # bool is an int in Python; NaN fails every comparison, so the range check refuses it too.
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise invalid_params(f"'{name}' must be a number from {low:g} to {high:g}, got {value!r}.")
    return float(value)


def integer_in(params: Mapping[str, Any], name: str, low: int, high: int) -> int:
    """The named param as an int within [low, high]."""
    value = params[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid_params(f"'{name}' must be an integer from {low} to {high}, got {value!r}.")
    return value


MODEL_PARAM_SCHEMAS: dict[str, dict[str, Any]] = {
    "model": {
        "type": "string",
        "pattern": MODEL_NAME.pattern,
        "description": "A registry model of the job type's task (GET /api/v1/models); default "
        "the configured one.",
    },
    "model_version": {
        "type": "string",
        "pattern": VERSION.pattern,
        "description": "A version of that model (of the default one without 'model'); default "
        "the newest when the job runs (the default model: its pinned version, if any).",
    },
}


def model_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The model and version a job asks for, when it names them (checked against the registry
    at upload, outside this pure validator)."""
    resolved: dict[str, Any] = {}
    for name, pattern, what in (
        ("model", MODEL_NAME, "a registry model name"),
        ("model_version", VERSION, "a version number such as 1.0.0"),
    ):
        if name in params:
            value = params[name]
            if not isinstance(value, str) or not pattern.match(value):
                raise invalid_params(f"'{name}' must be {what}, got {value!r}.")
            resolved[name] = value
    return resolved


def pixel_spacing_mm(params: Mapping[str, Any]) -> float:
    """The required pixel size in mm: finite and within PIXEL_SPACING_RANGE_MM."""
    if "pixel_spacing_mm" not in params:
        raise invalid_params("'pixel_spacing_mm' is required.")
    return number_in(params, "pixel_spacing_mm", *PIXEL_SPACING_RANGE_MM)


PIXEL_SPACING_SCHEMA: dict[str, Any] = {
    "type": "number",
    "minimum": PIXEL_SPACING_RANGE_MM[0],
    "maximum": PIXEL_SPACING_RANGE_MM[1],
    "description": "Millimetres per pixel; a DICOM's PixelSpacing must lie in the same range.",
}

FACE_PARAM_SCHEMAS: dict[str, dict[str, Any]] = {
    "min_confidence": {
        "type": "number",
        "minimum": 0,
        "maximum": 1,
        "default": FACE_DEFAULTS["min_confidence"],
    },
    "min_face_size": {
        "type": "integer",
        "minimum": 1,
        "maximum": 10_000,
        "default": FACE_DEFAULTS["min_face_size"],
        "description": "Pixels, the shorter side of a face's box.",
    },
    "crop_size": {
        "type": "integer",
        "minimum": CROP_SIZE_RANGE[0],
        "maximum": CROP_SIZE_RANGE[1],
        "default": FACE_DEFAULTS["crop_size"],
    },
    "largest_only": {"type": "boolean", "default": FACE_DEFAULTS["largest_only"]},
}


def face_params(params: Mapping[str, Any], allowed: set[str] | frozenset[str]) -> dict[str, Any]:
    """Face-detection parameters, defaults filled in so the job records what it used."""
    resolved = {name: FACE_DEFAULTS[name] for name in allowed}
    if "min_confidence" in params:
        resolved["min_confidence"] = number_in(params, "min_confidence", 0.0, 1.0)
    if "min_face_size" in params:
        resolved["min_face_size"] = integer_in(params, "min_face_size", 1, 10_000)
    if "crop_size" in params and "crop_size" in allowed:
        resolved["crop_size"] = integer_in(params, "crop_size", *CROP_SIZE_RANGE)
    if "largest_only" in params and "largest_only" in allowed:
        if not isinstance(params["largest_only"], bool):
            raise invalid_params(
                f"'largest_only' must be true or false, got {params['largest_only']!r}."
            )
        resolved["largest_only"] = params["largest_only"]
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


def order_by_taken_at(taken_at: Sequence[str] | None, count: int) -> list[int]:
    """Input positions in time order: by taken_at (ties keep upload order), else upload order."""
    if not taken_at:
        return list(range(count))
    moments = [parse_taken_at(value) for value in taken_at]
    return sorted(range(count), key=lambda position: moments[position])


def object_schema(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A closed JSON object schema (unknown properties are refused, as the validators do)."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = list(required)
    return schema
