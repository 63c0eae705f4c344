"""Images per second of the registry models at batch 1 and at the batch sizes a worker forms.

    KERAS_BACKEND=jax python scripts/gpu_batch_bench.py [--batches 1 2 4 8 16 32] [--seconds 3]

For a GPU machine without TensorFlow and without registry access: it needs only numpy and Keras 3
(on JAX there; the keras wheel can be carried) and reads the ``.keras`` files of
models/registry directly, checking each against its manifest's sha256. Nothing of the project is
imported. Every batch size is compiled first (one untimed call), then called for ``--seconds``;
each call's output is copied to the host, so the time includes the device finishing it. The
MTCNN face detector is TensorFlow-only and not measured here. Prints a Markdown table (with the
device's name) and, with $OUT set, writes it to $OUT/gpu_batch_bench.md too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

REGISTRY = Path(__file__).resolve().parent.parent / "models" / "registry"


def manifests(registry: Path) -> list[tuple[Path, dict]]:
    """(folder, manifest) of every model version in the registry, in name order."""
    return [
        (path.parent, json.loads(path.read_text()))
        for path in sorted(registry.glob("*/*/manifest.json"))
    ]


def verified_weights(folder: Path, manifest: dict) -> Path:
    """The weights file, after checking its sha256 against the manifest."""
    weights = folder / manifest["file"]
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    if digest != manifest["sha256"]:
        raise SystemExit(f"{weights}: sha256 {digest} is not the manifest's {manifest['sha256']}")
    return weights


def model_input(manifest: dict, batch: int) -> object:
    """A random batch of the model's input: images, or a full series and its mask."""
    rng = np.random.default_rng(0)
    frame = (manifest["input_height"], manifest["input_width"], manifest["channels"])
    if manifest.get("max_frames"):
        frames = manifest["max_frames"]
        return {
            "frames": rng.uniform(0, 255, (batch, frames, *frame)).astype(np.float32),
            "mask": np.ones((batch, frames), dtype=bool),
        }
    return rng.uniform(0, 1, (batch, *frame)).astype(np.float32)


def images_per_second(model: object, x: object, batch: int, seconds: float) -> tuple[float, float]:
    """(ms per call, inputs per second) over ``seconds`` of calls, after one compiling call."""
    np.asarray(model.predict_on_batch(x))
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or calls < 3:
        np.asarray(model.predict_on_batch(x))
        calls += 1
    elapsed = time.perf_counter() - started
    return 1000 * elapsed / calls, batch * calls / elapsed


def device_name() -> str:
    """The accelerator Keras runs on (its backend's view)."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return f"{device.device_kind} (jax {jax.__version__}, {device.platform})"
    return f"{backend} backend"


def main() -> None:
    """Measure every model at every batch size; print (and save) the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--registry", type=Path, default=REGISTRY)
    args = parser.parse_args()
    import keras

    lines = [
        f"Model calls on {device_name()}, keras {keras.__version__}:",
        "",
        "| model | batch | ms per call | inputs/s | vs batch 1 |",
        "|---|---:|---:|---:|---:|",
    ]
    print("\n".join(lines), flush=True)
    for folder, manifest in manifests(args.registry):
        model = keras.saving.load_model(verified_weights(folder, manifest), compile=False)
        single = None
        for batch in args.batches:
            ms, rate = images_per_second(model, model_input(manifest, batch), batch, args.seconds)
            single = single or rate
            line = (
                f"| {manifest['name']} {manifest['version']} | {batch} | {ms:.2f} | {rate:.0f} "
                f"| {rate / single:.1f}x |"
            )
            lines.append(line)
            print(line, flush=True)
    if os.environ.get("OUT"):
        (Path(os.environ["OUT"]) / "gpu_batch_bench.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
