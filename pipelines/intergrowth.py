"""The INTERGROWTH-21st international standard for fetal head circumference.

Papageorghiou AT, Ohuma EO, Altman DG, Todros T, Cheikh Ismail L, Lambert A, et al.
"International standards for fetal growth based on serial ultrasound measurements: the Fetal
Growth Longitudinal Study of the INTERGROWTH-21st Project." Lancet 384(9946):869-79, 2014.
doi:10.1016/S0140-6736(14)61490-2.

At a gestational age GA (exact weeks) head circumference is normally distributed with

    median = -28.2849 + 1.69267 GA^2 - 0.397485 GA^2 ln(GA)                                 mm
    SD     = 1.98735 + 0.0136772 GA^3 - 0.00726264 GA^3 ln(GA) + 0.000976253 GA^3 ln(GA)^2  mm

The standard covers 14+0 to 40+0 weeks (98 to 280 days) and nothing outside: ages outside that
range get no centile here rather than an extrapolated one.
"""

from __future__ import annotations

import math
from statistics import NormalDist

# Gestational ages the standard covers, in days (14+0 and 40+0 weeks), both included.
RANGE_DAYS = (98, 280)

_NORMAL = NormalDist()


class OutsideStandard(ValueError):
    """The gestational age lies outside the standard's 14+0 to 40+0 weeks."""


def in_range(gestational_age_days: float) -> bool:
    """Whether the standard covers this gestational age."""
    low, high = RANGE_DAYS
    return low <= gestational_age_days <= high


def _weeks(gestational_age_days: float) -> float:
    if not in_range(gestational_age_days):
        raise OutsideStandard(
            f"{gestational_age_days} days is outside the standard's 14+0 to 40+0 weeks."
        )
    return gestational_age_days / 7.0


def median_mm(gestational_age_days: float) -> float:
    """The median (= mean) head circumference at this age."""
    weeks = _weeks(gestational_age_days)
    return -28.2849 + 1.69267 * weeks**2 - 0.397485 * weeks**2 * math.log(weeks)


def sd_mm(gestational_age_days: float) -> float:
    """The standard deviation of head circumference at this age."""
    weeks = _weeks(gestational_age_days)
    log = math.log(weeks)
    return (
        1.98735
        + 0.0136772 * weeks**3
        - 0.00726264 * weeks**3 * log
        + 0.000976253 * weeks**3 * log**2
    )


def z_score(head_circumference_mm: float, gestational_age_days: float) -> float:
    """How many SDs the head circumference lies above the median for its age."""
    median = median_mm(gestational_age_days)
    return (head_circumference_mm - median) / sd_mm(gestational_age_days)


def centile(z: float) -> float:
    """The centile (0-100) of a z-score under the standard's normal distribution."""
    return 100.0 * _NORMAL.cdf(z)


def at_centile(percent: float, gestational_age_days: float) -> float:
    """The head circumference at this centile (0 < percent < 100) and age."""
    z = _NORMAL.inv_cdf(percent / 100.0)
    return median_mm(gestational_age_days) + z * sd_mm(gestational_age_days)
