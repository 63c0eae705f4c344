"""Gestational age from head circumference (Hadlock 1984), and the trimester it falls in.

Hadlock FP, Deter RL, Harrist RB, Park SK. "Estimating fetal age: computer-assisted analysis of
multiple fetal growth parameters." Radiology 152(2):497-501, 1984:
GA (weeks) = 8.96 + 0.540 HC + 0.0003 HC^3, HC in cm.
"""

from __future__ import annotations

TRIMESTERS = ("first", "second", "third")
# Completed weeks at which the second and third trimesters begin (14+0 and 28+0).
SECOND_TRIMESTER_WEEKS = 14.0
THIRD_TRIMESTER_WEEKS = 28.0


def gestational_age_weeks(head_circumference_mm: float) -> float:
    """Hadlock's estimate of gestational age in weeks from the head circumference."""
    hc_cm = head_circumference_mm / 10.0
    return 8.96 + 0.540 * hc_cm + 0.0003 * hc_cm**3


def trimester_index(head_circumference_mm: float) -> int:
    """0, 1 or 2 for the first, second or third trimester."""
    weeks = gestational_age_weeks(head_circumference_mm)
    if weeks < SECOND_TRIMESTER_WEEKS:
        return 0
    return 1 if weeks < THIRD_TRIMESTER_WEEKS else 2
