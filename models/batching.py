"""Dynamic batching: the model calls of jobs running at once in one worker process become one.

A gpu worker with GPU_BATCH_MAX > 1 runs the threads pool, one thread per job (concurrency =
GPU_BATCH_MAX). Each thread runs its own job exactly as before (claim, preprocessing, result,
artifacts, progress, failure, late ack of its own message) and calls its model as before; the
model it holds is a ``BatchedModel`` (or ``BatchedDetector``) whose call joins the process's
batch for that model. One thread per model (the batcher) takes the oldest waiting call, waits at
most GPU_BATCH_WAIT_MS for more calls of the same input shape, runs **one** model call for all of
them and hands every caller its own rows.

The batch closes early when every job running in the process is already in it (a lone job pays
no wait at all), or when it holds GPU_BATCH_MAX rows. A model call that raises is run again one
caller at a time, so that an input the model chokes on fails only its own job.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded

from core.metrics import BATCH_SIZE

log = logging.getLogger(__name__)


@dataclass
class BatchSettings:
    """How this process batches: at most ``max_rows`` rows per call, waiting ``wait_s``."""

    max_rows: int = 1
    wait_s: float = 0.0
    # A caller gives up on its batch after this long (0: never): a model call hung in native
    # code then fails the jobs waiting behind it instead of holding their threads for ever.
    call_timeout_s: float = 0.0

    @property
    def enabled(self) -> bool:
        """Whether calls are batched at all (1 row per call = today's direct calls)."""
        return self.max_rows > 1


# The process's settings: set by the worker's start-up (workers.startup) from GPU_BATCH_MAX and
# GPU_BATCH_WAIT_MS; anything else (the web, the lab, unit tests) calls models directly.
process_batching = BatchSettings()


class InFlight:
    """How many jobs this process runs now (the jobs inside the process gate, models.isolation;
    a job waiting at the gate does not count, so no batch waits for it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    def started(self) -> None:
        """A job task began in this process."""
        with self._lock:
            self._count += 1

    def ended(self) -> None:
        """A job task ended in this process."""
        with self._lock:
            self._count = max(0, self._count - 1)

    @property
    def count(self) -> int:
        """Jobs running now."""
        return self._count


jobs_in_flight = InFlight()


# A batcher thread with nothing to do for this long ends.
IDLE_EXIT_SECONDS = 30.0


def observe_batch(model: str, jobs: int, rows: int) -> None:
    """The one place a model call's batch is reported (log line; metric below)."""
    log.info(
        "model call %s: %d job(s), %d row(s); %d job(s) running",
        model,
        jobs,
        rows,
        jobs_in_flight.count,
    )
    BATCH_SIZE.labels(model).observe(jobs)


@dataclass
class _Call:
    """One caller's part of a batch, and what it gets back."""

    payload: Any
    rows: int
    key: Hashable
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


@dataclass(frozen=True)
class Kind:
    """How one model's calls are keyed, merged and split (arrays, dicts of arrays, image lists)."""

    key: Callable[[Any], Hashable | None]  # None: this input cannot share a call
    rows: Callable[[Any], int]
    merge: Callable[[list[Any]], Any]
    split: Callable[[Any, list[int]], list[Any]]


def _slices(counts: list[int]) -> list[slice]:
    bounds = np.cumsum([0, *counts])
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]


def split_rows(output: Any, counts: list[int]) -> list[Any]:
    """A batched model output cut back into each caller's rows (arrays, lists, dicts of them)."""
    if isinstance(output, dict):
        parts = {name: split_rows(value, counts) for name, value in output.items()}
        return [{name: parts[name][i] for name in output} for i in range(len(counts))]
    if isinstance(output, tuple) and not hasattr(output, "shape"):
        parts_t = [split_rows(value, counts) for value in output]
        return [tuple(part[i] for part in parts_t) for i in range(len(counts))]
    if (
        isinstance(output, list)
        and output
        and hasattr(output[0], "shape")
        and len(output) != sum(counts)
    ):
        # A multi-output Keras model returns a list of arrays, one per output.
        parts_l = [split_rows(value, counts) for value in output]
        return [[part[i] for part in parts_l] for i in range(len(counts))]
    return [output[part] for part in _slices(counts)]


def _array_key(x: Any) -> Hashable | None:
    if isinstance(x, dict):
        return tuple((name, value.shape[1:], str(value.dtype)) for name, value in sorted(x.items()))
    return (np.shape(x)[1:], str(np.asarray(x).dtype)) if np.ndim(x) >= 1 else None


def _array_rows(x: Any) -> int:
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def _merge_arrays(payloads: list[Any]) -> Any:
    if isinstance(payloads[0], dict):
        return {name: np.concatenate([p[name] for p in payloads]) for name in payloads[0]}
    return np.concatenate([np.asarray(p) for p in payloads])


# Keras models: a float batch (N, ...) or a dict of named inputs, each (N, ...).
ARRAYS = Kind(_array_key, _array_rows, _merge_arrays, split_rows)


def _images_key(images: Sequence[np.ndarray]) -> Hashable | None:
    # mtcnn 1.0.0 pads a batch of mixed sizes and then misplaces the padded photos' boxes: only
    # photos of one size ever share a call.
    shapes = {image.shape for image in images}
    return next(iter(shapes)) if len(shapes) == 1 else None


