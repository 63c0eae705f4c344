"""WORKER_GPU=<index> pins each worker pool process to that GPU (CUDA_VISIBLE_DEVICES), set when
the process starts, before TensorFlow can see any device."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from workers.startup import pin_gpu

# A pool process starting, as Celery starts one after the fork: the worker's own signal handlers
# run; then what CUDA_VISIBLE_DEVICES is, and whether TensorFlow was imported before it was set.
PROCESS_START = """
import os, sys
from celery.signals import worker_process_init
from webapp import create_app
from workers import startup
startup.register(create_app())
worker_process_init.send(sender=None)
print(os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"), "tensorflow" in sys.modules)
"""


def start_pool_process(tmp_path: Path, **env: str) -> tuple[str, str]:
    """Run PROCESS_START with the given environment; (CUDA_VISIBLE_DEVICES, TF imported)."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"WORKER_GPU", "CUDA_VISIBLE_DEVICES"}
    }
    environment.update(
        PYTHONPATH=str(REPO_ROOT),
        DATABASE_URL=f"sqlite:///{tmp_path / 'w.db'}",
        MEDIA_ROOT=str(tmp_path / "media"),
        **env,
    )
    done = subprocess.run(
        [sys.executable, "-c", PROCESS_START],
        env=environment,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    devices, tensorflow = done.stdout.split()[-2:]
    return devices, tensorflow


def test_a_starting_pool_process_is_pinned_to_worker_gpu(tmp_path: Path) -> None:
    assert start_pool_process(tmp_path, WORKER_GPU="1") == ("1", "False")


def test_without_worker_gpu_the_devices_are_left_as_they_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # undone after the test
    monkeypatch.delenv("WORKER_GPU", raising=False)
    pin_gpu()
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"


def test_pin_gpu_overrides_an_inherited_device_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")  # undone after the test
    monkeypatch.setenv("WORKER_GPU", "2")
    pin_gpu()
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "2"
