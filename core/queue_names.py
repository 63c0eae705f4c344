"""The broker's queues, by name: the job-type declarations route their stages to them."""

from __future__ import annotations

GPU_QUEUE = "gpu"
CPU_QUEUE = "cpu"
QUEUES = (GPU_QUEUE, CPU_QUEUE)
