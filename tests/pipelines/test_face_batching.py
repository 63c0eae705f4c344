"""Face detection on photos over 1024 px runs on a 1024 px copy and reports in the photo's own
pixels; photos of one size go through the detector together (up to 8), sizes never mixed."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image

from models.face_detector import LoadedDetector, face_detector
from pipelines.faces import DETECTION_BATCH, DETECTION_MAX_SIDE, FaceParams, detect_faces
from tests.builders import face_photo


@pytest.fixture(scope="module")
def detector() -> LoadedDetector:
    return face_detector()


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    """The 512 px portrait the other face tests use."""
    return Image.open(io.BytesIO(face_photo())).convert("RGB")


class Spy:
    """A detector that records the shapes of each call's photos (and delegates, if given one)."""

    def __init__(self, inner: Any = None) -> None:
        self.inner, self.calls = inner, []

    def detect_faces(self, images: list[np.ndarray], **kwargs: Any) -> list[list[dict]]:
        self.calls.append([image.shape for image in images])
        if self.inner is None:
            return [[] for _ in images]
        return self.inner.detect_faces(images, **kwargs)


def test_a_photo_over_1024_px_is_detected_on_a_1024_copy_and_reported_at_full_size(
    detector: LoadedDetector, astronaut: Image.Image
) -> None:
    big = np.asarray(astronaut.resize((2048, 1536), Image.Resampling.BICUBIC))
    spy = Spy(detector.detector)
    [faces] = detect_faces(spy, [big], FaceParams())
    assert spy.calls == [[(768, DETECTION_MAX_SIDE, 3)]]
    # The same copy detected directly: its boxes and landmarks, times two, are the result.
    copy = np.asarray(Image.fromarray(big).resize((1024, 768), Image.Resampling.BILINEAR))
    [on_copy] = detect_faces(detector.detector, [copy], FaceParams())
    assert len(faces) == len(on_copy) == 1
    assert np.allclose(faces[0].box, np.array(on_copy[0].box) * 2, atol=1e-6)
    for name, point in faces[0].landmarks.items():
        assert np.allclose(point, np.array(on_copy[0].landmarks[name]) * 2, atol=1e-6)


def test_same_size_photos_share_detector_calls_of_at_most_eight_and_sizes_never_mix() -> None:
    small, large = np.zeros((80, 80, 3), np.uint8), np.zeros((120, 100, 3), np.uint8)
    photos = [large if i % 4 else small for i in range(12)]  # 9 large, 3 small, interleaved
    spy, progress = Spy(), []
    detect_faces(spy, photos, FaceParams(), progress.append)
    assert [len(call) for call in spy.calls] == [3, DETECTION_BATCH, 1]
    for call in spy.calls:
        assert len(set(call)) == 1, call
    assert progress == [3, 11, 12]


def test_a_batch_finds_what_each_photo_finds_alone(
    detector: LoadedDetector, astronaut: Image.Image
) -> None:
    photo = np.asarray(astronaut)
    mirrored = np.ascontiguousarray(photo[:, ::-1])
    spy = Spy(detector.detector)
    together = detect_faces(spy, [photo, mirrored, photo], FaceParams())
    assert [len(call) for call in spy.calls] == [3]
    alone = [detect_faces(detector.detector, [p], FaceParams())[0] for p in (photo, mirrored)]
    for found, expected in zip(together, [alone[0], alone[1], alone[0]], strict=True):
        assert len(found) == len(expected) == 1
        assert np.allclose(found[0].box, expected[0].box, atol=1)
