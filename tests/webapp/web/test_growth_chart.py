"""The growth chart on the subject page and a head measurement's place on the job page."""

from __future__ import annotations

import html
import re
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient

from core.database import db
from core.records import Job, JobStatus, Subject, User
from pipelines import intergrowth
from pipelines.fetal_growth import AgeSource, GestationalAge, head_growth
from tests.builders import make_subject, make_user, sign_in

SVG = "{http://www.w3.org/2000/svg}"
DUE = date(2027, 3, 20)


def submitted_at(days: int) -> datetime:
    """When a job must be submitted for its scan to be ``days`` old by the due date."""
    return datetime.combine(DUE - timedelta(days=280 - days), datetime.min.time(), UTC)


def head_job(
    owner: User,
    subject: Subject | None,
    hc_mm: float | None,
    days: int,
    *,
    status: JobStatus = JobStatus.SUCCEEDED,
    stored_growth: bool = True,
    params: dict[str, Any] | None = None,
) -> Job:
    """A head_circumference job as the worker leaves it, submitted when the scan was ``days`` old
    (by the due date); ``stored_growth=False`` is a result from before the growth fields."""
    result: dict[str, Any] = {"head_circumference_mm": hc_mm, "quality_flags": []}
    if stored_growth:
        age = GestationalAge(days, AgeSource.DUE_DATE)
        result |= head_growth(hc_mm, age)
    job = Job(
        id=uuid.uuid4(),
        owner_id=owner.id,
        subject_id=subject.id if subject else None,
        type="head_circumference",
        params=params or {},
        status=status.value,
        progress=100,
        result=result if status is JobStatus.SUCCEEDED else None,
        created_at=submitted_at(days),
    )
    db.session.add(job)
    db.session.commit()
    return job


def svg_of(page: str) -> ET.Element:
    """The page's inline SVG, parsed as XML (it must be well-formed)."""
    [svg] = re.findall(r"<svg\b.*?</svg>", page, re.S)
    assert "style=" not in svg and "<script" not in svg  # nothing the CSP would block
    return ET.fromstring(svg)


def curves(svg: ET.Element) -> dict[int, list[tuple[float, float]]]:
    """Centile -> its polyline's points."""
    return {
        int(line.get("data-centile", "")): [
            (float(x), float(y))
            for x, y in (pair.split(",") for pair in line.get("points", "").split())
        ]
        for line in svg.iter(f"{SVG}polyline")
    }


def links(svg: ET.Element) -> dict[str, ET.Element]:
    """Each measurement's link target -> its circle."""
    return {anchor.get("href", ""): anchor.find(f"{SVG}circle") for anchor in svg.iter(f"{SVG}a")}


def test_the_subject_page_draws_the_centiles_and_each_measurement(client: FlaskClient) -> None:
    owner = make_user()
    subject = make_subject(owner, due_date=DUE)
    median = head_job(owner, subject, intergrowth.median_mm(140), 140)  # 20+0 weeks
    small = head_job(owner, subject, 180.0, 182)  # 26+0 weeks: below the 3rd centile
    older = head_job(owner, subject, 300.0, 238, stored_growth=False)  # from before the fields
    no_head = head_job(owner, subject, None, 200)
    head_job(owner, subject, None, 210, status=JobStatus.FAILED)
    stranger = make_user()
    theirs = head_job(stranger, make_subject(stranger, due_date=DUE), 200.0, 150)
    # Even a stranger's job pointing at this subject is not drawn on its owner's chart.
    intruder = head_job(stranger, subject, 210.0, 160)
    sign_in(client, owner.email)

    page = client.get(f"/subjects/{subject.id}").get_data(as_text=True)
    svg = svg_of(page)

    lines = curves(svg)
    assert sorted(lines) == [3, 10, 50, 90, 97]
    for points in zip(*(lines[c] for c in (3, 10, 50, 90, 97)), strict=True):
        xs = {x for x, _ in points}
        ys = [y for _, y in points]
        assert len(xs) == 1 and ys == sorted(ys, reverse=True)  # higher centile, higher up
    shown = links(svg)
    assert set(shown) == {f"/jobs/{job.id}" for job in (median, small, older)}
    # The median measurement sits on the 50th centile curve at its age.
    circle = shown[f"/jobs/{median.id}"]
    x, y = float(circle.get("cx", "")), float(circle.get("cy", ""))
    [(_, curve_y)] = [point for point in lines[50] if point[0] == x]
    assert abs(y - curve_y) < 0.2
    tooltips = [element.findtext(f"{SVG}title") or "" for element in shown.values()]
    assert any(t.startswith("20+0 weeks: HC 172.5 mm, 50th centile") for t in tooltips)
    assert any(t.startswith("34+0 weeks: HC 300.0 mm") for t in tooltips)  # worked out now
    texts = {element.text for element in svg.iter(f"{SVG}text")}
    assert {"Gestational age (weeks)", "Head circumference (mm)"} <= texts
    assert svg.findtext(f"{SVG}title") == f"Head circumference for gestational age: {subject.label}"
    assert f"/jobs/{no_head.id}" in page and "no head was found" in page
    svg_text = ET.tostring(svg, encoding="unicode")
    assert str(theirs.id) not in page and str(intruder.id) not in svg_text


