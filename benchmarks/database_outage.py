"""How long after a database outage a queued job resumes, with the default retry settings.

    python -m benchmarks.database_outage --outage 60 --outage 75

A real cpu worker reaches a fresh Postgres database (TEST_DATABASE_URL, as the tests) through a
TCP proxy that is cut (connections refused and reset, as in a database restart); a perimeter job
is submitted during the outage. Reports when the job ended relative to the database's return.
With DB_RETRY_BASE_SECONDS=2 and DB_RETRY_MAX_DELAY_SECONDS=30 the tries fall at 0, 2, 6, 14,
30, 60, 90 ... s, so the wait after the return is at most 30 s, and less when a try falls just
after it. Uses the Redis at REDIS_URL, database 9.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import redis
from sqlalchemy.engine import make_url

import tests.integration.conftest as stack_helpers
from tests.builders import submit_job
from tests.conftest import POSTGRES_ADMIN_URL, redis_url_for_tests
from tests.tcp_proxy import TcpProxy

BENCH_REDIS_DB = 9


def measure(outage_seconds: float) -> tuple[float, float, str, int]:
    """(outage, seconds from the database's return to the job's end, status, retries)."""
    admin = make_url(POSTGRES_ADMIN_URL)
    proxy = TcpProxy(admin.host or "127.0.0.1", admin.port or 5432).start()

    def via_proxy(url: str) -> str:
        return make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(False)

    broker = redis_url_for_tests().rsplit("/", 1)[0] + f"/{BENCH_REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    # Poll long enough for the slowest case: the outage plus the longest retry delay.
    stack_helpers.JOB_TIMEOUT = int(outage_seconds) + 120
    with (
        tempfile.TemporaryDirectory() as scratch,
        stack_helpers.running_stack(
            Path(scratch), broker, queues="cpu", worker_database=via_proxy
        ) as stack,
        stack_helpers.signed_in(stack) as (client, headers),
    ):
        proxy.cut()
        cut = time.monotonic()
        url = submit_job(client, headers).headers["Location"]
        time.sleep(outage_seconds)
        proxy.start()
        back = time.monotonic()
        job = stack_helpers.wait_for_final(client, headers, url)
        ended = time.monotonic()
        retries = stack.log().count("database unavailable for job")
    proxy.cut()
    return back - cut, ended - back, job["status"], retries


def main() -> None:
    """Measure each outage length and print one row per outage."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", type=float, action="append", help="seconds (repeatable)")
    outages = parser.parse_args().outage or [60.0]
    rows = [measure(seconds) for seconds in outages]
    print("| outage (s) | job | retries | resumed after the database returned (s) |")
    print("|---|---|---|---|")
    for outage, resumed, status, retries in rows:
        print(f"| {outage:.0f} | {status} | {retries} | {resumed:.1f} |")


if __name__ == "__main__":
    main()
