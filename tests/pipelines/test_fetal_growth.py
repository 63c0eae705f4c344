"""The gestational age at a scan, Hadlock's age from the head, and a head placed on the
INTERGROWTH-21st standard."""

from __future__ import annotations

from datetime import date

import pytest

from pipelines import intergrowth
from pipelines.fetal_growth import (
    AgeSource,
    GestationalAge,
    gestational_age_at_scan,
    hadlock_gestational_age_weeks,
    head_growth,
)

DUE = date(2027, 3, 20)


def test_age_from_the_due_date_on_the_submission_day_or_the_scan_date() -> None:
    # 115 days before the due date: 280 - 115 = 165 days (23+4 weeks).
    on_submission = gestational_age_at_scan({}, DUE, date(2026, 11, 25))
    assert on_submission == GestationalAge(165, AgeSource.DUE_DATE)
    scanned_earlier = gestational_age_at_scan({"scan_date": "2026-11-18"}, DUE, date(2026, 11, 25))
    assert scanned_earlier == GestationalAge(158, AgeSource.DUE_DATE)
    assert gestational_age_at_scan({}, DUE, DUE).days == 280


def test_the_param_wins_and_nothing_is_made_up() -> None:
    given = {"gestational_age_days": 143, "scan_date": "2026-11-18"}
    assert gestational_age_at_scan(given, DUE, date(2026, 11, 25)) == GestationalAge(
        143, AgeSource.PARAMS
    )
    assert gestational_age_at_scan({"gestational_age_days": 143}, None, DUE).days == 143
    assert gestational_age_at_scan({"scan_date": "2026-11-18"}, None, DUE) is None


@pytest.mark.parametrize(
    ("hc_mm", "weeks"),
    # Hadlock 1984 (HC in cm): 8.96 + 0.540 HC + 0.0003 HC^3.
    [(100.0, 8.96 + 5.40 + 0.30), (175.0, 8.96 + 9.45 + 0.0003 * 17.5**3), (300.0, 33.26)],
)
def test_hadlock_gestational_age(hc_mm: float, weeks: float) -> None:
    assert hadlock_gestational_age_weeks(hc_mm) == pytest.approx(weeks, abs=0.01)


def test_a_median_head_is_the_50th_centile_without_flags() -> None:
    # 20+0 weeks: the published median is 172.5 mm.
    fields = head_growth(172.5, GestationalAge(140, AgeSource.DUE_DATE))
    assert fields["hc_expected_mm"] == pytest.approx(172.5, abs=0.1)
    assert fields["hc_z_score"] == pytest.approx(0, abs=0.01)
    assert fields["hc_centile"] == pytest.approx(50, abs=0.5)
    assert fields["growth_flags"] == [] and fields["hc_centile_unavailable"] is None
    assert fields["gestational_age_days"] == 140 and fields["gestational_age_source"] == "due_date"
    assert fields["gestational_age_from_hc_days"] == round(hadlock_gestational_age_weeks(172.5) * 7)


def test_flags_below_the_3rd_and_above_the_97th_centile() -> None:
    age = GestationalAge(200, AgeSource.PARAMS)
    just_below = head_growth(intergrowth.at_centile(2.9, 200), age)
    just_inside = head_growth(intergrowth.at_centile(3.1, 200), age)
    above = head_growth(intergrowth.at_centile(97.1, 200), age)
    assert just_below["growth_flags"] == ["below_3rd_centile"]
    assert just_below["hc_centile"] == pytest.approx(2.9, abs=0.01)
    assert just_inside["growth_flags"] == []
    assert above["growth_flags"] == ["above_97th_centile"]


@pytest.mark.parametrize("days", [97, 281])
def test_outside_14_to_40_weeks_there_is_no_centile(days: int) -> None:
    fields = head_growth(250.0, GestationalAge(days, AgeSource.PARAMS))
    assert fields["hc_centile_unavailable"] == "outside_standard_range"
    assert fields["hc_centile"] is fields["hc_z_score"] is fields["hc_expected_mm"] is None
    assert fields["growth_flags"] == [] and fields["gestational_age_days"] == days
    assert fields["gestational_age_from_hc_days"] is not None  # the head's own age still is


def test_without_an_age_or_a_head() -> None:
    unknown_age = head_growth(200.0, None)
    assert unknown_age["hc_centile_unavailable"] == "gestational_age_unknown"
    assert unknown_age["gestational_age_days"] is None and unknown_age["hc_centile"] is None
    no_head = head_growth(None, GestationalAge(150, AgeSource.DUE_DATE))
    assert no_head["hc_centile_unavailable"] == "no_head_found"
    assert no_head["gestational_age_from_hc_days"] is None
    assert no_head["gestational_age_days"] == 150