def test_no_chart_without_head_measurements(client: FlaskClient) -> None:
    owner = make_user()
    subject = make_subject(owner, due_date=DUE)
    sign_in(client, owner.email)
    page = client.get(f"/subjects/{subject.id}").get_data(as_text=True)
    assert "<svg" not in page and "Head growth" not in page


def test_the_job_page_shows_the_centile_and_marks_the_measurement(client: FlaskClient) -> None:
    owner = make_user()
    subject = make_subject(owner, due_date=DUE)
    small = head_job(owner, subject, 180.0, 182)
    other = head_job(owner, subject, intergrowth.median_mm(140), 140)
    sign_in(client, owner.email)

    page = client.get(f"/jobs/{small.id}").get_data(as_text=True)

    centile = small.result["hc_centile"]
    assert f"{round(centile)}" in re.search(r'data-role="centile">(.*?)</p>', page, re.S)[1]
    assert "Below the 3rd centile." in page and "26+0 weeks" in page
    svg = svg_of(page)
    marked = [a for a in svg.iter(f"{SVG}a") if "highlighted" in a.get("class", "")]
    assert [a.get("href") for a in marked] == [f"/jobs/{small.id}"]
    assert f"/jobs/{other.id}" in links(svg)  # the rest of the subject's measurements


def test_outside_the_standard_the_job_page_says_so(client: FlaskClient) -> None:
    owner = make_user()
    job = head_job(owner, None, 80.0, 90, params={"gestational_age_days": 90})
    job.result = job.result | head_growth(80.0, GestationalAge(90, AgeSource.PARAMS))
    db.session.commit()
    sign_in(client, owner.email)
    page = client.get(f"/jobs/{job.id}").get_data(as_text=True)
    text = html.unescape(page)
    assert "12+6 weeks is outside the standard's 14+0 to 40+0 weeks" in text
    assert "from the job's parameters" in text
    # Drawn at its age, beyond the curves, which stop at 14+0 weeks.
    svg = svg_of(page)
    [circle] = links(svg).values()
    assert float(circle.get("cx", "")) < min(x for x, _ in curves(svg)[50])


def test_centiles_read_as_ordinals() -> None:
    from webapp.growth_chart import ordinal, weeks_and_days

    labels = [ordinal(c) for c in (0.2, 1, 2.6, 3, 11.4, 12, 13, 21, 22, 50, 97, 99.4, 99.8)]
    assert labels == [
        "<1st", "1st", "3rd", "3rd", "11th", "12th", "13th", "21st", "22nd", "50th", "97th",
        "99th", ">99th",
    ]  # fmt: skip
    assert weeks_and_days(143) == "20+3" and weeks_and_days(98) == "14+0"
