"""Load on the job API as clients make it: status polls above all (locust).

    SCANQUEUE_TOKEN=sq_... SCANQUEUE_POLL_JOBS=<id>,<id> \\
        locust -f benchmarks/locustfile.py --host http://127.0.0.1:5000

``python -m benchmarks --polls`` runs it headless against a production gunicorn on Postgres and
prints the table; run by hand it opens locust's web page. Authentication is a personal API token
(``SCANQUEUE_TOKEN``, made on the website's API tokens page).

- ``StatusPoller``: polls existing jobs (``SCANQUEUE_POLL_JOBS``) at ``SCANQUEUE_POLL_RATE``
  requests per second per user, so users x rate is the offered load. With
  ``SCANQUEUE_CONDITIONAL=1`` it sends the job's last ``ETag`` as ``If-None-Match`` (as a
  polling client should); otherwise every poll asks for the whole job.
- ``ScanUser`` (the realistic mix): uploads a real HC18 mask from tests/data as a ``perimeter``
  job, polls it waiting ``Retry-After`` between polls (conditionally), fetches every artifact
  once it succeeded, then rests a few seconds. ``SCANQUEUE_SCAN_USERS`` of them (default 0).
  A worker must consume the ``cpu`` queue for its jobs to finish.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

from locust import FastHttpUser, HttpUser, between, task

MASK = (
    Path(__file__).resolve().parent.parent
    / "tests"
    / "data"
    / "hc18"
    / "images"
    / "000_HC_Mask.png"
)
# HC18's 000_HC.png is 0.0691 mm per pixel (tests/data/hc18/training_set_pixel_size_and_HC.csv).
MASK_PARAMS = json.dumps({"pixel_spacing_mm": 0.0691})
FINAL = frozenset({"succeeded", "failed", "cancelled"})
POLL_NAME = "GET /api/v1/jobs/<id>"
# A job that is not final after this long is abandoned (the worker is down or overloaded).
JOB_DEADLINE_SECONDS = 120.0


def _token_header() -> dict[str, str]:
    return {"Authorization": f"Bearer {os.environ['SCANQUEUE_TOKEN']}"}


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "0") not in {"", "0", "false", "no"}


POLL_RATE = float(os.environ.get("SCANQUEUE_POLL_RATE", "10"))
POLL_PERIOD = 1 / POLL_RATE


class StatusPoller(FastHttpUser):
    """Polls a fixed set of jobs at a constant rate: the polls-per-second measurement."""

    def on_start(self) -> None:
        """Read the jobs to poll, remember no ETag yet, and start at a random point of the
        polling period.

        Independent clients poll out of step, each on its own clock. locust's
        ``constant_throughput`` cannot give that: it paces each user from the moment the user
        was created, so a random first sleep is undone by the second poll, and users created in
        one spawn batch poll together for the whole run (tests/benchmarks/test_locustfile.py:
        with it, 20 users created together sent their second polls within 1 ms). Here each user
        keeps its own schedule instead: a random first poll time, then one period after the
        previous one.
        """
        self.jobs = [job for job in os.environ["SCANQUEUE_POLL_JOBS"].split(",") if job]
        self.conditional = _env_flag("SCANQUEUE_CONDITIONAL")
        self.etags: dict[str, str] = {}
        self.headers = _token_header()
        self.next_poll_at = time.perf_counter() + random.uniform(0, POLL_PERIOD)
        time.sleep(self.next_poll_at - time.perf_counter())  # gevent's sleep under locust

    def wait_time(self) -> float:
        """Seconds until this user's next poll: one period after its previous one; when a slow
        answer has made it late, at once, and its schedule goes on from then (no catching up with
        a burst of the polls it missed, as ``constant_throughput``)."""
        self.next_poll_at = max(self.next_poll_at + POLL_PERIOD, time.perf_counter())
        return max(0.0, self.next_poll_at - time.perf_counter())

    @task
    def poll(self) -> None:
        """GET one job's status, conditionally when asked to."""
        job = random.choice(self.jobs)
        headers = dict(self.headers)
        if self.conditional and job in self.etags:
            headers["If-None-Match"] = self.etags[job]
        with self.client.get(
            f"/api/v1/jobs/{job}", headers=headers, name=POLL_NAME, catch_response=True
        ) as response:
            if response.status_code not in (200, 304):
                response.failure(f"HTTP {response.status_code}")
                return
            if etag := response.headers.get("ETag"):
                self.etags[job] = etag


class ScanUser(HttpUser):
    """Upload, poll honouring Retry-After and the ETag, fetch the artifacts: one client's job.

    The requests-based client, for its multipart uploads (locust's fast client has none).
    """

    fixed_count = int(os.environ.get("SCANQUEUE_SCAN_USERS", "0"))
    wait_time = between(2, 5)

    def on_start(self) -> None:
        """The token and the file every job uploads."""
        self.headers = _token_header()
        self.mask = MASK.read_bytes()

    @task
    def scan(self) -> None:
        """One job from upload to its artifacts."""
        with self.client.post(
            "/api/v1/jobs",
            headers=self.headers,
            data={"type": "perimeter", "params": MASK_PARAMS},
            files={"files": ("mask.png", self.mask, "image/png")},
            name="POST /api/v1/jobs",
            catch_response=True,
        ) as response:
            if response.status_code != 202:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
                return
            job = response.json()
            retry_after = float(response.headers.get("Retry-After", "1"))
        etag = None
        deadline = time.monotonic() + JOB_DEADLINE_SECONDS
        while job["status"] not in FINAL and time.monotonic() < deadline:
            time.sleep(retry_after)
            headers = dict(self.headers)
            if etag:
                headers["If-None-Match"] = etag
            with self.client.get(
                job["url"], headers=headers, name=POLL_NAME, catch_response=True
            ) as response:
                if response.status_code == 200:
                    job = response.json()
                elif response.status_code != 304:
                    response.failure(f"HTTP {response.status_code}")
                    return
                etag = response.headers.get("ETag", etag)
                retry_after = float(response.headers.get("Retry-After", retry_after))
        for artifact in job.get("artifacts", []) if job["status"] == "succeeded" else []:
            self.client.get(
                artifact["url"], headers=self.headers, name="GET /api/v1/jobs/<id>/artifacts/<name>"
            )
