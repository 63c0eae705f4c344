"""The growth part of head_circumference: the params that date the scan, and the result fields
that place the head on the INTERGROWTH-21st standard (``pipelines.fetal_growth``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from core.jobtypes.params import integer_in, invalid_params
from pipelines import intergrowth
from pipelines.fetal_growth import (
    GESTATIONAL_AGE_PARAM_RANGE_DAYS,
    AgeSource,
    GrowthFlag,
    NoCentile,
)

STANDARD = "the INTERGROWTH-21st fetal head circumference standard (Papageorghiou 2014)"

# The params that date the scan, on top of segmentation's.
AGE_PARAMS_SCHEMA: dict[str, Any] = {
    "gestational_age_days": {
        "type": "integer",
        "minimum": GESTATIONAL_AGE_PARAM_RANGE_DAYS[0],
        "maximum": GESTATIONAL_AGE_PARAM_RANGE_DAYS[1],
        "description": "Gestational age at the scan in days (e.g. 20+3 weeks = 143). "
        "Default: from the subject's due date (280 days on the due date).",
    },
    "scan_date": {
        "type": "string",
        "format": "date",
        "description": "The day of the scan (ISO 8601, e.g. 2026-11-25), for the age from the "
        "subject's due date. Default: the day the job is submitted (UTC).",
    },
}


def _scan_date(value: object) -> str:
    try:
        if not isinstance(value, str):
            raise ValueError
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise invalid_params(
            f"'scan_date' must be an ISO 8601 date such as 2026-11-25, got {value!r}."
        ) from None


def validate_age_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """gestational_age_days and scan_date, those given (both optional)."""
    resolved: dict[str, Any] = {}
    if "gestational_age_days" in params:
        low, high = GESTATIONAL_AGE_PARAM_RANGE_DAYS
        resolved["gestational_age_days"] = integer_in(params, "gestational_age_days", low, high)
    if "scan_date" in params:
        resolved["scan_date"] = _scan_date(params["scan_date"])
    return resolved


def _nullable(kind: str, description: str) -> dict[str, Any]:
    return {"type": [kind, "null"], "description": description}


# Where the measured head falls for the pregnancy's age (pipelines.fetal_growth.head_growth).
GROWTH_RESULT_SCHEMA: dict[str, Any] = {
    "gestational_age_days": _nullable(
        "integer",
        "Age at the scan in days: params.gestational_age_days, else 280 minus the days from "
        "the scan (params.scan_date, else the day the job was submitted) to the subject's due "
        "date; null when neither is known.",
    ),
    "gestational_age_source": {
        "type": ["string", "null"],
        "enum": [*(source.value for source in AgeSource), None],
        "description": "Where gestational_age_days came from.",
    },
    "gestational_age_from_hc_days": _nullable(
        "integer",
        "The age this head circumference implies by Hadlock's formula (Radiology 1984): "
        "8.96 + 0.540 HC + 0.0003 HC^3 weeks, HC in cm.",
    ),
    "hc_expected_mm": _nullable(
        "number", f"The median head circumference for the age, of {STANDARD}."
    ),
    "hc_sd_mm": _nullable("number", "The standard's SD of head circumference for the age, mm."),
    "hc_z_score": _nullable("number", "(HC - expected) / SD."),
    "hc_centile": _nullable(
        "number",
        f"Centile (0-100) of the head circumference for the age on {STANDARD}; null outside "
        f"{intergrowth.RANGE_DAYS[0]}-{intergrowth.RANGE_DAYS[1]} days (14+0 to 40+0 weeks), "
        "which the standard does not cover.",
    ),
    "hc_centile_unavailable": {
        "type": ["string", "null"],
        "enum": [*(reason.value for reason in NoCentile), None],
        "description": "Why hc_centile is null (null when it is given).",
    },
    "growth_flags": {
        "type": "array",
        "items": {"type": "string", "enum": [flag.value for flag in GrowthFlag]},
        "description": "below_3rd_centile (centile < 3) or above_97th_centile (centile > 97).",
    },
}
