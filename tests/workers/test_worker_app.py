"""Workers and beat run on the core app: loading the worker entry point builds no web app."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

SCRIPT = r"""
import json, sys
import workers.celery_app as entry
print(json.dumps({
    "web_modules": sorted(m for m in sys.modules if m == "webapp" or m.startswith("webapp.")),
    "blueprints": sorted(entry.flask_app.blueprints),
    "celery_is_the_apps": entry.celery is entry.flask_app.extensions["celery"],
    "beat": sorted(entry.celery.conf.beat_schedule),
    "include": list(entry.celery.conf.include),
}))
"""


def test_the_worker_entry_point_builds_no_web_app(tmp_path: Path, redis_url: str) -> None:
    env = {
        **os.environ,
        "SCANQUEUE_ENV": "testing",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}",
        "REDIS_URL": redis_url,
        "MEDIA_ROOT": str(tmp_path / "media"),
    }
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["web_modules"] == []
    assert loaded["blueprints"] == []
    assert loaded["celery_is_the_apps"] is True
    # Beat runs from this entry point too: the whole schedule is there.
    # Every job stage's task module, from the declarations, and the other task modules.
    from core.jobtypes import all_stages

    assert {stage.module for _type, stage in all_stages()} | {
        "tasks.mail",
        "scheduler.tasks",
    } == set(loaded["include"])
    assert loaded["beat"] == [
        "artifact-retention",
        "outbox-sweep",
        "outcome-followups",
        "stale-job-sweep",
    ]
