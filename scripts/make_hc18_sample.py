"""Copy the small HC18 sample the tests use (tests/data/hc18) out of the full development set.

    python -m scripts.make_hc18_sample --data ../shared/datasets/hc18 --out tests/data/hc18

The choice depends only on file names and the recorded split, never on how a model does on them:
- the first six validation images (models/hc18_split.json), which the U-Net test scores;
- every tenth validation image, a spread over the whole gestational range (the CSV runs roughly
  from early to late pregnancy), for the trimester classifier;
- the masks the perimeter tests measure (tests/pipelines/test_perimeter.py HC18_SAMPLE), among
  them 346, whose head is cut by the image border.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

from lab.hc18 import CSV_NAME, SPLIT_FILE

PERIMETER_NAMES = [
    *("000_HC.png", "010_HC.png", "010_2HC.png", "100_HC.png", "250_HC.png", "346_HC.png"),
    *("500_HC.png", "700_HC.png", "799_HC.png"),
]


def sample_names(validation: list[str]) -> set[str]:
    """The file names of the sample: see the module docstring."""
    return {*validation[:6], *validation[::10], *PERIMETER_NAMES}


def copy_sample(data: Path, out: Path, names: set[str]) -> int:
    """Copy the images, their masks and their CSV rows (in CSV order); return the image count."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    with (data / CSV_NAME).open() as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [row for row in reader if row[0] in names]
    with (out / CSV_NAME).open("w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows([header, *rows])
    for row in rows:
        for name in (row[0], row[0].replace(".png", "_Mask.png")):
            shutil.copyfile(data / "images" / name, out / "images" / name)
    return len(rows)


def main() -> None:
    """Parse the arguments and copy the sample."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the full HC18 folder")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    validation = json.loads(SPLIT_FILE.read_text())["validation"]
    print(f"copied {copy_sample(args.data, args.out, sample_names(validation))} images")


if __name__ == "__main__":
    main()
