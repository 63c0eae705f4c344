"""The runtime never imports the lab: training, datasets and evaluation stay out of the images."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAB = "lab"
# Every package the project installs, but the lab itself.
RUNTIME_PACKAGES = [
    pattern.rstrip("*")
    for pattern in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    if pattern.rstrip("*") != LAB
]


def lab_imports(source: str) -> list[str]:
    """The modules of the lab that ``source`` imports, at any depth (functions included)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [name for name in names if name == LAB or name.startswith(f"{LAB}.")]
    return found


def test_the_runtime_packages_are_the_installed_ones() -> None:
    assert {"webapp", "workers", "tasks", "pipelines", "models", "scheduler"} <= set(
        RUNTIME_PACKAGES
    )
    assert LAB not in RUNTIME_PACKAGES


def test_the_check_sees_every_form_of_import() -> None:
    source = "import lab.train\ndef f():\n    from lab.hc18 import list_images\nimport labrador\n"
    assert lab_imports(source) == ["lab.train", "lab.hc18"]


@pytest.mark.parametrize("package", RUNTIME_PACKAGES)
def test_runtime_package_does_not_import_the_lab(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    offenders = {
        str(path.relative_to(ROOT)): imports
        for path in files
        if (imports := lab_imports(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}
