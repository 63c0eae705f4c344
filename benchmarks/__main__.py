"""Latency and memory of every job type, in-process and end to end.

    make bench            (or: python -m benchmarks --jobs 30 --series 5)
    python -m benchmarks --memory     (only the peak memory table, benchmarks/memory.py)
    python -m benchmarks --polls      (only the status polls table, benchmarks/polls.py: locust
                                       against the production gunicorn on Postgres)
    python -m benchmarks --scale-out  (only the scale-out table, benchmarks/scale_out.py:
                                       1, 2 and 4 worker nodes on Postgres; about a minute)

Faults and hostile input have modules of their own (real processes, minutes; `make bench-faults`
runs the first two): ``python -m benchmarks.worker_faults``, ``python -m
benchmarks.hostile_uploads``, ``python -m benchmarks.database_outage``, ``python -m
benchmarks.account_answers``.

Perimeter and head circumference run on HC18 images; face extraction and sequence inference on
the public-domain astronaut portrait from scikit-image, shifted and rescaled per photo.

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

from benchmarks.measures import percentiles, rss_mb
from benchmarks.memory import memory_table
from benchmarks.polls import poll_table
from benchmarks.scale_out import scale_out_table
from core.config import PROJECT_ROOT, load_settings
from core.database import db
from core.records import User, utcnow
from lab.hc18 import list_images
from models.serving import classification_model, segmentation_model
from pipelines.classification import classify_images
from pipelines.head_circumference import measure_head
from pipelines.perimeter import perimeter_pipeline
from pipelines.segmentation import segmentation_pipeline
from webapp import create_app
from workers.launch import start_worker, stop_worker

HC18_DIR = Path(os.environ.get("HC18_DIR", PROJECT_ROOT.parent / "shared" / "datasets" / "hc18"))
BENCH_REDIS_DB = 14
POLL_SECONDS = 0.005
EMAIL, PASSWORD = "bench@example.org", "bench-password"


def time_each(items: list[Path], run: Callable[[Path], object]) -> list[float]:
    """Milliseconds each call took (after one untimed warm-up call)."""
    run(items[0])
    timings = []
    for item in items:
        started = time.perf_counter()
        run(item)
        timings.append(1000 * (time.perf_counter() - started))
    return timings


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def paths_list(paths: Path | list[Path]) -> list[Path]:
    """One path or several, as a list."""
    return paths if isinstance(paths, list) else [paths]


def bench_database(env: dict[str, str]) -> None:
    """Migrate the database at env's DATABASE_URL and add the benchmark's confirmed user."""
    app = create_app({key: env[key] for key in ("DATABASE_URL", "REDIS_URL", "MEDIA_ROOT")})
    with app.app_context():
        upgrade()
        user = User(email=EMAIL, email_confirmed_at=utcnow())
        user.set_password(PASSWORD)
        db.session.add(user)
        db.session.commit()
        db.engine.dispose()


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

    def job_request(
        self, job_type: str, files: list[tuple[bytes, str]], params: dict
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers of a job submission: (content, filename) pairs as form data."""
        boundary = uuid.uuid4().hex
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="type"\r\n\r\n{job_type}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="params"\r\n\r\n'
            f"{json.dumps(params)}\r\n"
        ).encode()
        for content, filename in files:
            body += (
                (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
                    f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                ).encode()
                + content
                + b"\r\n"
            )
        body += f"--{boundary}--\r\n".encode()
        return body, {**self.auth, "Content-Type": f"multipart/form-data; boundary={boundary}"}

    def run_job(self, job_type: str, paths: Path | list[Path], params: dict) -> dict:
        """Submit files as multipart form data and poll the job until it is final."""
        files = [(path.read_bytes(), path.name) for path in paths_list(paths)]
        body, headers = self.job_request(job_type, files, params)
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


def face_photos(folder: Path, count: int, size: int = 640) -> list[Path]:
    """JPEG portraits (the astronaut), each shifted and rescaled a little: one face per photo."""
    from PIL import Image
    from skimage import data

    portrait = Image.fromarray(data.astronaut())
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        left, top = rng.integers(0, 40, size=2)
        photo = portrait.crop((left, top, left + 460, top + 460)).resize((size, size))
        path = folder / f"photo{index:02d}.jpg"
        photo.save(path, quality=90)
        paths.append(path)
    return paths


SERIES_LENGTHS = (5, 15, 30)
FACE_BATCH = 8


def face_timings(photos: list[Path], series: int) -> tuple[dict[str, list[float]], str]:
    """In-process timings of face extraction (one photo, batch) and the sequence model."""
    from models.face_detector import face_detector
    from models.serving import sequence_model
    from pipelines.faces import extract_faces
    from pipelines.sequence import Frame, predict_trend

    detector = face_detector()
    timings: dict[str, list[float]] = {
        "face_extraction: 1 photo per call": time_each(
            photos, lambda photo: extract_faces(detector.detector, [photo], {}, _ignore)
        )
    }
    batch_ms = time_each(
        [photos[i : i + FACE_BATCH] for i in range(0, len(photos) - FACE_BATCH + 1, FACE_BATCH)],
        lambda batch: extract_faces(detector.detector, batch, {}, _ignore),
    )
    timings[f"face_extraction: per photo, {FACE_BATCH} per call"] = [
        ms / FACE_BATCH for ms in batch_ms
    ]
    crops_dir = Path(tempfile.mkdtemp(prefix="scanqueue-crops-"))
    crop = crops_dir / "crop.png"
    crop.write_bytes(extract_faces(detector.detector, photos[:1], {}, _ignore).artifacts[0].data)
    loaded = sequence_model(load_settings())
    for length in SERIES_LENGTHS:
        frames = [Frame(index, None, crop) for index in range(length)]
        timings[f"sequence model: {length} frames"] = time_each(
            [frames] * series,
            lambda series_frames: predict_trend(
                series_frames, loaded.model, loaded.manifest, _ignore
            ),
        )
    return timings, f"{loaded.manifest.name} {loaded.manifest.version}"


