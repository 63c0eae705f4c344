"""The log every trainer writes beside its checkpoint: what ran, how long, and every epoch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_training_log(folder: Path, history: dict[str, list[float]], **fields: Any) -> Path:
    """Write ``folder/training.json``: the given fields and the per-epoch history, rounded."""
    log = {
        **fields,
        "history": {name: [round(float(v), 5) for v in values] for name, values in history.items()},
    }
    path = folder / "training.json"
    path.write_text(json.dumps(log, indent=1))
    return path
