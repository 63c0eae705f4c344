"""Measure every HC18 mask with the perimeter pipeline and compare with the reference circumference.

python -m lab.evaluate_perimeter --data ../shared/datasets/hc18
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lab.hc18 import list_images
from pipelines.base import PipelineError
from pipelines.perimeter import load_mask, measure_perimeter


@dataclass(frozen=True)
class Comparison:
    """One image: measured and reference circumference in mm, and the result's flags."""

    name: str
    measured_mm: float
    reference_mm: float
    flags: tuple[str, ...]

    @property
    def difference_mm(self) -> float:
        """Measured minus reference."""
        return self.measured_mm - self.reference_mm


def compare_dataset(data_dir: Path) -> tuple[list[Comparison], list[tuple[str, str]]]:
    """Measure each mask listed in the CSV; returns comparisons and (name, error code) failures."""
    comparisons: list[Comparison] = []
    failures: list[tuple[str, str]] = []
    for image in list_images(data_dir):
        try:
            measurement = measure_perimeter(load_mask(image.mask_path), image.pixel_size_mm)
        except PipelineError as exc:
            failures.append((image.name, exc.code))
            continue
        comparisons.append(
            Comparison(
                image.name,
                measurement.circumference_mm,
                image.head_circumference_mm,
                measurement.quality_flags,
            )
        )
    return comparisons, failures


def report(comparisons: list[Comparison], failures: list[tuple[str, str]], seconds: float) -> str:
    """A plain-text table of the agreement with the reference."""
    differences = np.array([c.difference_mm for c in comparisons])
    absolute = np.abs(differences)
    flags = Counter(flag for c in comparisons for flag in c.flags)
    lines = [
        f"{'masks measured':<34}{len(comparisons)}",
        f"{'failed':<34}{len(failures)} {failures[:5] if failures else ''}",
        f"{'mean |measured - reference| (mm)':<34}{absolute.mean():.3f}",
        f"{'mean measured - reference (mm)':<34}{differences.mean():+.3f}",
        f"{'median |difference| (mm)':<34}{np.median(absolute):.3f}",
        f"{'95th percentile |difference| (mm)':<34}{np.percentile(absolute, 95):.3f}",
        f"{'max |difference| (mm)':<34}{absolute.max():.3f}",
        f"{'quality flags':<34}{dict(flags) or 'none'}",
        f"{'wall time (s)':<34}{seconds:.1f}"
        f" ({1000 * seconds / max(1, len(comparisons)):.1f} ms per mask)",
        "worst cases:",
    ]
    for c in sorted(comparisons, key=lambda c: -abs(c.difference_mm))[:5]:
        lines.append(
            f"  {c.name:<14} measured {c.measured_mm:8.2f}  reference {c.reference_mm:8.2f}"
            f"  difference {c.difference_mm:+.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="HC18 folder (images/ and CSV)")
    args = parser.parse_args()
    started = time.perf_counter()
    comparisons, failures = compare_dataset(args.data)
    print(report(comparisons, failures, time.perf_counter() - started))


if __name__ == "__main__":
    main()
