"""A real browser (Debian's headless Chromium, driven by Playwright) signs in, uploads an HC18
image, watches the progress bar reach done, and finds the circumference, the overlay, the centile
and the growth chart."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.builders import DEFAULT_PASSWORD, make_subject, make_user
from tests.conftest import REPO_ROOT, free_port, hc18_images
from tests.integration.conftest import JOB_TIMEOUT, WorkerStack

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO_ROOT / "test-output" / "browser"
# A validation-split image (never seen in training), 800x540.
IMAGE = "000_HC.png"
DUE = date(2027, 3, 20)


@pytest.fixture(scope="module")
def site(released_model_stack: WorkerStack) -> Iterator[str]:
    """The app behind a real HTTP server (werkzeug, threaded) on a free port."""
    port = free_port()
    server = make_server("127.0.0.1", port, released_model_stack.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()


def test_upload_watch_progress_and_see_the_measurement(
    site: str, released_model_stack: WorkerStack
) -> None:
    from playwright.sync_api import expect, sync_playwright

    assert CHROMIUM.is_file(), "Chromium missing: `make test` installs Debian's chromium package"
    image = hc18_images()[IMAGE]
    with released_model_stack.app.app_context():
        user = make_user()
        email = user.email
        # A name that would run as script if it reached one (the page's CSP forbids inline script).
        subject_id = make_subject(user, name="Ann'); alert('xss'); ('", due_date=DUE).id
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        page = browser.new_page(viewport={"width": 1100, "height": 1400})
        # The Content-Security-Policy must not block any of the site's own scripts or styles.
        console = []
        page.on("console", lambda message: console.append(message.text))
        page.goto(f"{site}/account/signin")
        page.fill("input[name=email]", email)
        page.fill("input[name=password]", DEFAULT_PASSWORD)
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_have_text("Dashboard")

        page.goto(f"{site}/upload")
        page.select_option("#job-type", "head_circumference")
        page.select_option("#subject", str(subject_id))
        page.set_input_files("#file-input", str(image.image_path))
        page.fill("#pixel-spacing", str(image.pixel_size_mm))
        # Scanned 130 days before the due date: 150 days (21+3 weeks) old.
        page.fill("#scan-date", (DUE - timedelta(days=130)).isoformat())
        # The model lists offered are the registry's models of the type's task (segmentation).
        segmenters = page.locator('.model-field[data-model-task="segmentation"]')
        expect(segmenters).to_be_visible()
        expect(page.locator('.model-field[data-model-task="classification"]')).to_be_hidden()
        segmenters.locator("select").select_option("hc18-unet")
        page.click("#submit")
        row = page.locator("#job-list li").first
        expect(row.locator('[data-role="status"]')).to_have_text(
            "succeeded", timeout=JOB_TIMEOUT * 1000
        )
        assert row.locator("progress").get_attribute("value") == "100"
        expect(row.locator('[data-role="summary"]')).to_contain_text(" mm")
        page.screenshot(path=str(SCREENSHOTS / "upload-done.png"), full_page=True)

        row.locator("a").click()
        headline = page.locator('[data-role="headline"]')
        expect(headline).to_contain_text("Head circumference:")
        measured = float(headline.inner_text().split(":")[1].split("mm")[0])
        assert measured == pytest.approx(image.head_circumference_mm, abs=6.0)
        overlay = page.locator('img[alt="overlay.png"]')
        expect(overlay).to_be_visible()
        assert overlay.evaluate("img => img.complete && img.naturalWidth") == 800
        expect(page.locator('[data-role="centile"]')).to_contain_text(
            "centile of the INTERGROWTH-21st standard"
        )
        expect(page.locator(".growth-chart a.measurement.highlighted circle")).to_be_visible()
        page.screenshot(path=str(SCREENSHOTS / "job-result.png"), full_page=True)
        assert page.locator("text=hc18-unet").count() >= 1  # the job names the model it used

        page.goto(f"{site}/models")
        expect(page.locator("#model-hc18-unet > h2")).to_contain_text("hc18-unet")
        expect(page.locator("#model-hc18-unet .model-card h1").first).to_contain_text("hc18-unet")

        # Deleting a subject asks first (confirm.js, from the form's data-confirm); the name is
        # shown as text. Dismissed, nothing happens.
        page.goto(f"{site}/subjects/{subject_id}")
        expect(page.locator(".growth-chart polyline.centile")).to_have_count(5)
        expect(page.locator(".growth-chart a.measurement")).to_have_count(1)
        page.screenshot(path=str(SCREENSHOTS / "growth-chart.png"), full_page=True)
        dialogs = []
        page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.click("button.danger")
        assert dialogs == [
            "Delete Ann'); alert('xss'); ('? It disappears from your lists; its data is kept for "
            "review."
        ]
        expect(page.locator("h1")).to_have_text("Ann'); alert('xss'); ('")
        assert not [text for text in console if "Content Security Policy" in text], console
        browser.close()
