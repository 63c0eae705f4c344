"""A synthetic dataset of face-photo series on which a skin condition improves or deteriorates.

No public dataset of this kind exists (the SkinCredible original used a clinic's private photos),
so this module makes one, reproducibly from a seed:

- Faces: aligned crops (``pipelines.faces``, the same alignment the service applies) of the two
  portraits that ship with scikit-image, free of copyright: ``astronaut`` (Eileen Collins, NASA,
  public domain) and ``camera`` (a man with a camera, CC0 by Lav Varshney; grey, given a random
  skin tone), each also mirrored. Per series the
  skin tone, contrast and gamma are varied.
- Condition: spots (small red-brown blobs at fixed places on the face) and redness (tinted
  cheeks), whose severity moves from a start level to an end level over the series along a random
  monotone curve with noise. The label is 1 ("improving") when the end is milder than the start.
- Nuisances per photo: lighting (gain, colour cast), pose jitter (rotation, scale, shift), sensor
  noise, blur, and missing photos (masked out; their pixels are replaced by junk so a model that
  peeked at them would be punished).

What it is not: real skin, real conditions, real patients. See the model card.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

MAX_FRAMES = 30
FRAME_SIZE = 64
# Base faces are kept a little larger than the frame so pose jitter never shows an edge.
BASE_SIZE = 80
MIN_TREND = 0.3
MISSING_RATE = 0.15


@dataclass(frozen=True)
class SequenceBatch:
    """Padded series: frames (N, T, H, W, 3) uint8, mask (N, T) bool, labels (N,) 0/1."""

    frames: np.ndarray
    mask: np.ndarray
    labels: np.ndarray
    lengths: np.ndarray


def base_faces() -> list[np.ndarray]:
    """Aligned RGB crops (BASE_SIZE) of the public-domain faces shipped with scikit-image."""
    from skimage import data

    from models.face_detector import face_detector
    from pipelines.faces import FaceParams, crop_face, detect_faces

    photos = [data.astronaut(), np.stack([data.camera()] * 3, axis=-1)]
    detector = face_detector().detector
    params = FaceParams(min_confidence=0.95, min_face_size=40, largest_only=True)
    faces: list[np.ndarray] = []
    for photo, found in zip(photos, detect_faces(detector, photos, params), strict=True):
        if not found:
            raise RuntimeError("a reference face was not detected; the detector is broken")
        crop = crop_face(photo, found[0], BASE_SIZE)
        faces.extend([crop, np.ascontiguousarray(crop[:, ::-1])])
    return faces


def _skin_tone(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Vary colour: grey faces get a random skin tint, colour faces a random shift."""
    image = face.astype(np.float32) / 255.0
    if np.allclose(image[..., 0], image[..., 1], atol=0.02):
        tint = np.array([rng.uniform(0.95, 1.1), rng.uniform(0.7, 0.88), rng.uniform(0.55, 0.78)])
        image = image * tint
    else:
        image = image * rng.uniform(0.8, 1.15, size=3) ** 0.5
    gamma = math.exp(rng.uniform(-0.35, 0.35))
    return np.clip(image, 0.0, 1.0) ** gamma


def _blob_field(
    centres: np.ndarray, radii: np.ndarray, size: int, grid: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    """Sum of Gaussian blobs (values 0..1) at the given centres and radii."""
    yy, xx = grid
    field = np.zeros((size, size), dtype=np.float32)
    for (cx, cy), radius in zip(centres, radii, strict=True):
        if radius <= 0.05:
            continue
        field += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * radius**2))
    return np.clip(field, 0.0, 1.0)


@dataclass(frozen=True)
class _Condition:
    spot_centres: np.ndarray
    spot_radii: np.ndarray
    spot_colour: np.ndarray
    spot_weight: float
    redness_weight: float


def _random_condition(rng: np.random.Generator) -> _Condition:
    count = int(rng.integers(4, 15))
    # Skin areas of an aligned face (BASE_SIZE coordinates): forehead, cheeks, chin.
    scale = BASE_SIZE / 112.0
    centres = np.stack(
        [rng.uniform(28, 84, count) * scale, rng.uniform(30, 100, count) * scale], axis=1
    )
    return _Condition(
        spot_centres=centres,
        spot_radii=rng.uniform(2.0, 4.5, count) * scale * 1.4,
        spot_colour=np.array(
            [rng.uniform(0.55, 0.8), rng.uniform(0.1, 0.3), rng.uniform(0.1, 0.25)]
        ),
        spot_weight=float(rng.uniform(0.6, 1.0)),
        redness_weight=float(rng.uniform(0.3, 1.0)),
    )


