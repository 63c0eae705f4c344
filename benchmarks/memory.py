"""Peak memory (RSS) of every job type on the largest input it accepts, against its budget.

    python -m benchmarks --memory        (also part of ``make bench``)

Each job type runs in a fresh Python process, as in a worker: imports, the model loaded and warmed
up on a small input, then the pipeline on the largest input the upload limits accept. The
process's peak resident set (``VmHWM``, the RSS high-water mark) is compared with the job type's
budget. The inputs:

- perimeter: one mask at MAX_IMAGE_PIXELS (6324 x 6324), an ellipse filling the frame;
- segmentation, head_circumference: one 8-bit RGB deflated DICOM at MAX_IMAGE_PIXELS (the scan
  that decodes largest: 120 MB, colour converted to grey), a head-like ellipse;
- classification: 30 such DICOMs (MAX_FILES_PER_JOB);
- face_extraction: 30 JPEG portraits at MAX_IMAGE_PIXELS (the astronaut, upscaled);
- sequence_inference: its last stage, the sequence model over 30 face crops (its photos run as
  face_extraction jobs, the row above).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pipelines.limits import DEFAULT_MAX_PIXELS

MAX_FILES = 30
SPACING_MM = 0.1
# Peak RSS budgets of a worker process running one job of the type on its largest input (MB):
# the process with its model loaded (TensorFlow on CPU), plus the job. The measured peaks (README)
# sit 15-35 % below. A GPU worker adds the CUDA libraries' resident size to the models' types.
BUDGET_MB: dict[str, int] = {
    "perimeter": 600,
    "segmentation": 1536,
    "head_circumference": 1536,
    "classification": 1280,
    "face_extraction": 2048,
    "sequence_inference": 1024,
}
JOB_TYPES = tuple(BUDGET_MB)


def largest_side() -> int:
    """The side of the largest square image MAX_IMAGE_PIXELS accepts."""
    return math.isqrt(DEFAULT_MAX_PIXELS)


def ellipse_image(side: int, mode: str = "L") -> Image.Image:
    """A bright filled ellipse over most of a dark square image."""
    image = Image.new(mode, (side, side), 0)
    margin = side // 20
    fill = 255 if mode == "L" else (200, 180, 160)
    ImageDraw.Draw(image).ellipse((margin, 2 * margin, side - margin, side - 3 * margin), fill=fill)
    return image


def rgb_dicom(pixels: np.ndarray, path: Path) -> None:
    """Write an 8-bit RGB Deflated Explicit VR Little Endian DICOM."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import (
        DeflatedExplicitVRLittleEndian,
        SecondaryCaptureImageStorage,
        generate_uid,
    )

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    dataset = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = "US"
    dataset.Rows, dataset.Columns = pixels.shape[:2]
    dataset.SamplesPerPixel = 3
    dataset.PlanarConfiguration = 0
    dataset.PhotometricInterpretation = "RGB"
    dataset.BitsAllocated = dataset.BitsStored = 8
    dataset.HighBit = 7
    dataset.PixelRepresentation = 0
    dataset.PixelSpacing = [f"{SPACING_MM}", f"{SPACING_MM}"]
    dataset.PixelData = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
    dataset.save_as(path, enforce_file_format=True)


def make_inputs(folder: Path) -> dict[str, Path]:
    """The largest accepted input of each kind, and small ones for warming up."""
    side = largest_side()
    paths = {
        "mask": folder / "mask.png",
        "small_mask": folder / "small_mask.png",
        "scan": folder / "scan.dcm",
        "small_scan": folder / "small_scan.png",
        "photo": folder / "photo.jpg",
        "small_photo": folder / "small_photo.jpg",
    }
    ellipse_image(side).save(paths["mask"], compress_level=1)
    ellipse_image(400).save(paths["small_mask"])
    rgb_dicom(np.asarray(ellipse_image(side, "RGB")), paths["scan"])
    ellipse_image(400).save(paths["small_scan"])
    from skimage import data

    portrait = Image.fromarray(data.astronaut())
    portrait.resize((side, side), Image.Resampling.BILINEAR).save(paths["photo"], quality=90)
    portrait.save(paths["small_photo"], quality=90)
    return paths


