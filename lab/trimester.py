"""The trimester a head circumference falls in, by the gestational age Hadlock's formula gives
(``pipelines.fetal_growth``, Radiology 1984)."""

from __future__ import annotations

from pipelines.fetal_growth import hadlock_gestational_age_weeks

TRIMESTERS = ("first", "second", "third")
# Completed weeks at which the second and third trimesters begin (14+0 and 28+0).
SECOND_TRIMESTER_WEEKS = 14.0
THIRD_TRIMESTER_WEEKS = 28.0


def trimester_index(head_circumference_mm: float) -> int:
    """0, 1 or 2 for the first, second or third trimester."""
    weeks = hadlock_gestational_age_weeks(head_circumference_mm)
    if weeks < SECOND_TRIMESTER_WEEKS:
        return 0
    return 1 if weeks < THIRD_TRIMESTER_WEEKS else 2
