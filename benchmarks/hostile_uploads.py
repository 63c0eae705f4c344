"""What a DICOM bomb costs the web and the worker: answer, seconds and peak memory.

    python -m benchmarks.hostile_uploads [--side 6000] [--frames 10] [--slow-clients 8]

Two bombs: a real Deflated Explicit VR Little Endian DICOM of ~350 kB declaring 6000x6000x10
8-bit frames (360 MB once inflated; tests/builders.py deflated_dicom), and an RLE DICOM of 4 MB
declaring 64x64 whose one segment expands to 256 MB (``--rle-runs`` 2-byte runs of 128 zeros;
tests/builders.py rle_bomb_dicom). The web side is a real
gunicorn (deploy/gunicorn.conf.py, WEB_WORKERS=1) on a temporary SQLite database and the Redis
at REDIS_URL (database 7), sent the bomb as a segmentation job over loopback; the peak resident
memory (VmHWM) of its one worker process is read from /proc before and after. The worker side is
``pipelines.scans.read_scan`` of the same file in a fresh Python process (the decode a worker
does before any pipeline), with its own VmHWM before and after.

Slow clients: N clients trickle a sign-in POST body at 10 B/s (tests/test_reverse_proxy.py's
SlowClient) while /healthz is probed every 0.25 s (a probe fails after 2 s), first against the
image's old command (one sync gunicorn worker, no proxy), then against Debian's nginx with the
committed server block (deploy/nginx) before gunicorn with deploy/gunicorn.conf.py (WEB_WORKERS=1,
WEB_THREADS=4: fewer threads than clients, so nginx alone keeps the site up). Every wait is
bounded; every process is started and stopped here, on loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from benchmarks.__main__ import ApiClient, bench_database, free_port, wait_for_http
from core.config import PROJECT_ROOT, load_settings
from tests.builders import deflated_dicom, rle_bomb_dicom
from tests.test_reverse_proxy import (
    APP,
    NGINX,
    TRICKLE_BYTES_PER_SECOND,
    app_env,
    probe_healthz,
    render_nginx_config,
    running,
    slow_clients,
)

BENCH_REDIS_DB = 7
GUNICORN_CONFIG = PROJECT_ROOT / "deploy" / "gunicorn.conf.py"
Row = tuple[str, str, str, str]


def peak_mb(pid: int | str = "self") -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def decode_report(path: str) -> None:
    """Run read_scan on one file in this process; print outcome, seconds and VmHWM as JSON."""
    from pipelines.base import PipelineError
    from pipelines.scans import read_scan

    before, started = peak_mb(), time.perf_counter()
    try:
        outcome = f"decoded {read_scan(Path(path)).pixels.shape}"
    except PipelineError as error:
        outcome = f"refused: {error.code}"
    seconds = time.perf_counter() - started
    report = {"outcome": outcome, "seconds": seconds, "before": before, "after": peak_mb()}
    print(json.dumps(report))


def worker_decode(bomb: Path, timeout: float) -> Row:
    """read_scan of the bomb in a fresh process (as a worker's pool process would)."""
    code = f"from benchmarks.hostile_uploads import decode_report; decode_report({str(bomb)!r})"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return (
        "worker: read_scan in a fresh process",
        report["outcome"],
        f"{report['seconds']:.2f}",
        f"{report['before']:.0f} -> {report['after']:.0f}",
    )


def redis_url() -> str:
    """REDIS_URL with the benchmark's database index."""
    parts = urlsplit(load_settings().REDIS_URL)
    return urlunsplit((parts.scheme, parts.netloc, f"/{BENCH_REDIS_DB}", "", ""))


def web_answer(bomb: Path, scratch: Path, timeout: float) -> Row:
    """POST the bomb to a real gunicorn; its answer, the seconds and its process's VmHWM."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{scratch / 'bench.db'}",
        "REDIS_URL": redis_url(),
        "MEDIA_ROOT": str(scratch / "media"),
        "WEB_WORKERS": "1",
    }
    bench_database(env)
    port = free_port()
    log = (scratch / "gunicorn.log").open("wb")
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG), "-b",
         f"127.0.0.1:{port}", "webapp:create_app()"],
        cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/healthz", web, timeout)
        client = ApiClient(base)  # signs in: the app is loaded and has served requests
        [worker_pid] = Path(f"/proc/{web.pid}/task/{web.pid}/children").read_text().split()
        before = peak_mb(worker_pid)
        body, headers = client.job_request("segmentation", [(bomb.read_bytes(), "bomb.dcm")], {})
        request = urllib.request.Request(f"{base}/api/v1/jobs", body, headers, method="POST")
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                answer, payload = response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            answer, payload = error.code, json.loads(error.read())
        seconds = time.perf_counter() - started
        after = peak_mb(worker_pid)
    finally:
        web.terminate()
        web.wait(timeout=40)
        log.close()
    code = (payload.get("error") or {}).get("code", payload.get("status", ""))
    return (
        "web: POST /api/v1/jobs to gunicorn (1 gthread process)",
        f"HTTP {answer} {code}",
        f"{seconds:.2f}",
        f"{before:.0f} -> {after:.0f}",
    )


def trickled(scratch: Path, redis_url: str, clients: int, seconds: float) -> list[Row]:
    """/healthz probes while slow clients trickle bodies: bare sync gunicorn, then nginx first."""
    rows = []
    web_port, front_port = free_port(), free_port()
    bare = [sys.executable, "-m", "gunicorn", "--no-control-socket"]
    bare += ["-b", f"127.0.0.1:{web_port}", APP]
    fronted = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG)]
    fronted += ["-b", f"127.0.0.1:{web_port}", APP]
    setups = {
        "gunicorn, 1 sync worker, no proxy (the old image command)": (bare, False),
        "nginx (deploy/nginx) -> gunicorn gthread, 1 process x 4 threads": (fronted, True),
    }
    for name, (gunicorn, with_nginx) in setups.items():
        folder = scratch / f"slow-{len(rows)}"
        folder.mkdir()
        env = app_env(folder, redis_url, WEB_WORKERS="1", WEB_THREADS="4")
        with ExitStack() as stack:
            stack.enter_context(
                running(gunicorn, web_port, folder / "gunicorn.log", env, ready_path="/healthz")
            )
            if with_nginx:
                config = render_nginx_config(folder, front_port, web_port)
                nginx = [str(NGINX), "-c", str(config), "-g", "daemon off;"]
                stack.enter_context(running(nginx, front_port, folder / "nginx.log", env))
            port = front_port if with_nginx else web_port
            stack.enter_context(slow_clients(port, bodies=clients))
            probes = probe_healthz(port, seconds)
        latencies = [1000 * probe for probe in probes if isinstance(probe, float)]
        failed = len(probes) - len(latencies)
        timing = (
            f"p50 {statistics.median(latencies):.0f} ms, max {max(latencies):.0f} ms"
            if latencies
            else "none answered"
        )
        rows.append((name, f"{failed} of {len(probes)} probes failed", timing))
    return rows


def main() -> None:
    """Build the bomb, measure both sides, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=6000, help="rows and columns declared")
    parser.add_argument("--frames", type=int, default=10, help="frames declared")
    parser.add_argument("--rle-runs", type=int, default=2_000_000, help="RLE bomb: 2-byte runs")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per step, at most")
    parser.add_argument("--slow-clients", type=int, default=8, help="0: skip that measurement")
    parser.add_argument("--probe-seconds", type=float, default=10, help="probing while trickled")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="scanqueue-hostile-") as folder:
        scratch = Path(folder)
        bomb, rle = scratch / "bomb.dcm", scratch / "rle.dcm"
        bomb.write_bytes(deflated_dicom(args.side, args.side, args.frames))
        rle.write_bytes(rle_bomb_dicom(args.rle_runs))
        size_kb, rle_mb = bomb.stat().st_size / 1000, rle.stat().st_size / 1e6
        rows = []
        for kind, path in (("deflated", bomb), ("RLE", rle)):
            (scratch / kind).mkdir()  # a database and media root of its own
            for side, *measured in (
                web_answer(path, scratch / kind, args.timeout),
                worker_decode(path, args.timeout),
            ):
                rows.append((f"{kind} bomb, {side}", *measured))
        if args.slow_clients:
            slow = trickled(scratch, redis_url(), args.slow_clients, args.probe_seconds)
    inflated = args.side * args.side * args.frames
    print(
        f"\nDICOM bombs: deflated, {size_kb:.0f} kB declaring {args.side}x"
        f"{args.side}x{args.frames} 8-bit frames ({inflated / 1e6:.0f} MB inflated); RLE, "
        f"{rle_mb:.1f} MB declaring 64x64 ({args.rle_runs * 128 / 1e6:.0f} MB expanded); "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}\n"
    )
    print("| side | answer | seconds | peak RSS (VmHWM) before -> after, MB |")
    print("|---|---|---:|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if args.slow_clients:
        print(
            f"\n{args.slow_clients} clients trickling a POST body at {TRICKLE_BYTES_PER_SECOND} "
            f"B/s; GET /healthz every 0.25 s for {args.probe_seconds:g} s (fails after 2 s)\n"
        )
        print("| front | /healthz probes | latency of the answered |")
        print("|---|---|---|")
        for row in slow:
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
