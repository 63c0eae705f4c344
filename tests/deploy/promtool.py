"""Running Debian's promtool (the prometheus package, installed by `make test-tools`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

PROMTOOL = Path(shutil.which("promtool") or "/usr/bin/promtool")


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run promtool in ``cwd`` (relative rule_files resolve there) and return its result."""
    assert PROMTOOL.is_file(), "promtool missing: `make test-tools` installs Debian's prometheus"
    return subprocess.run(
        [str(PROMTOOL), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