def _ignore(_percent: int) -> None:
    """A progress callback for in-process runs."""


def print_rows(rows: list[tuple[str, float, float]]) -> None:
    """The results as a Markdown table."""
    print(f"| {'measurement':<56} | {'p50 ms':>8} | {'p95 ms':>8} |")
    print(f"|{'-' * 58}|{'-' * 10}|{'-' * 10}|")
    for name, p50, p95 in rows:
        print(f"| {name:<56} | {p50:>8.1f} | {p95:>8.1f} |")


def main() -> None:
    """Run the benchmarks and print the table."""
    parser = argparse.ArgumentParser(description="ScanQueue benchmarks")
    parser.add_argument("--jobs", type=int, default=30, help="images per measurement")
    parser.add_argument("--series", type=int, default=5, help="series per sequence length")
    parser.add_argument(
        "--memory", action="store_true", help="only peak memory per job type vs its budget"
    )
    parser.add_argument("--polls", action="store_true", help="only the status polls table")
    parser.add_argument("--poll-rate", type=float, default=200, help="offered polls per second")
    parser.add_argument("--poll-seconds", type=float, default=30, help="per polls scenario")
    parser.add_argument(
        "--scale-out", action="store_true", help="only the drain of a backlog by 1, 2, 4 nodes"
    )
    args = parser.parse_args()
    if args.memory:
        sys.exit(0 if memory_table() else 1)
    if args.polls:
        poll_table(args.poll_rate, args.poll_seconds)
        return
    if args.scale_out:
        scale_out_table()
        return
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
        manifest = loaded.manifest
        return measure_head(
            image, mask_path, params, boundary_offset_px=manifest.boundary_offset_px,
            fit=manifest.ellipse_fit,
        )  # fmt: skip

    classifier = classification_model(settings)

    def classification(image: Path) -> object:
        return classify_images(
            [image], classifier.model, classifier.manifest, 0.6, lambda _percent: None
        )

    in_process = {
        "perimeter": time_each(masks, perimeter),
        "head_circumference": time_each(images, head_circumference),
        "classification": time_each(images, classification),
    }
    photos = face_photos(scratch, max(SERIES_LENGTHS))
    face_in_process, sequence_model_name = face_timings(photos, args.series)

    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{scratch / 'bench.db'}",
        "REDIS_URL": redis_url,
        "MEDIA_ROOT": str(scratch / "media"),
    }
    bench_database(env)
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
            "classification": time_each(images, lambda i: client.run_job("classification", i, {})),
        }
        face_end_to_end = {
            "face_extraction: 1 photo, HTTP API -> worker -> succeeded": time_each(
                photos, lambda photo: client.run_job("face_extraction", photo, {})
            )
        }
        for length in SERIES_LENGTHS:
            face_end_to_end[f"sequence_inference: {length} photos, API -> chain -> done"] = (
                time_each(
                    [photos[:length]] * args.series,
                    lambda series: client.run_job("sequence_inference", series, {}),
                )
            )
        worker_rss, web_rss = rss_mb(worker.pid), rss_mb(web.pid)
    finally:
        stop_worker(worker)
        web.terminate()
        web.wait(timeout=30)

    print(
        f"\nScanQueue benchmark: {len(images)} HC18 images/masks (800x540), {len(photos)} "
        f"portrait photos (640x640), {args.series} series per length; {os.cpu_count()} CPUs, "
        f"no GPU, Python {platform.python_version()}; models {loaded.manifest.name} "
        f"{loaded.manifest.version}, {sequence_model_name}, {classifier.manifest.name} "
        f"{classifier.manifest.version}, mtcnn; gunicorn 1 process + 1 "
        f"worker process (both queues), SQLite + Redis; client polls every "
        f"{POLL_SECONDS * 1000:.0f} ms\n"
    )
    rows: list[tuple[str, float, float]] = []
    for job_type in ("perimeter", "head_circumference", "classification"):
        p50_in, p95_in = percentiles(in_process[job_type])
        p50_e2e, p95_e2e = percentiles(end_to_end[job_type])
        rows += [
            (f"{job_type}: pipeline in-process", p50_in, p95_in),
            (f"{job_type}: HTTP API -> worker -> succeeded", p50_e2e, p95_e2e),
            (f"{job_type}: platform overhead (difference)", p50_e2e - p50_in, p95_e2e - p95_in),
        ]
    for name, samples in {**face_in_process, **face_end_to_end}.items():
        rows.append((name, *percentiles(samples)))
    print_rows(rows)
    print(f"\nworker resident memory, model loaded (main + pool process): {worker_rss:.0f} MB")
    print(f"web resident memory (gunicorn master + 1 worker): {web_rss:.0f} MB")
    memory_table()
    poll_table(args.poll_rate, args.poll_seconds)
    scale_out_table()


if __name__ == "__main__":
    main()
