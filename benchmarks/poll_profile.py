"""Where one status poll's time goes, inside the app: queries, response size, profile.

    python -m benchmarks.poll_profile [--polls 2000] [--top 25]

The app as production builds it (``SCANQUEUE_ENV=production``, throwaway secrets) on a fresh
Postgres database seeded like ``benchmarks.polls`` (a personal token, 20 perimeter jobs), driven
by Flask's test client in this one process, so no server or network is in the numbers. Prints
the statements each poll runs (counted with SQLAlchemy's ``before_cursor_execute`` event), the
body size, the mean time per poll, the time of the process's first upload and of the next ones
(their jobs are enqueued in the benchmark's Redis database and never run), and cProfile's
functions by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import itertools
import json
import pstats
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.polls import MASK, MASK_SPACING_MM, bench_env, seed
from core.database import db
from tests.conftest import fresh_postgres_database
from tests.query_counter import statements_sent
from webapp import create_app
from webapp.warm_up import warm_up

# Uploads timed after the polls: the first is cold (the arbiter's warm-up covers the poll only).
UPLOADS = 6


def upload_form() -> dict[str, object]:
    """The form of one perimeter job on the HC18 mask, as the locust file's clients send it."""
    params = json.dumps({"pixel_spacing_mm": MASK_SPACING_MM})
    files = (io.BytesIO(MASK.read_bytes()), MASK.name, "image/png")
    return {"type": "perimeter", "params": params, "files": files}


def main() -> None:
    """Seed, poll, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="scanqueue-poll-profile-"))
    with fresh_postgres_database() as database_url:
        env = bench_env(scratch, database_url)
        token, jobs = seed(env)
        keys = ("SCANQUEUE_ENV", "SECRET_KEY", "PUBLIC_URL", "DATABASE_URL", "REDIS_URL")
        app = create_app({key: env[key] for key in (*keys, "MEDIA_ROOT")})
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        warm_up(app)  # as gunicorn's arbiter does before it forks
        for job in jobs:  # and this process's first polls: its connections
            client.get(f"/api/v1/jobs/{job}", headers=headers)
        etag = client.get(f"/api/v1/jobs/{jobs[0]}", headers=headers).headers.get("ETag", "")
        polls = {
            "a queued job": (jobs[0], {}),
            "a succeeded job": (jobs[-1], {}),
            "a queued job, If-None-Match its ETag": (jobs[0], {"If-None-Match": etag}),
        }
        for name, (job, extra) in polls.items():
            with statements_sent() as statements:
                response = client.get(f"/api/v1/jobs/{job}", headers={**headers, **extra})
            print(f"\npoll of {name}: HTTP {response.status_code}, {len(response.data)} bytes, "
                  f"{len(statements)} statements:")  # fmt: skip
            for statement in statements:
                print(f"  {statement[:150]}")
        for name, extra in (("plain", {}), ("conditional (all 304)", {"If-None-Match": etag})):
            started = time.perf_counter()
            for _ in range(args.polls):
                client.get(f"/api/v1/jobs/{jobs[0]}", headers={**headers, **extra})
            each_ms = 1000 * (time.perf_counter() - started) / args.polls
            print(f"\n{args.polls} {name} polls of a queued job: {each_ms:.2f} ms each")
        upload_ms = []
        for _ in range(UPLOADS):
            started = time.perf_counter()
            response = client.post("/api/v1/jobs", headers=headers, data=upload_form())
            upload_ms.append(1000 * (time.perf_counter() - started))
            assert response.status_code == 202, response.data
        first, later = upload_ms[0], upload_ms[1:]
        print(f"\nuploads (POST /api/v1/jobs, a perimeter job, enqueued): the first {first:.1f} "
              f"ms, the next {len(later)} median {statistics.median(later):.1f} ms")  # fmt: skip
        profile = cProfile.Profile()
        started = time.perf_counter()
        profile.enable()
        for job in itertools.islice(itertools.cycle(jobs), args.polls):
            client.get(f"/api/v1/jobs/{job}", headers=headers)
        profile.disable()
        elapsed = time.perf_counter() - started
        print(f"\n{args.polls} polls: {1000 * elapsed / args.polls:.2f} ms each (profiled)\n")
        pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)
        with app.app_context():
            db.engine.dispose()


if __name__ == "__main__":
    main()
