"""Face extraction: detect faces with a detector (MTCNN), align and crop them, draw an overlay.

Pure functions over images: the detector is passed in (one per worker process, see
``models.face_detector``), so everything here can be tested with any object that detects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from pipelines.base import (
    ArtifactData,
    ModelIdentity,
    PipelineError,
    PipelineOutput,
    ProgressCallback,
    png_bytes,
)
from pipelines.limits import DEFAULT_LIMITS, ImageLimits
from pipelines.scans import open_checked

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
# Where the five landmarks sit in an aligned 112x112 face (the ArcFace template, image coordinates:
# "left_eye" is the eye on the image's left, as MTCNN names it).
ALIGNED_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ]
)
# Detection runs on a copy no larger than this on its longer side: MTCNN pads a batch to its
# largest image, and a 12-megapixel phone photo would cost seconds and gigabytes for no gain.
DETECTION_MAX_SIDE = 1024
# The detector's own min_face_size stays at its default: in mtcnn 1.0.0 a larger value shrinks
# the image pyramid until PNet fails on its smallest level, and the library then reports no face
# at all (seen on a 512 px photo from 30 px up). Faces are filtered by size here instead.
DETECTOR_MIN_FACE = 20
# Photos per detector call: batched for throughput, bounded for memory.
DETECTION_BATCH = 8
OVERLAY_MAX_SIDE = 1024

DEFAULTS: dict[str, Any] = {
    "min_confidence": 0.9,
    "min_face_size": 40,
    "crop_size": 160,
    "largest_only": False,
}
CROP_SIZE_RANGE = (32, 512)


class FaceDetector(Protocol):
    """What the pipeline needs of a detector: the ``mtcnn.MTCNN.detect_faces`` batch call."""

    def detect_faces(self, image: list[np.ndarray], **kwargs: Any) -> list[list[dict[str, Any]]]:
        """Faces per image: dicts with box [x, y, w, h], confidence and keypoints."""
        ...


@dataclass(frozen=True)
class FaceParams:
    """How faces are filtered and cropped."""

    min_confidence: float = DEFAULTS["min_confidence"]
    min_face_size: int = DEFAULTS["min_face_size"]
    crop_size: int = DEFAULTS["crop_size"]
    largest_only: bool = DEFAULTS["largest_only"]

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> FaceParams:
        """Job params (already validated by the API) with defaults for what is missing."""
        merged = {**DEFAULTS, **{k: v for k, v in params.items() if k in DEFAULTS}}
        return cls(
            min_confidence=float(merged["min_confidence"]),
            min_face_size=int(merged["min_face_size"]),
            crop_size=int(merged["crop_size"]),
            largest_only=bool(merged["largest_only"]),
        )


@dataclass(frozen=True)
class Face:
    """One detected face in photo coordinates (pixels of the EXIF-oriented photo)."""

    box: tuple[float, float, float, float]  # x, y, width, height
    confidence: float
    landmarks: dict[str, tuple[float, float]]

    @property
    def size(self) -> float:
        """The box's shorter side, compared with min_face_size."""
        return min(self.box[2], self.box[3])

    def as_json(self) -> dict[str, Any]:
        """The JSON view of the face, coordinates rounded to 0.1 px."""
        x, y, width, height = self.box
        return {
            "box": {
                "x": round(x, 1),
                "y": round(y, 1),
                "width": round(width, 1),
                "height": round(height, 1),
            },
            "confidence": round(self.confidence, 4),
            "landmarks": {
                name: [round(px, 1), round(py, 1)] for name, (px, py) in self.landmarks.items()
            },
        }


def load_photo(path: Path, limits: ImageLimits = DEFAULT_LIMITS) -> np.ndarray:
    """The photo as RGB uint8 (H, W, 3), turned upright by its EXIF orientation."""
    try:
        with open_checked(path, limits) as image:
            # In place, and no conversion to the mode it has: each copy of a 40 Mpx photo is
            # 120-160 MB.
            ImageOps.exif_transpose(image, in_place=True)
            return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise PipelineError("invalid_image", f"The photo could not be read: {exc}") from None