def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (kB there)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def current_rss_mb() -> float:
    """This process's resident memory now."""
    return _status_mb("VmRSS")


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (the RSS high-water mark).

    Not ``ru_maxrss``: Linux carries it across exec, so a child started by a large parent
    reports the parent's resident size at fork when that is larger than its own.
    """
    return _status_mb("VmHWM")


Runner = Callable[[], object]


def _job(job_type: str, paths: dict[str, Path]) -> tuple[Runner, Runner]:
    """(warm-up on a small input, the job on the largest input) for one job type."""
    from core.config import load_settings

    settings = load_settings()
    if job_type == "perimeter":
        from pipelines.perimeter import perimeter_pipeline

        params = {"pixel_spacing_mm": SPACING_MM}
        return (
            lambda: perimeter_pipeline([paths["small_mask"]], params),
            lambda: perimeter_pipeline([paths["mask"]], params),
        )
    if job_type in ("segmentation", "head_circumference"):
        from models.serving import segmentation_model
        from pipelines.head_circumference import measure_head
        from pipelines.segmentation import segmentation_pipeline

        loaded = segmentation_model(settings)
        params = {"pixel_spacing_mm": SPACING_MM}
        mask_path = paths["mask"].with_name("predicted_mask.png")

        def segment(scan: Path, with_overlay: bool = True) -> object:
            return segmentation_pipeline(
                [scan], params, model=loaded.model, manifest=loaded.manifest,
                with_overlay=with_overlay,
            )  # fmt: skip

        def head(scan: Path) -> object:
            mask_path.write_bytes(segment(scan, with_overlay=False).artifacts[0].data)
            manifest = loaded.manifest
            return measure_head(
                scan, mask_path, params, boundary_offset_px=manifest.boundary_offset_px,
                fit=manifest.ellipse_fit,
            )  # fmt: skip

        run = segment if job_type == "segmentation" else head
        return lambda: run(paths["small_scan"]), lambda: run(paths["scan"])
    if job_type == "classification":
        from models.serving import classification_model
        from pipelines.classification import classify_images

        classifier = classification_model(settings)

        def classify(scans: list[Path]) -> object:
            return classify_images(scans, classifier.model, classifier.manifest, 0.6, _ignore)

        return (
            lambda: classify([paths["small_scan"]]),
            lambda: classify([paths["scan"]] * MAX_FILES),
        )
    if job_type == "face_extraction":
        from models.face_detector import face_detector
        from pipelines.faces import extract_faces

        detector = face_detector().detector
        return (
            lambda: extract_faces(detector, [paths["small_photo"]], {}, _ignore),
            lambda: extract_faces(detector, [paths["photo"]] * MAX_FILES, {}, _ignore),
        )
    if job_type == "sequence_inference":
        from models.face_detector import face_detector
        from models.serving import sequence_model
        from pipelines.faces import extract_faces
        from pipelines.sequence import Frame, predict_trend

        detector = face_detector().detector
        crop = paths["photo"].with_name("crop.png")
        output = extract_faces(detector, [paths["small_photo"]], {"largest_only": True}, _ignore)
        crop.write_bytes(output.artifacts[0].data)
        model = sequence_model(settings)

        def predict(count: int) -> object:
            frames = [Frame(index, None, crop) for index in range(count)]
            return predict_trend(frames, model.model, model.manifest, _ignore)

        return lambda: predict(2), lambda: predict(MAX_FILES)
    raise ValueError(f"unknown job type {job_type}")


def _ignore(_percent: int) -> None:
    """A progress callback for in-process runs."""


def child(job_type: str, folder: Path) -> None:
    """In a fresh process: warm up, run the job once, print the memory figures as JSON."""
    paths = {path.stem: path for path in folder.iterdir()}
    warm_up, job = _job(job_type, paths)
    warm_up()
    before, peak_before = current_rss_mb(), peak_rss_mb()
    started = time.perf_counter()
    job()
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "rss_before_mb": before,
                "peak_before_mb": peak_before,
                "peak_mb": peak_rss_mb(),
                "seconds": seconds,
            }
        )
    )


def measure(job_type: str, folder: Path) -> dict[str, float]:
    """Run one job type in a fresh interpreter and return its figures."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", job_type, str(folder)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{job_type} memory run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory_table(job_types: tuple[str, ...] = JOB_TYPES) -> bool:
    """Measure every job type, print the table; whether all stayed within budget."""
    side = largest_side()
    print(
        f"\nPeak memory per job type, largest accepted input ({side}x{side} px = "
        f"{side * side / 1e6:.1f} Mpx; {MAX_FILES} files where a job takes several), "
        "each in a fresh process with its model loaded and warmed up:\n"
    )
    print(
        f"| {'job type':<19} | {'RSS before MB':>13} | {'peak RSS MB':>11} | "
        f"{'job adds MB':>11} | {'budget MB':>9} | {'within':>6} | {'job s':>6} |"
    )
    print(f"|{'-' * 21}|{'-' * 15}|{'-' * 13}|{'-' * 13}|{'-' * 11}|{'-' * 8}|{'-' * 8}|")
    all_within = True
    with tempfile.TemporaryDirectory(prefix="scanqueue-memory-") as scratch:
        folder = Path(scratch)
        make_inputs(folder)
        for job_type in job_types:
            figures = measure(job_type, folder)
            peak, budget = figures["peak_mb"], BUDGET_MB[job_type]
            within = peak <= budget
            all_within &= within
            print(
                f"| {job_type:<19} | {figures['rss_before_mb']:>13.0f} | {peak:>11.0f} | "
                f"{peak - figures['rss_before_mb']:>11.0f} | {budget:>9} | "
                f"{'yes' if within else 'NO':>6} | {figures['seconds']:>6.1f} |"
            )
    return all_within


if __name__ == "__main__":
    child(sys.argv[1], Path(sys.argv[2]))
