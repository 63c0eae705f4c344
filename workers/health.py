"""A worker's health check, for Docker's ``healthcheck`` (``python -m workers.health``).

Healthy (exit 0) when every worker on this host has a fresh liveness record in Redis (its main
process, its event loop and the broker are alive) and at least one of its pool processes has
finished starting up. Unhealthy (exit 1, the reason on stdout) when the record is gone or stale,
the broker does not answer, or no pool process is up: a worker whose new processes are killed
while they load the models would otherwise look alive for ever.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from typing import Any

import redis

from core.broker_messages import live_workers
from core.config import Settings, load_settings


def problems(record: dict[str, Any], settings: Settings, now: float) -> list[str]:
    """What is wrong with one worker's liveness record (nothing: healthy)."""
    stale_after = 2 * settings.WORKER_HEARTBEAT_SECONDS + 5
    found = []
    if now - record.get("loop_at", 0) > stale_after:
        found.append(f"event loop silent for {now - record.get('loop_at', 0):.0f} s")
    ready = (record.get("pool") or {}).get("ready")
    if ready == 0:
        found.append("no pool process has finished starting up")
    return found


def check(settings: Settings, node: str | None = None, host: str | None = None) -> list[str]:
    """Problems of the workers on this host (or the named node); empty when healthy."""
    host = host or socket.gethostname()
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3, socket_timeout=5)
    try:
        records = live_workers(client)
    except redis.RedisError as exc:
        return [f"broker unreachable: {type(exc).__name__}"]
    finally:
        client.close()
    mine = [
        record
        for record in records
        if (record.get("node") == node if node else record.get("host") == host)
    ]
    if not mine:
        return [f"no live worker record for {node or 'host ' + host}"]
    now = time.time()
    return [f"{r['node']}: {p}" for r in mine for p in problems(r, settings, now)]


def main(argv: list[str] | None = None) -> int:
    """Print the verdict; 0 when healthy, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node", help="the worker's node name (default: every worker here)")
    args = parser.parse_args(argv)
    found = check(load_settings(), node=args.node)
    print(json.dumps({"status": "unhealthy" if found else "healthy", "problems": found}))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
