"""The batcher: concurrent callers share model calls, each gets its own rows, a call that fails
is retried caller by caller, shapes are never mixed, and a lone caller does not wait."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from celery.exceptions import SoftTimeLimitExceeded

from models.batching import (
    ARRAYS,
    IMAGES,
    BatchedModel,
    Batcher,
    BatchSettings,
    InFlight,
    split_rows,
)


class Doubler:
    """A model that doubles its input, records each call's batch, and refuses negative rows."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def predict_on_batch(self, x: np.ndarray) -> np.ndarray:
        with self.lock:
            self.calls.append(len(x))
        if (x < 0).any():
            raise ValueError("negative input")
        return x * 2


def busy(count: int) -> InFlight:
    jobs = InFlight()
    for _ in range(count):
        jobs.started()
    return jobs


def run_together(batcher: Batcher, inputs: list[Any]) -> list[Any]:
    """Submit every input from its own thread at once; each one's output or exception."""

    def one(x: Any) -> Any:
        try:
            return batcher.submit(x)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(len(inputs)) as pool:
        return list(pool.map(one, inputs))


def test_concurrent_callers_share_one_call_and_each_gets_its_own_rows() -> None:
    model = Doubler()
    batcher = Batcher("m", model.predict_on_batch, ARRAYS, BatchSettings(8, 2.0), busy(4))
    inputs = [np.full((1, 3), float(i)) for i in range(4)]
    outputs = run_together(batcher, inputs)
    assert model.calls == [4]
    for x, y in zip(inputs, outputs, strict=True):
        np.testing.assert_array_equal(y, x * 2)


def test_a_call_that_fails_is_run_again_caller_by_caller() -> None:
    model = Doubler()
    batcher = Batcher("m", model.predict_on_batch, ARRAYS, BatchSettings(8, 2.0), busy(3))
    outputs = run_together(batcher, [np.ones((1, 2)), -np.ones((1, 2)), np.full((2, 2), 3.0)])
    assert sorted(model.calls[1:]) == [1, 1, 2] and model.calls[0] == 4
    np.testing.assert_array_equal(outputs[0], np.full((1, 2), 2.0))
    assert isinstance(outputs[1], ValueError)
    np.testing.assert_array_equal(outputs[2], np.full((2, 2), 6.0))


def test_a_batch_holds_at_most_max_rows_and_shapes_are_never_mixed() -> None:
    model = Doubler()
    batcher = Batcher("m", model.predict_on_batch, ARRAYS, BatchSettings(4, 0.5), busy(7))
    inputs = [np.ones((1, 2))] * 5 + [np.ones((1, 3))] * 2
    outputs = run_together(batcher, inputs)
    assert sum(model.calls) == 7 and max(model.calls) <= 4 and len(model.calls) >= 3
    assert [y.shape for y in outputs] == [x.shape for x in inputs]


def test_a_lone_caller_does_not_wait_for_company() -> None:
    model = Doubler()
    batcher = Batcher("m", model.predict_on_batch, ARRAYS, BatchSettings(8, 5.0), busy(1))
    started = time.monotonic()
    batcher.submit(np.ones((1, 2)))
    assert time.monotonic() - started < 1.0


def test_the_oldest_call_waits_at_most_the_batch_wait() -> None:
    model = Doubler()
    # Two jobs run, only one calls this model: the batch closes at its wait, not before.
    batcher = Batcher("m", model.predict_on_batch, ARRAYS, BatchSettings(8, 0.3), busy(2))
    started = time.monotonic()
    batcher.submit(np.ones((1, 2)))
    assert 0.25 <= time.monotonic() - started < 2.0


def test_a_caller_stops_waiting_for_a_hung_model_call() -> None:
    release = threading.Event()

    def hangs(x: np.ndarray) -> np.ndarray:
        release.wait(10)
        return x

    settings = BatchSettings(8, 0.0, call_timeout_s=0.3)
    batcher = Batcher("m", hangs, ARRAYS, settings, busy(1))
    try:
        with pytest.raises(SoftTimeLimitExceeded):
            batcher.submit(np.ones((1, 2)))
    finally:
        release.set()


def test_batching_off_calls_the_model_directly() -> None:
    model = Doubler()
    wrapped = BatchedModel(model, "m")
    np.testing.assert_array_equal(wrapped.predict_on_batch(np.ones((2, 2))), np.full((2, 2), 2.0))
    assert model.calls == [2] and wrapped.batcher._thread is None


def test_photo_lists_are_grouped_by_size_and_dict_inputs_split_by_row() -> None:
    assert IMAGES.key([np.zeros((4, 4, 3))] * 2) == (4, 4, 3)
    assert IMAGES.key([np.zeros((4, 4, 3)), np.zeros((5, 4, 3))]) is None
    merged = ARRAYS.merge([{"a": np.zeros((1, 2)), "b": np.ones((1,))}] * 3)
    assert merged["a"].shape == (3, 2) and ARRAYS.rows(merged) == 3
    parts = split_rows({"p": np.arange(3)}, [1, 2])
    assert [part["p"].tolist() for part in parts] == [[0], [1, 2]]


@pytest.mark.parametrize("counts", [[1], [2, 1, 3]])
def test_split_rows_gives_back_each_callers_rows(counts: list[int]) -> None:
    output = np.arange(sum(counts))
    parts = split_rows(output, counts)
    assert np.concatenate(parts).tolist() == output.tolist()
    assert [len(part) for part in parts] == counts
