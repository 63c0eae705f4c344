"""The sequence model: any length up to the maximum through its mask, masked frames ignored."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.sequence import FRAMES_INPUT, MASK_INPUT
from tests.model_builders import SEQUENCE_FRAME, SEQUENCE_MAX_FRAMES, tiny_sequence_model


@pytest.fixture(scope="module")
def model():
    return tiny_sequence_model()


def padded(frames: np.ndarray, used: list[bool]) -> tuple[np.ndarray, np.ndarray]:
    """A series padded to the model's length, with the mask marking the given frames."""
    pixels = np.zeros((1, SEQUENCE_MAX_FRAMES, SEQUENCE_FRAME, SEQUENCE_FRAME, 3), np.float32)
    pixels[0, : len(frames)] = frames
    mask = np.zeros((1, SEQUENCE_MAX_FRAMES), dtype=bool)
    mask[0, : len(used)] = used
    return pixels, mask


def random_frames(length: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (length, SEQUENCE_FRAME, SEQUENCE_FRAME, 3)).astype(np.float32)


def p_improving(model, frames: np.ndarray, used: list[bool]) -> float:
    pixels, mask = padded(frames, used)
    return float(np.asarray(model.predict_on_batch({FRAMES_INPUT: pixels, MASK_INPUT: mask}))[0, 0])


@pytest.mark.parametrize("length", [1, 7, 30])
def test_takes_any_length_up_to_the_maximum(model, length: int) -> None:
    assert 0.0 <= p_improving(model, random_frames(length), [True] * length) <= 1.0


def test_a_masked_frames_content_does_not_affect_the_output(model) -> None:
    frames = random_frames(7)
    used = [True, True, False, True, True, False, True]
    before = p_improving(model, frames, used)
    changed = frames.copy()
    changed[2] = 255.0 - changed[2]
    changed[5] = 0.0
    assert p_improving(model, changed, used) == pytest.approx(before, abs=1e-7)


def test_an_unmasked_frames_content_does_affect_the_output(model) -> None:
    # The control for the test above: the same change on a frame the model sees moves the output.
    frames = random_frames(7)
    before = p_improving(model, frames, [True] * 7)
    changed = frames.copy()
    changed[2] = 255.0 - changed[2]
    assert abs(p_improving(model, changed, [True] * 7) - before) > 1e-5


def test_masking_a_frame_equals_leaving_it_out(model) -> None:
    frames = random_frames(6)
    kept = [0, 1, 2, 4, 5]
    with_gap = p_improving(model, frames, [True, True, True, False, True, True])
    without = p_improving(model, frames[kept], [True] * 5)
    assert with_gap == pytest.approx(without, abs=1e-6)
