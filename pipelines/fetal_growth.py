"""A head measurement read against the pregnancy's age: the gestational age at the scan, where the
head circumference falls on the INTERGROWTH-21st standard, and the age the head alone implies.

The age at the scan comes from ``params.gestational_age_days`` when given, else from the subject's
due date: 280 days minus the days from the scan to the due date (the due date is 40+0 weeks). The
scan's date is ``params.scan_date`` when given, else the day the job was submitted (UTC).

The age the head implies is Hadlock's regression (Hadlock FP, Deter RL, Harrist RB, Park SK.
"Estimating fetal age: computer-assisted analysis of multiple fetal growth parameters."
Radiology 152(2):497-501, 1984): GA (weeks) = 8.96 + 0.540 HC + 0.0003 HC^3, HC in cm.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from pipelines import intergrowth

# The due date is 40+0 weeks.
DUE_DATE_AGE_DAYS = 280
# What params.gestational_age_days may say (0 to 45+5 weeks): beyond any pregnancy, a typo.
GESTATIONAL_AGE_PARAM_RANGE_DAYS = (0, 320)
LOW_CENTILE, HIGH_CENTILE = 3.0, 97.0


class AgeSource(StrEnum):
    """Where a gestational age came from."""

    PARAMS = "params"
    DUE_DATE = "due_date"


class NoCentile(StrEnum):
    """Why a measurement has no centile."""

    NO_HEAD_FOUND = "no_head_found"
    GESTATIONAL_AGE_UNKNOWN = "gestational_age_unknown"
    OUTSIDE_STANDARD_RANGE = "outside_standard_range"


class GrowthFlag(StrEnum):
    """A head circumference outside the standard's 3rd-97th centile band for its age."""

    BELOW_3RD_CENTILE = "below_3rd_centile"
    ABOVE_97TH_CENTILE = "above_97th_centile"


@dataclass(frozen=True)
class GestationalAge:
    """The age at the scan in days, and where it came from."""

    days: int
    source: AgeSource


def gestational_age_at_scan(
    params: Mapping[str, Any], due_date: date | None, submitted_on: date
) -> GestationalAge | None:
    """The age at the scan: the param, else from the due date and the scan's date; None when
    neither is known."""
    if params.get("gestational_age_days") is not None:
        return GestationalAge(int(params["gestational_age_days"]), AgeSource.PARAMS)
    if due_date is None:
        return None
    scanned_on = (
        date.fromisoformat(params["scan_date"]) if params.get("scan_date") else submitted_on
    )
    return GestationalAge(DUE_DATE_AGE_DAYS - (due_date - scanned_on).days, AgeSource.DUE_DATE)


def hadlock_gestational_age_weeks(head_circumference_mm: float) -> float:
    """Hadlock's estimate of gestational age in weeks from the head circumference."""
    hc_cm = head_circumference_mm / 10.0
    return 8.96 + 0.540 * hc_cm + 0.0003 * hc_cm**3


def head_growth(head_circumference_mm: float | None, age: GestationalAge | None) -> dict[str, Any]:
    """The result fields that place a head circumference on the INTERGROWTH-21st standard.

    A centile is given only for a measured head at a known age within 14+0 to 40+0 weeks;
    otherwise ``hc_centile_unavailable`` says why and the standard's fields are null.
    """
    fields: dict[str, Any] = {
        "gestational_age_days": age.days if age else None,
        "gestational_age_source": age.source.value if age else None,
        "gestational_age_from_hc_days": None,
        "hc_expected_mm": None,
        "hc_sd_mm": None,
        "hc_z_score": None,
        "hc_centile": None,
        "hc_centile_unavailable": None,
        "growth_flags": [],
    }
    if head_circumference_mm is not None:
        weeks = hadlock_gestational_age_weeks(head_circumference_mm)
        fields["gestational_age_from_hc_days"] = round(weeks * 7)
    if head_circumference_mm is None:
        fields["hc_centile_unavailable"] = NoCentile.NO_HEAD_FOUND.value
    elif age is None:
        fields["hc_centile_unavailable"] = NoCentile.GESTATIONAL_AGE_UNKNOWN.value
    elif not intergrowth.in_range(age.days):
        fields["hc_centile_unavailable"] = NoCentile.OUTSIDE_STANDARD_RANGE.value
    else:
        z = intergrowth.z_score(head_circumference_mm, age.days)
        centile = intergrowth.centile(z)
        fields |= {
            "hc_expected_mm": round(intergrowth.median_mm(age.days), 1),
            "hc_sd_mm": round(intergrowth.sd_mm(age.days), 2),
            "hc_z_score": round(z, 3),
            "hc_centile": round(centile, 2),
        }
        # Flags from the unrounded centile, so a value just past the line is not rounded back.
        if centile < LOW_CENTILE:
            fields["growth_flags"] = [GrowthFlag.BELOW_3RD_CENTILE.value]
        elif centile > HIGH_CENTILE:
            fields["growth_flags"] = [GrowthFlag.ABOVE_97TH_CENTILE.value]
    return fields
