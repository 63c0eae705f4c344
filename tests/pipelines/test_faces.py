"""Face extraction with the real MTCNN on public-domain photographs shipped with scikit-image."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.face_detector import LoadedDetector, face_detector
from pipelines.base import no_progress
from pipelines.faces import (
    ALIGNED_TEMPLATE_112,
    LANDMARK_NAMES,
    FaceParams,
    alignment_matrix,
    detect_faces,
    extract_faces,
    load_photo,
)
from tests.builders import face_photo, no_face_photo

# Where the astronaut's face is (checked by eye on skimage.data.astronaut(), 512x512).
FACE_REGION = (160, 40, 290, 190)  # left, top, right, bottom


@pytest.fixture(scope="module")
def detector() -> LoadedDetector:
    return face_detector()


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def inside(point: tuple[float, float], region: tuple[float, float, float, float]) -> bool:
    return region[0] <= point[0] <= region[2] and region[1] <= point[1] <= region[3]


def test_the_astronauts_face_is_found_with_landmarks_where_they_belong(
    detector: LoadedDetector, tmp_path: Path
) -> None:
    photo = load_photo(write(tmp_path, "a.jpg", face_photo()))

    [faces] = detect_faces(detector.detector, [photo], FaceParams())

    assert len(faces) == 1
    face = faces[0]
    assert face.confidence > 0.95
    x, y, width, height = face.box
    assert inside((x, y), FACE_REGION) and inside((x + width, y + height), FACE_REGION)
    marks = face.landmarks
    assert set(marks) == set(LANDMARK_NAMES)
    for point in marks.values():
        assert x <= point[0] <= x + width and y <= point[1] <= y + height
    # Eyes above the nose above the mouth; left and right as seen in the image.
    assert marks["left_eye"][0] < marks["nose"][0] < marks["right_eye"][0]
    assert max(marks["left_eye"][1], marks["right_eye"][1]) < marks["nose"][1]
    assert marks["nose"][1] < min(marks["mouth_left"][1], marks["mouth_right"][1])


def test_a_photo_without_a_face_yields_none_and_is_not_an_error(
    detector: LoadedDetector, tmp_path: Path
) -> None:
    output = extract_faces(
        detector.detector, [write(tmp_path, "c.jpg", no_face_photo())], {}, no_progress
    )
    assert output.result["faces_total"] == 0
    assert output.result["photos"][0]["face_found"] is False
    assert output.result["photos_without_faces"] == [0]
    assert [artifact.name for artifact in output.artifacts] == ["faces-00.png"]


@pytest.mark.parametrize("crop_size", [64, 160, 224])
def test_crops_have_the_requested_size(
    detector: LoadedDetector, tmp_path: Path, crop_size: int
) -> None:
    output = extract_faces(
        detector.detector,
        [write(tmp_path, "a.png", face_photo("PNG"))],
        {"crop_size": crop_size},
        no_progress,
        detector.identity,
    )
    crop = next(a for a in output.artifacts if a.name == "face-00-0.png")
    assert Image.open(io.BytesIO(crop.data)).size == (crop_size, crop_size)
    assert output.result["photos"][0]["faces"][0]["crop"] == "face-00-0.png"
    assert output.model is not None and output.model.name == "mtcnn"


def test_exif_orientation_is_applied_before_detection(
    detector: LoadedDetector, tmp_path: Path
) -> None:
    upright = write(tmp_path, "up.jpg", face_photo())
    sideways = write(tmp_path, "side.jpg", face_photo(exif_rotated=True))
    assert Image.open(sideways).size == (512, 512)  # square: only the pixels are turned
    faces = detect_faces(
        detector.detector, [load_photo(upright), load_photo(sideways)], FaceParams()
    )
    assert len(faces[0]) == len(faces[1]) == 1
    assert np.allclose(faces[0][0].box, faces[1][0].box, atol=4)


def test_photos_of_different_sizes_in_one_job_keep_their_own_coordinates(
    detector: LoadedDetector, tmp_path: Path
) -> None:
    # mtcnn pads mixed-size batches and then misplaces boxes; the pipeline must not mix them.
    alone = detect_faces(
        detector.detector, [load_photo(write(tmp_path, "a.jpg", face_photo()))], FaceParams()
    )
    mixed = detect_faces(
        detector.detector,
        [load_photo(write(tmp_path, "c.jpg", no_face_photo())), load_photo(tmp_path / "a.jpg")],
        FaceParams(),
    )
    assert mixed[0] == []
    assert np.allclose(mixed[1][0].box, alone[0][0].box, atol=1)


def test_filters_confidence_and_size(detector: LoadedDetector, tmp_path: Path) -> None:
    photo = load_photo(write(tmp_path, "a.jpg", face_photo()))
    assert detect_faces(detector.detector, [photo], FaceParams(min_face_size=300)) == [[]]
    assert detect_faces(detector.detector, [photo], FaceParams(min_confidence=1.0 + 1e-9)) == [[]]
    assert len(detect_faces(detector.detector, [photo], FaceParams(min_face_size=60))[0]) == 1


def test_alignment_recovers_a_known_similarity_transform() -> None:
    angle, scale, shift = np.radians(12.0), 2.5, np.array([40.0, -7.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    # Landmarks of a face that is the template turned, scaled and moved.
    source = (ALIGNED_TEMPLATE_112 @ rotation.T) * scale + shift
    landmarks = dict(zip(LANDMARK_NAMES, map(tuple, source), strict=True))
    matrix = alignment_matrix(landmarks, 112)
    mapped = (np.c_[source, np.ones(5)] @ matrix.T)[:, :2]
    assert np.allclose(mapped, ALIGNED_TEMPLATE_112, atol=1e-6)


def test_an_aligned_crop_is_itself_a_detectable_upright_face(
    detector: LoadedDetector, tmp_path: Path
) -> None:
    output = extract_faces(
        detector.detector, [write(tmp_path, "side.jpg", face_photo(exif_rotated=True))],
        {"crop_size": 160}, no_progress,
    )  # fmt: skip
    crop = np.asarray(Image.open(io.BytesIO(output.artifacts[0].data)).convert("RGB"))
    [faces] = detect_faces(detector.detector, [crop], FaceParams(min_face_size=20))
    assert len(faces) == 1
    eyes = faces[0].landmarks["left_eye"], faces[0].landmarks["right_eye"]
    template_eyes = ALIGNED_TEMPLATE_112[:2] * 160 / 112
    assert np.allclose(eyes, template_eyes, atol=8)
