"""Sequence inference over face crops: time order, masking, and what the result says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.model_registry import ModelRegistry
from pipelines.base import PipelineError, no_progress
from pipelines.sequence import Frame, frames_tensor, predict_trend
from tests.model_builders import SEQUENCE_MAX_FRAMES, tiny_sequence_model, write_sequence_model


@pytest.fixture(scope="module")
def model_and_spec(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("registry")
    write_sequence_model(root, "trend")
    return tiny_sequence_model(), ModelRegistry(root).verified("trend")


def crops(tmp_path: Path, count: int) -> list[Path]:
    rng = np.random.default_rng(3)
    paths = []
    for index in range(count):
        path = tmp_path / f"crop{index}.png"
        Image.fromarray(rng.integers(0, 256, (160, 160, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_frames_without_a_face_are_masked_and_named(model_and_spec, tmp_path: Path) -> None:
    model, spec = model_and_spec
    paths = crops(tmp_path, 3)
    frames = [
        Frame(2, "2026-01-01", paths[0]),
        Frame(0, "2026-01-08", None, "no_face"),
        Frame(1, "2026-01-15", paths[1]),
        Frame(3, "2026-01-22", None, "corrupt_image"),
    ]
    output = predict_trend(frames, model, spec, no_progress, None)
    result = output.result
    # Masked frames count for nothing: the usable crops alone, in order, give the same answer.
    alone = predict_trend(
        [Frame(2, "2026-01-01", paths[0]), Frame(1, "2026-01-15", paths[1])],
        model, spec, no_progress, None,
    ).result  # fmt: skip
    assert result["p_improving"] == pytest.approx(alone["p_improving"], abs=1e-6)
    expected = "improving" if result["p_improving"] >= 0.5 else "deteriorating"
    assert result["outcome"] == alone["outcome"] == expected
    assert result["frames_used"] == [2, 1]
    assert result["frames_masked"] == [0, 3]
    assert [f["reason"] for f in result["frames"]] == [None, "no_face", None, "corrupt_image"]
    assert result["flags"] == []
    assert [artifact.name for artifact in output.artifacts] == ["sequence.png"]


def test_the_masked_frames_are_zero_and_the_series_padded_to_the_maximum(
    model_and_spec, tmp_path: Path
) -> None:
    _, spec = model_and_spec
    [path] = crops(tmp_path, 1)
    pixels, mask = frames_tensor([Frame(0, None, None, "no_face"), Frame(1, None, path)], spec)
    assert pixels.shape[1] == mask.shape[1] == SEQUENCE_MAX_FRAMES
    assert mask[0].tolist() == [False, True] + [False] * (SEQUENCE_MAX_FRAMES - 2)
    assert not pixels[0, 0].any() and pixels[0, 1].any()


def test_one_usable_frame_gives_no_trend(model_and_spec, tmp_path: Path) -> None:
    model, spec = model_and_spec
    [path] = crops(tmp_path, 1)
    result = predict_trend([Frame(0, None, path)], model, spec, no_progress).result
    assert result["outcome"] == "undetermined"
    assert result["flags"] == ["insufficient_frames"]


def test_no_usable_frame_fails_the_job_with_a_reason(model_and_spec) -> None:
    model, spec = model_and_spec
    with pytest.raises(PipelineError) as failure:
        predict_trend([Frame(0, None, None, "no_face")] * 2, model, spec, no_progress)
    assert failure.value.code == "no_faces_found"


def test_more_frames_than_the_model_takes_fail(model_and_spec, tmp_path: Path) -> None:
    model, spec = model_and_spec
    [path] = crops(tmp_path, 1)
    frames = [Frame(i, None, path) for i in range(SEQUENCE_MAX_FRAMES + 1)]
    with pytest.raises(PipelineError) as failure:
        predict_trend(frames, model, spec, no_progress)
    assert failure.value.code == "too_many_frames"