def _detection_copy(photo: np.ndarray) -> tuple[np.ndarray, float]:
    height, width = photo.shape[:2]
    scale = min(1.0, DETECTION_MAX_SIDE / max(height, width))
    if scale == 1.0:
        return photo, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(photo).resize(size, Image.Resampling.BILINEAR)
    return np.asarray(resized), scale


def _face_from_detection(raw: Mapping[str, Any], scale: float) -> Face:
    x, y, width, height = (float(value) / scale for value in raw["box"])
    keypoints = raw.get("keypoints", {})
    landmarks = {
        name: (float(keypoints[name][0]) / scale, float(keypoints[name][1]) / scale)
        for name in LANDMARK_NAMES
        if name in keypoints
    }
    return Face((x, y, width, height), float(raw["confidence"]), landmarks)


def detect_faces(
    detector: FaceDetector,
    photos: Sequence[np.ndarray],
    params: FaceParams,
    after_batch: Callable[[int], None] | None = None,
) -> list[list[Face]]:
    """Faces per photo, largest first, filtered by confidence and size.

    Photos of the same (detection) size go through the detector together. Different sizes are
    not mixed in one call: mtcnn 1.0.0 pads a mixed batch and then misplaces the boxes of the
    padded photos by the padding (tens of pixels), so mixed batches would give wrong crops.
    """
    copies = [_detection_copy(photo) for photo in photos]
    return _detect_on_copies(detector, copies, params, after_batch)


def _detect_on_copies(
    detector: FaceDetector,
    copies: Sequence[tuple[np.ndarray, float]],
    params: FaceParams,
    after_batch: Callable[[int], None] | None = None,
) -> list[list[Face]]:
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for index, (image, _) in enumerate(copies):
        by_shape.setdefault(image.shape, []).append(index)
    found: list[list[Face]] = [[] for _ in copies]
    done = 0
    for indices in by_shape.values():
        for start in range(0, len(indices), DETECTION_BATCH):
            batch = indices[start : start + DETECTION_BATCH]
            detections = detector.detect_faces(
                [copies[index][0] for index in batch], min_face_size=DETECTOR_MIN_FACE
            )
            for index, raw_faces in zip(batch, detections, strict=True):
                found[index] = _kept_faces(raw_faces, copies[index][1], params)
            done += len(batch)
            if after_batch is not None:
                after_batch(done)
    return found


def _kept_faces(
    raw_faces: Sequence[Mapping[str, Any]], scale: float, params: FaceParams
) -> list[Face]:
    faces = [_face_from_detection(raw, scale) for raw in raw_faces]
    faces = [
        face
        for face in faces
        if face.confidence >= params.min_confidence and face.size >= params.min_face_size
    ]
    faces.sort(key=lambda face: face.box[2] * face.box[3], reverse=True)
    return faces[:1] if params.largest_only else faces


def alignment_matrix(landmarks: Mapping[str, tuple[float, float]], crop_size: int) -> np.ndarray:
    """The 3x3 similarity transform taking the five landmarks onto the aligned template."""
    source = np.array([landmarks[name] for name in LANDMARK_NAMES], dtype=np.float64)
    target = ALIGNED_TEMPLATE_112 * (crop_size / 112.0)
    # Least-squares similarity (Umeyama): rotation, uniform scale, translation.
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    source_centred, target_centred = source - source_mean, target - target_mean
    covariance = target_centred.T @ source_centred / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ sign @ vt
    variance = (source_centred**2).sum() / len(source)
    scale = float(np.trace(np.diag(singular) @ sign) / variance)
    matrix = np.eye(3)
    matrix[:2, :2] = scale * rotation
    matrix[:2, 2] = target_mean - scale * rotation @ source_mean
    return matrix


def crop_face(photo: np.ndarray, face: Face, crop_size: int) -> np.ndarray:
    """A square crop of the face, rotated and scaled so the landmarks sit on the template.

    Without all five landmarks the crop is the box squared around its centre.
    """
    image = Image.fromarray(photo)
    if len(face.landmarks) == len(LANDMARK_NAMES):
        inverse = np.linalg.inv(alignment_matrix(face.landmarks, crop_size))
        crop = image.transform(
            (crop_size, crop_size),
            Image.Transform.AFFINE,
            data=tuple(inverse[:2].ravel()),
            resample=Image.Resampling.BILINEAR,
        )
    else:
        x, y, width, height = face.box
        side = max(width, height)
        left, top = x + width / 2 - side / 2, y + height / 2 - side / 2
        crop = image.resize(
            (crop_size, crop_size),
            Image.Resampling.BILINEAR,
            box=(left, top, left + side, top + side),
        )
    return np.asarray(crop)


