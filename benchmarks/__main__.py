"""Latency and memory of the perimeter and head circumference jobs, in-process and end to end.

    make bench            (or: python -m benchmarks --jobs 30)

End to end means a real HTTP server (gunicorn, one process) and one real worker process (both
queues, concurrency 1) on a temporary SQLite database and media folder and the Redis at REDIS_URL
(database 14): the single-machine setup of ``make run``. The client polls every 5 ms.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import redis
from flask_migrate import upgrade

from models.hc18 import list_images
from models.serving import segmentation_model
from pipelines.head_circumference import measure_head
from pipelines.perimeter import perimeter_pipeline
from pipelines.segmentation import segmentation_pipeline
from webapp import create_app
from webapp.config import PROJECT_ROOT, load_settings
from webapp.extensions import db
from webapp.records import User
from workers.launch import start_worker, stop_worker

HC18_DIR = Path(os.environ.get("HC18_DIR", PROJECT_ROOT.parent / "shared" / "datasets" / "hc18"))
BENCH_REDIS_DB = 14
POLL_SECONDS = 0.005
EMAIL, PASSWORD = "bench@example.org", "bench-password"


def percentiles(samples_ms: list[float]) -> tuple[float, float]:
    """(p50, p95) of the samples."""
    return float(np.percentile(samples_ms, 50)), float(np.percentile(samples_ms, 95))


def time_each(items: list[Path], run: Callable[[Path], object]) -> list[float]:
    """Milliseconds each call took (after one untimed warm-up call)."""
    run(items[0])
    timings = []
    for item in items:
        started = time.perf_counter()
        run(item)
        timings.append(1000 * (time.perf_counter() - started))
    return timings


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its direct children, in MB."""
    total_kb = 0
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for each in [str(pid), *children]:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total_kb += int(line.split()[1])
    return total_kb / 1024


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ApiClient:
    """Just enough of an HTTP client for the benchmark (standard library only)."""

    def __init__(self, base: str) -> None:
        self.base = base
        basic = base64.b64encode(f"{EMAIL}:{PASSWORD}".encode()).decode()
        token = self.call("POST", "/api/v1/tokens", headers={"Authorization": f"Basic {basic}"})
        self.auth = {"Authorization": f"Bearer {token['token']}"}

    def call(self, method: str, path: str, body: bytes | None = None, headers=None) -> dict:
        """One request; the JSON answer."""
        request = urllib.request.Request(
            self.base + path, data=body, method=method, headers=headers or {}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def run_job(self, job_type: str, path: Path, params: dict) -> dict:
        """Submit one file as multipart form data and poll the job until it is final."""
        boundary = uuid.uuid4().hex
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="type"\r\n\r\n{job_type}\r\n',
            f'--{boundary}\r\nContent-Disposition: form-data; name="params"\r\n\r\n'
            f"{json.dumps(params)}\r\n",
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n',
        ]
        body = "".join(parts).encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        headers = {**self.auth, "Content-Type": f"multipart/form-data; boundary={boundary}"}
        job = self.call("POST", "/api/v1/jobs", body, headers)
        while job["status"] not in {"succeeded", "failed", "cancelled"}:
            time.sleep(POLL_SECONDS)
            job = self.call("GET", job["url"], headers=self.auth)
        if job["status"] != "succeeded":
            raise RuntimeError(f"benchmark job did not succeed: {job}")
        return job


