"""Measure the perimeter job in-process and end to end through the API and a real worker.

    make bench            (or: python -m benchmarks --jobs 30)

The end-to-end run uses a temporary SQLite database and media folder, the Redis at REDIS_URL
(database 14) and one worker process, the single-machine setup of ``make run``.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import redis
from flask import Flask
from flask_migrate import upgrade
from PIL import Image
from skimage.draw import ellipse

from pipelines.perimeter import perimeter_pipeline
from webapp import create_app
from webapp.config import PROJECT_ROOT
from webapp.extensions import db
from webapp.records import User
from workers.launch import start_worker, stop_worker

HC18_DIR = Path(os.environ.get("HC18_DIR", PROJECT_ROOT.parent / "shared" / "datasets" / "hc18"))
BENCH_REDIS_DB = 14
POLL_SECONDS = 0.005


def sample_masks(count: int, folder: Path) -> tuple[list[Path], str]:
    """HC18 masks if the dataset is present, else synthetic 800x540 ellipses; and which."""
    if HC18_DIR.is_dir():
        return sorted((HC18_DIR / "images").glob("*_HC_Mask.png"))[:count], "HC18 masks 800x540"
    paths = []
    for index in range(count):
        mask = np.zeros((540, 800), dtype=np.uint8)
        rr, cc = ellipse(270, 400, 150 + index % 40, 230, shape=mask.shape, rotation=index / 10)
        mask[rr, cc] = 255
        paths.append(folder / f"synthetic-{index}.png")
        Image.fromarray(mask).save(paths[-1])
    return paths, "synthetic ellipses 800x540"


def percentiles(samples_ms: list[float]) -> tuple[float, float]:
    """(p50, p95) of the samples."""
    return float(np.percentile(samples_ms, 50)), float(np.percentile(samples_ms, 95))


def time_each(items: list[Path], run: Callable[[Path], object]) -> list[float]:
    """Milliseconds each call took."""
    timings = []
    for item in items:
        started = time.perf_counter()
        run(item)
        timings.append(1000 * (time.perf_counter() - started))
    return timings


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the worker's pool), in MB."""
    total_kb = 0
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for each in [str(pid), *children]:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total_kb += int(line.split()[1])
    return total_kb / 1024


def bench_app(workdir: Path, redis_url: str) -> Flask:
    """An app on a fresh SQLite database with one user."""
    app = create_app(
        {
            "DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
            "REDIS_URL": redis_url,
            "MEDIA_ROOT": workdir / "media",
        }
    )
    with app.app_context():
        upgrade()
        user = User(email="bench@example.org")
        user.set_password("bench-password")
        db.session.add(user)
        db.session.commit()
    return app


def end_to_end(app: Flask, masks: list[Path]) -> list[float]:
    """Submit each mask through the API and poll until final; milliseconds per job."""
    client = app.test_client()
    basic = base64.b64encode(b"bench@example.org:bench-password").decode()
    token = client.post("/api/v1/tokens", headers={"Authorization": f"Basic {basic}"}).json
    headers = {"Authorization": f"Bearer {token['token']}"}

    def run(mask: Path) -> None:
        response = client.post(
            "/api/v1/jobs",
            headers=headers,
            content_type="multipart/form-data",
            data={
                "type": "perimeter",
                "params": json.dumps({"pixel_spacing_mm": 0.1}),
                "files": [(io.BytesIO(mask.read_bytes()), mask.name)],
            },
        )
        assert response.status_code == 202, response.json
        while True:
            job = client.get(response.headers["Location"], headers=headers).json
            if job["status"] in {"succeeded", "failed", "cancelled"}:
                assert job["status"] == "succeeded", job
                return
            time.sleep(POLL_SECONDS)

    run(masks[0])  # warm-up: first connections and imports
    return time_each(masks, run)


def main() -> None:
    """Run the benchmarks and print the table."""
    parser = argparse.ArgumentParser(description="ScanQueue benchmarks")
    parser.add_argument("--jobs", type=int, default=30, help="images per measurement")
    args = parser.parse_args()
    parts = urlsplit(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    redis_url = urlunsplit((parts.scheme, parts.netloc, f"/{BENCH_REDIS_DB}", "", ""))
    redis.Redis.from_url(redis_url).flushdb()

    with tempfile.TemporaryDirectory(prefix="scanqueue-bench-") as tmp:
        workdir = Path(tmp)
        masks, source = sample_masks(args.jobs, workdir)
        perimeter_pipeline([masks[0]], {"pixel_spacing_mm": 0.1})
        in_process = time_each(
            masks, lambda mask: perimeter_pipeline([mask], {"pixel_spacing_mm": 0.1})
        )

        app = bench_app(workdir, redis_url)
        env = {
            **os.environ,
            "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
            "REDIS_URL": redis_url,
            "MEDIA_ROOT": str(workdir / "media"),
        }
        worker = start_worker(env, workdir / "worker.log", concurrency=1)
        try:
            through_api = end_to_end(app, masks)
            worker_rss = rss_mb(worker.pid)
        finally:
            stop_worker(worker)

    p50_in, p95_in = percentiles(in_process)
    p50_e2e, p95_e2e = percentiles(through_api)
    rows = [
        ("perimeter pipeline, in-process", f"{p50_in:.1f}", f"{p95_in:.1f}"),
        ("perimeter job, API -> worker -> done", f"{p50_e2e:.1f}", f"{p95_e2e:.1f}"),
        ("platform overhead (difference)", f"{p50_e2e - p50_in:.1f}", f"{p95_e2e - p95_in:.1f}"),
    ]
    print(
        f"\nScanQueue benchmark: {len(masks)} {source}; {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, SQLite + Redis, 1 worker process, "
        f"client polls every {POLL_SECONDS * 1000:.0f} ms\n"
    )
    print(f"| {'measurement':<40} | {'p50 ms':>8} | {'p95 ms':>8} |")
    print(f"|{'-' * 42}|{'-' * 10}|{'-' * 10}|")
    for name, p50, p95 in rows:
        print(f"| {name:<40} | {p50:>8} | {p95:>8} |")
    print(f"\nworker resident memory (main + pool process): {worker_rss:.0f} MB")
    print(f"mean in-process {statistics.mean(in_process):.1f} ms over {len(in_process)} images")


if __name__ == "__main__":
    main()