def _render(face: np.ndarray, condition: _Condition, severity: float, grid: tuple) -> np.ndarray:
    """The face (float RGB 0..1, BASE_SIZE) with the condition at this severity (0..1)."""
    scale = BASE_SIZE / 112.0
    cheeks = _blob_field(
        np.array([[36 * scale, 78 * scale], [76 * scale, 78 * scale]]),
        np.array([11 * scale, 11 * scale]),
        BASE_SIZE,
        grid,
    )
    redness = (0.45 * condition.redness_weight * severity * cheeks)[..., None]
    image = face * (1 - redness) + np.array([0.85, 0.25, 0.25]) * redness
    spots = _blob_field(
        condition.spot_centres, condition.spot_radii * math.sqrt(severity), BASE_SIZE, grid
    )
    alpha = (condition.spot_weight * min(1.0, 1.5 * severity) * spots)[..., None]
    return image * (1 - alpha) + condition.spot_colour * alpha


def _photograph(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One photo of the face: pose jitter, lighting, noise and blur, cropped to FRAME_SIZE."""
    pil = Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8))
    angle = math.radians(rng.uniform(-7, 7))
    zoom = rng.uniform(0.94, 1.06) * FRAME_SIZE / BASE_SIZE * 1.12
    shift = rng.uniform(-3, 3, size=2)
    centre = BASE_SIZE / 2
    # Inverse map: output pixel -> source pixel (rotation and zoom about the centre, plus shift).
    cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
    out_centre = FRAME_SIZE / 2
    a, b = cos, -sin
    d, e = sin, cos
    c = centre - a * out_centre - b * out_centre + shift[0]
    f = centre - d * out_centre - e * out_centre + shift[1]
    frame = pil.transform(
        (FRAME_SIZE, FRAME_SIZE),
        Image.Transform.AFFINE,
        (a, b, c, d, e, f),
        resample=Image.Resampling.BILINEAR,
    )
    if rng.random() < 0.2:
        frame = frame.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    pixels = np.asarray(frame).astype(np.float32)
    pixels = pixels * rng.uniform(0.75, 1.25) * rng.uniform(0.92, 1.08, size=3)
    pixels += rng.normal(0, rng.uniform(0, 6), size=pixels.shape)
    return np.clip(np.round(pixels), 0, 255).astype(np.uint8)


def _severities(length: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    while True:
        start, end = rng.uniform(0, 1, size=2)
        if abs(end - start) >= MIN_TREND:
            break
    curve = np.linspace(0, 1, length) ** math.exp(rng.uniform(-0.7, 0.7))
    levels = start + (end - start) * curve + rng.normal(0, 0.04, size=length)
    return np.clip(levels, 0, 1), int(end < start)


def make_sequences(count: int, seed: int, faces: list[np.ndarray] | None = None) -> SequenceBatch:
    """``count`` series of 2..MAX_FRAMES photos, half improving, padded to MAX_FRAMES."""
    rng = np.random.default_rng(seed)
    faces = faces if faces is not None else base_faces()
    grid = np.mgrid[0:BASE_SIZE, 0:BASE_SIZE].astype(np.float32)
    grid_yx = (grid[0], grid[1])
    frames = np.zeros((count, MAX_FRAMES, FRAME_SIZE, FRAME_SIZE, 3), dtype=np.uint8)
    mask = np.zeros((count, MAX_FRAMES), dtype=bool)
    labels = np.zeros(count, dtype=np.int32)
    lengths = rng.integers(2, MAX_FRAMES + 1, size=count)
    for index in range(count):
        length = int(lengths[index])
        face = _skin_tone(faces[int(rng.integers(len(faces)))], rng)
        condition = _random_condition(rng)
        levels, labels[index] = _severities(length, rng)
        present = rng.random(length) >= MISSING_RATE
        # At least two photos per series must be usable, or there is no trend to see.
        present[rng.choice(length, size=2, replace=False)] = True
        for step in range(length):
            if present[step]:
                frames[index, step] = _photograph(
                    _render(face, condition, levels[step], grid_yx), rng
                )
            else:
                frames[index, step] = rng.integers(0, 256, size=frames.shape[2:], dtype=np.uint8)
        mask[index, :length] = present
    return SequenceBatch(frames, mask, labels, lengths)
