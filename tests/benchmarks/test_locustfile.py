"""The locust file's pollers poll out of step, as independent clients do.

locust monkey-patches the process with gevent when imported, so the users run in a child process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from core.config import PROJECT_ROOT

POLL_RATE = 5.0
USERS = 20

# Users created in one batch, as locust's spawner makes them, each starting in its own greenlet;
# after its first poll (none is sent: the task is skipped) each asks when its next poll is due.
_SCRIPT = f"""
import json, time
import gevent
from locust.env import Environment
from benchmarks.locustfile import StatusPoller

StatusPoller.host = "http://127.0.0.1:9"  # never contacted
environment = Environment(user_classes=[StatusPoller])
users = [StatusPoller(environment) for _ in range({USERS})]
schedule = {{}}

def first_two_polls(index, user):
    user.on_start()
    second = time.perf_counter() + user.wait_time()
    gevent.sleep(second - time.perf_counter())
    third = time.perf_counter() + user.wait_time()
    schedule[index] = (second, third)

gevent.joinall([gevent.spawn(first_two_polls, i, user) for i, user in enumerate(users)])

# A user whose poll took ten periods too long: the next poll at once, then one period
# on, not the missed ones back to back.
late = users[0]
late.next_poll_at -= 10 * (1 / {POLL_RATE})
after_late = [late.wait_time(), late.wait_time()]
print(json.dumps({{"schedule": list(schedule.values()), "after_late": after_late}}))
"""


def test_pollers_keep_their_own_random_phase() -> None:
    env = {
        **os.environ,
        "SCANQUEUE_TOKEN": "sq_unused",
        "SCANQUEUE_POLL_JOBS": "00000000-0000-0000-0000-000000000000",
        "SCANQUEUE_POLL_RATE": str(POLL_RATE),
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.splitlines()[-1])
    schedule = answer["schedule"]
    period = 1 / POLL_RATE
    seconds = [second for second, _ in schedule]
    # Spread over the period (20 uniform phases all within half of it: p < 1e-4); pacing from
    # the users' common creation time put every second poll within a few milliseconds.
    assert max(seconds) - min(seconds) > period / 2
    # And each user keeps its phase: its next poll one period after the previous.
    for second, third in schedule:
        assert abs(third - second - period) < period / 4
    at_once, then = answer["after_late"]
    assert at_once == 0.0
    assert abs(then - period) < period / 4