def overlay_png(photo: np.ndarray, faces: Sequence[Face]) -> bytes:
    """The photo (at most 1024 px) with each face's box, landmarks and confidence drawn on it."""
    image = Image.fromarray(photo)
    scale = min(1.0, OVERLAY_MAX_SIDE / max(image.size))
    if scale < 1.0:
        image = image.resize(
            (round(image.width * scale), round(image.height * scale)), Image.Resampling.BILINEAR
        )
    draw = ImageDraw.Draw(image)
    line = max(2, round(max(image.size) / 300))
    for face in faces:
        x, y, width, height = (value * scale for value in face.box)
        draw.rectangle((x, y, x + width, y + height), outline=(0, 220, 0), width=line)
        for px, py in face.landmarks.values():
            cx, cy, radius = px * scale, py * scale, line + 1
            draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=(255, 64, 64))
        draw.text((x, max(0.0, y - 12)), f"{face.confidence:.3f}", fill=(0, 220, 0))
    return png_bytes(image)


def crop_artifact_name(photo_position: int, face_index: int) -> str:
    """The artifact name of a face crop."""
    return f"face-{photo_position:02d}-{face_index}.png"


def overlay_artifact_name(photo_position: int) -> str:
    """The artifact name of a photo's overlay."""
    return f"faces-{photo_position:02d}.png"


def extract_faces(
    detector: FaceDetector,
    inputs: Sequence[Path],
    params: Mapping[str, Any],
    progress: ProgressCallback,
    model: ModelIdentity | None = None,
    limits: ImageLimits = DEFAULT_LIMITS,
) -> PipelineOutput:
    """Every face of every photo: box, confidence, landmarks, an aligned crop and an overlay.

    Only the detection copies (at most DETECTION_MAX_SIDE) of all photos are held together; a
    larger photo is decoded again for its crops, so a job holds one full-size photo at a time
    (30 photos of 40 Mpx would otherwise need 3.6 GB).
    """
    face_params = FaceParams.from_params(params)
    count = max(1, len(inputs))
    # Progress after every photo and every detector batch: each report is also where a
    # cancelled job stops (the callback raises), so a 30-photo job stops within one batch.
    copies = []
    for position, path in enumerate(inputs):
        copies.append(_detection_copy(load_photo(path, limits)))
        progress(10 * (position + 1) // count)
    faces_per_photo = _detect_on_copies(
        detector, copies, face_params, lambda done: progress(10 + 60 * done // count)
    )
    artifacts: list[ArtifactData] = []
    photo_results: list[dict[str, Any]] = []
    for position, (path, (copy, scale), faces) in enumerate(
        zip(inputs, copies, faces_per_photo, strict=True)
    ):
        if position:
            progress(70 + 29 * position // count)
        photo = copy if scale == 1.0 else load_photo(path, limits)
        faces_json = []
        for index, face in enumerate(faces):
            name = crop_artifact_name(position, index)
            crop = crop_face(photo, face, face_params.crop_size)
            artifacts.append(ArtifactData(name, "image/png", png_bytes(Image.fromarray(crop))))
            faces_json.append({**face.as_json(), "crop": name})
        overlay = overlay_artifact_name(position)
        artifacts.append(ArtifactData(overlay, "image/png", overlay_png(photo, faces)))
        photo_results.append(
            {
                "position": position,
                "width": int(photo.shape[1]),
                "height": int(photo.shape[0]),
                "face_found": bool(faces),
                "faces": faces_json,
                "overlay": overlay,
            }
        )
    result = {
        "photos": photo_results,
        "faces_total": sum(len(faces) for faces in faces_per_photo),
        "photos_without_faces": [item["position"] for item in photo_results if not item["faces"]],
        "crop_size": face_params.crop_size,
        "min_confidence": face_params.min_confidence,
        "min_face_size": face_params.min_face_size,
        "largest_only": face_params.largest_only,
    }
    return PipelineOutput(result, artifacts, model)