def _merge_images(payloads: list[Sequence[np.ndarray]]) -> list[np.ndarray]:
    return [image for images in payloads for image in images]


# The MTCNN detector: a list of same-size photos in, a list of face lists out.
IMAGES = Kind(_images_key, len, _merge_images, split_rows)


class Batcher:
    """One model's queue of waiting calls and the thread that runs them in batches."""

    def __init__(
        self,
        name: str,
        call: Callable[[Any], Any],
        kind: Kind,
        settings: BatchSettings = process_batching,
        in_flight: InFlight = jobs_in_flight,
    ) -> None:
        self.name = name
        self._call = call
        self._kind = kind
        self._settings = settings
        self._in_flight = in_flight
        self._waiting: list[_Call] = []
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def submit(self, payload: Any) -> Any:
        """This caller's output of the model, computed in a batch with whoever else is waiting."""
        if not self._settings.enabled:
            return self._call(payload)
        key = self._kind.key(payload)
        if key is None:
            observe_batch(self.name, 1, self._kind.rows(payload))
            return self._call(payload)
        call = _Call(payload, self._kind.rows(payload), key)
        with self._changed:
            self._waiting.append(call)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name=f"batcher {self.name}", daemon=True
                )
                self._thread.start()
            self._changed.notify_all()
        if not call.done.wait(timeout=self._settings.call_timeout_s or None):
            raise SoftTimeLimitExceeded(
                f"no answer from {self.name} within {self._settings.call_timeout_s:.0f} s"
            )
        if call.error is not None:
            raise call.error
        return call.result

    def _batch_ready(self, batch: list[_Call], deadline: float) -> bool:
        rows = sum(call.rows for call in batch)
        # Every job this process runs is in the batch already: nobody else can come.
        everyone = len(batch) >= self._in_flight.count
        return rows >= self._settings.max_rows or everyone or time.monotonic() >= deadline

    def _same_key(self, key: Hashable) -> list[_Call]:
        return [call for call in self._waiting if call.key == key]

    def _next_batch(self) -> list[_Call] | None:
        """Wait for the oldest call's batch to fill or its wait to end; take it off the queue."""
        with self._changed:
            while not self._waiting:
                if not self._changed.wait(timeout=IDLE_EXIT_SECONDS) and not self._waiting:
                    # Idle: the thread ends (the next submit starts one), so a model the cache
                    # dropped is not kept alive by its batcher.
                    self._thread = None
                    return None
            first = self._waiting[0]
            deadline = time.monotonic() + self._settings.wait_s
            while not self._batch_ready(self._same_key(first.key), deadline):
                self._changed.wait(timeout=max(0.0, deadline - time.monotonic()))
            batch, rows = [], 0
            for call in self._same_key(first.key):
                # At least the oldest call, even one larger than a whole batch.
                if batch and rows + call.rows > self._settings.max_rows:
                    break
                batch.append(call)
                rows += call.rows
            taken = {id(call) for call in batch}
            self._waiting = [call for call in self._waiting if id(call) not in taken]
            return batch

    def _serve(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._run(batch)

    def _run(self, batch: list[_Call]) -> None:
        counts = [call.rows for call in batch]
        try:
            merged = self._kind.merge([call.payload for call in batch])
            observe_batch(self.name, len(batch), sum(counts))
            outputs = self._kind.split(self._call(merged), counts)
        except Exception as exc:
            if len(batch) > 1:
                log.warning("batched call of %s failed (%s); each job alone", self.name, exc)
                for call in batch:
                    self._run([call])
                return
            # The caller's thread raises it in its own job, as a direct call would have.
            batch[0].error = exc
            batch[0].done.set()
            return
        for call, output in zip(batch, outputs, strict=True):
            call.result = output
            call.done.set()


class BatchedModel:
    """A Keras model whose ``predict_on_batch`` joins this process's batch for the model."""

    def __init__(self, model: Any, name: str) -> None:
        self._model = model
        self.batcher = Batcher(name, model.predict_on_batch, ARRAYS)

    def predict_on_batch(self, x: Any) -> Any:
        """The model's output for ``x``, computed together with other jobs' waiting inputs."""
        return self.batcher.submit(x)

    def __getattr__(self, name: str) -> Any:
        # Everything else (inputs, summary, ...) is the model's own.
        return getattr(self._model, name)


class BatchedDetector:
    """An MTCNN detector whose ``detect_faces`` joins this process's batch of same-size photos."""

    def __init__(self, detector: Any, name: str) -> None:
        self._detector = detector
        self._by_options: dict[tuple, Batcher] = {}
        self._lock = threading.Lock()
        self._name = name

    def _batcher(self, options: dict[str, Any]) -> Batcher:
        key = tuple(sorted(options.items()))
        with self._lock:
            if key not in self._by_options:
                detect = self._detector.detect_faces
                self._by_options[key] = Batcher(
                    self._name, lambda images: detect(images, **options), IMAGES
                )
            return self._by_options[key]

    def detect_faces(self, images: list[np.ndarray], **options: Any) -> list[list[dict]]:
        """Faces per photo, detected together with other jobs' photos of the same size."""
        return self._batcher(options).submit(list(images))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._detector, name)
