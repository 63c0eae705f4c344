"""The web process serves the whole API without importing TensorFlow, Keras, or task, worker,
beat or model code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

FORBIDDEN = (
    "tensorflow",
    "keras",
    "mtcnn",
    "skimage",
    "tasks",
    "models",
    "pipelines.perimeter",
    "workers",
    "scheduler",
)

SCRIPT = r"""
import base64, io, json, sys
from PIL import Image
from webapp import create_app
from core.database import db
from flask_migrate import upgrade

app = create_app({"SCANQUEUE_ENV": "testing", "DATABASE_URL": sys.argv[1],
                  "REDIS_URL": sys.argv[2], "MEDIA_ROOT": sys.argv[3]})
with app.app_context():
    upgrade()
    from core.records import User, utcnow
    user = User(email="web@example.org", email_confirmed_at=utcnow())
    user.set_password("password123")
    db.session.add(user); db.session.commit()
client = app.test_client()
basic = base64.b64encode(b"web@example.org:password123").decode()
token = client.post("/api/v1/tokens", headers={"Authorization": "Basic " + basic}).json["token"]
auth = {"Authorization": "Bearer " + token}
png = io.BytesIO(); Image.new("L", (32, 32), 255).save(png, "PNG")
job = client.post("/api/v1/jobs", headers=auth, content_type="multipart/form-data", data={
    "type": "perimeter", "params": json.dumps({"pixel_spacing_mm": 0.1}),
    "files": [(io.BytesIO(png.getvalue()), "m.png")]})
assert job.status_code == 202, job.get_json()
for url in ["/api/v1/jobs", job.headers["Location"], "/api/v1/openapi.json", "/healthz", "/readyz"]:
    client.get(url, headers=auth)
client.delete(job.headers["Location"], headers=auth)
print(json.dumps(sorted(sys.modules)))
"""


def test_web_process_never_imports_model_code(tmp_path: Path, redis_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, f"sqlite:///{tmp_path / 'w.db'}", redis_url, str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    modules = json.loads(result.stdout.strip().splitlines()[-1])
    assert "webapp.api.jobs" in modules  # the API really ran
    leaked = [m for m in modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert leaked == []
