"""The HC18 fetal head dataset: listing, subject-level split, loading at the model's input size."""

from __future__ import annotations

import csv
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

CSV_NAME = "training_set_pixel_size_and_HC.csv"
SPLIT_SEED = 18
VALIDATION_FRACTION = 0.2
SPLIT_FILE = Path(__file__).resolve().parent / "hc18_split.json"


@dataclass(frozen=True)
class Hc18Image:
    """One annotated image: file names, pixel size and the sonographer's head circumference."""

    name: str
    image_path: Path
    mask_path: Path
    pixel_size_mm: float
    head_circumference_mm: float

    @property
    def subject(self) -> str:
        """The examination number: images sharing it come from one subject."""
        return re.match(r"\d+", self.name).group(0)  # type: ignore[union-attr]


def list_images(data_dir: Path) -> list[Hc18Image]:
    """Every image of the CSV, in CSV order."""
    with (data_dir / CSV_NAME).open() as handle:
        return [
            Hc18Image(
                row["filename"],
                data_dir / "images" / row["filename"],
                data_dir / "images" / row["filename"].replace(".png", "_Mask.png"),
                float(row["pixel size(mm)"]),
                float(row["head circumference (mm)"]),
            )
            for row in csv.DictReader(handle)
        ]


def split_by_subject(
    images: list[Hc18Image], seed: int = SPLIT_SEED
) -> tuple[list[Hc18Image], list[Hc18Image]]:
    """(train, validation): a fixed random 20 % of subjects, all their images, for validation."""
    subjects = sorted({image.subject for image in images})
    random.Random(seed).shuffle(subjects)
    held_out = set(subjects[: round(len(subjects) * VALIDATION_FRACTION)])
    train = [image for image in images if image.subject not in held_out]
    validation = [image for image in images if image.subject in held_out]
    return train, validation


def write_split(
    train: list[Hc18Image], validation: list[Hc18Image], path: Path = SPLIT_FILE
) -> None:
    """Record the split (file names per side) next to the code."""
    path.write_text(
        json.dumps(
            {
                "seed": SPLIT_SEED,
                "rule": "subjects (leading number of the file name) shuffled with the seed; "
                "the first 20 % of subjects, with all their images, are validation",
                "train": [image.name for image in train],
                "validation": [image.name for image in validation],
            },
            indent=1,
        )
        + "\n"
    )


def load_gray(path: Path) -> np.ndarray:
    """An image as 8-bit grayscale (H, W)."""
    with Image.open(path) as image:
        return np.asarray(image.convert("L"))


def load_mask(path: Path) -> np.ndarray:
    """A ground-truth mask as bool (H, W)."""
    return load_gray(path) >= 128


def resize(array: np.ndarray, height: int, width: int, resample: Image.Resampling) -> np.ndarray:
    """Resize a 2-D uint8 array."""
    return np.asarray(Image.fromarray(array).resize((width, height), resample))


def load_images(images: list[Hc18Image], height: int, width: int) -> np.ndarray:
    """Images at the input size (bilinear), scaled to [0, 1], as (N, H, W, 1) float32."""
    x = np.stack(
        [resize(load_gray(i.image_path), height, width, Image.Resampling.BILINEAR) for i in images]
    )
    return (x[..., None] / 255.0).astype(np.float32)


def load_training_arrays(
    images: list[Hc18Image], height: int, width: int, soft_targets: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Images scaled to [0, 1] and masks, both (N, H, W, 1) float32 at the input size.

    Masks are 0/1 (bilinear, thresholded at half), or with ``soft_targets`` the share of each
    input pixel the full-size mask covers (area resampling): the edge then says where within
    its pixel the boundary lies, which a 0/1 target rounds to the grid.
    """
    masks = [(load_mask(i.mask_path) * 255).astype(np.uint8) for i in images]
    if soft_targets:
        y = np.stack([resize(m, height, width, Image.Resampling.BOX) / 255.0 for m in masks])
    else:
        y = np.stack([resize(m, height, width, Image.Resampling.BILINEAR) >= 128 for m in masks])
    return load_images(images, height, width), y[..., None].astype(np.float32)