def wait_for_http(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Wait until the server answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("web server exited early")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


def hc18_samples(count: int) -> tuple[list[Path], list[Path], dict[str, float]]:
    """Masks, images and their pixel sizes from the dataset (first ``count`` by name)."""
    sample = sorted(list_images(HC18_DIR), key=lambda image: image.name)[:count]
    spacing = {image.name: image.pixel_size_mm for image in sample}
    return [i.mask_path for i in sample], [i.image_path for i in sample], spacing


def main() -> None:
    """Run the benchmarks and print the table."""
    parser = argparse.ArgumentParser(description="ScanQueue benchmarks")
    parser.add_argument("--jobs", type=int, default=30, help="images per measurement")
    args = parser.parse_args()
    if not HC18_DIR.is_dir():
        sys.exit(f"the benchmark uses HC18 images; none at {HC18_DIR} (set HC18_DIR)")
    parts = urlsplit(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    redis_url = urlunsplit((parts.scheme, parts.netloc, f"/{BENCH_REDIS_DB}", "", ""))
    redis.Redis.from_url(redis_url).flushdb()
    masks, images, spacing = hc18_samples(args.jobs)
    settings = load_settings()

    def perimeter(mask: Path) -> object:
        return perimeter_pipeline([mask], {"pixel_spacing_mm": 0.1})

    loaded = segmentation_model(settings)
    scratch = Path(tempfile.mkdtemp(prefix="scanqueue-bench-"))

    def head_circumference(image: Path) -> object:
        params = {"pixel_spacing_mm": spacing[image.name]}
        segmented = segmentation_pipeline(
            [image], params, model=loaded.model, manifest=loaded.manifest
        )
        mask_path = scratch / "mask.png"
        mask_path.write_bytes(segmented.artifacts[0].data)
        return measure_head(
            image, mask_path, params, boundary_offset_px=loaded.manifest.boundary_offset_px
        )

    in_process = {
        "perimeter": time_each(masks, perimeter),
        "head_circumference": time_each(images, head_circumference),
    }

    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{scratch / 'bench.db'}",
        "REDIS_URL": redis_url,
        "MEDIA_ROOT": str(scratch / "media"),
    }
    app = create_app({key: env[key] for key in ("DATABASE_URL", "REDIS_URL", "MEDIA_ROOT")})
    with app.app_context():
        upgrade()
        user = User(email=EMAIL)
        user.set_password(PASSWORD)
        db.session.add(user)
        db.session.commit()
    port = free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}",
         "webapp:create_app()"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    worker = start_worker(env, scratch / "worker.log", concurrency=1)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", web)
        client = ApiClient(f"http://127.0.0.1:{port}")
        end_to_end = {
            "perimeter": time_each(
                masks, lambda m: client.run_job("perimeter", m, {"pixel_spacing_mm": 0.1})
            ),
            "head_circumference": time_each(
                images,
                lambda i: client.run_job(
                    "head_circumference", i, {"pixel_spacing_mm": spacing[i.name]}
                ),
            ),
        }
        worker_rss, web_rss = rss_mb(worker.pid), rss_mb(web.pid)
    finally:
        stop_worker(worker)
        web.terminate()
        web.wait(timeout=30)

    print(
        f"\nScanQueue benchmark: {len(images)} HC18 images/masks (800x540); {os.cpu_count()} CPUs,"
        f" no GPU, Python {platform.python_version()}; model {loaded.manifest.name} "
        f"{loaded.manifest.version}; gunicorn 1 process + 1 worker process (both queues), "
        f"SQLite + Redis; client polls every {POLL_SECONDS * 1000:.0f} ms\n"
    )
    print(f"| {'measurement':<52} | {'p50 ms':>8} | {'p95 ms':>8} |")
    print(f"|{'-' * 54}|{'-' * 10}|{'-' * 10}|")
    for job_type in ("perimeter", "head_circumference"):
        p50_in, p95_in = percentiles(in_process[job_type])
        p50_e2e, p95_e2e = percentiles(end_to_end[job_type])
        for name, p50, p95 in (
            (f"{job_type}: pipeline in-process", p50_in, p95_in),
            (f"{job_type}: HTTP API -> worker -> succeeded", p50_e2e, p95_e2e),
            (f"{job_type}: platform overhead (difference)", p50_e2e - p50_in, p95_e2e - p95_in),
        ):
            print(f"| {name:<52} | {p50:>8.1f} | {p95:>8.1f} |")
    print(f"\nworker resident memory, model loaded (main + pool process): {worker_rss:.0f} MB")
    print(f"web resident memory (gunicorn master + 1 worker): {web_rss:.0f} MB")


if __name__ == "__main__":
    main()
