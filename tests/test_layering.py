"""Dependencies between our packages point one way: an import that runs back up fails here.

core is the kernel every process runs on; webapp (HTTP), tasks and workers (job work), scheduler
(beat-driven work) sit on it; pipelines are pure image code below everything; models serve them
to the workers. Every module of each package is read with ``ast`` (nothing is imported), so
imports inside functions count too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

OURS = ("core", "webapp", "workers", "tasks", "scheduler", "models", "pipelines")
# Third-party modules that would make the web process load the model stack.
MODEL_STACK = ("tensorflow", "keras", "mtcnn")

# Package -> the modules (ours or not) it must never import.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "core": ("webapp", "workers", "tasks", "scheduler", "models"),
    "pipelines": tuple(p for p in OURS if p != "pipelines"),
    "tasks": ("webapp", "workers", "scheduler"),
    "workers": ("webapp", "tasks"),
    "scheduler": ("webapp", "workers", "tasks", "models"),
    "webapp": ("tasks", "workers", "scheduler", "models", *MODEL_STACK),
    "models": ("webapp", "workers", "tasks", "scheduler"),
}


def imported_modules(source: str, module: str) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every import in the source, relative ones resolved."""
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            yield node.lineno, name


def is_within(name: str, roots: tuple[str, ...]) -> bool:
    """Whether the dotted name is one of the roots or inside one."""
    return any(name == root or name.startswith(root + ".") for root in roots)


def violations(package: str, root: Path = REPO_ROOT) -> list[str]:
    """``path:line imports name`` for every forbidden import in the package."""
    found = []
    for path in sorted((root / package).rglob("*.py")):
        relative = path.relative_to(root)
        module = ".".join(relative.with_suffix("").parts)
        for line, name in imported_modules(path.read_text(encoding="utf-8"), module):
            if is_within(name, FORBIDDEN[package]):
                found.append(f"{relative}:{line} imports {name}")
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package: str) -> None:
    assert (REPO_ROOT / package / "__init__.py").exists()
    assert violations(package) == []


def test_an_import_back_up_is_caught(tmp_path: Path) -> None:
    """The check sees a bad import at module level and inside a function."""
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "__init__.py").write_text("")
    (tmp_path / "core" / "bad.py").write_text(
        "from core.records import Job\n"
        "import webapp.errors\n"
        "def f():\n"
        "    from tasks.runner import run_job\n"
    )
    (tmp_path / "core" / "sub").mkdir()
    (tmp_path / "core" / "sub" / "rel.py").write_text("from .. import records\nimport keras\n")
    assert violations("core", root=tmp_path) == [
        "core/bad.py:2 imports webapp.errors",
        "core/bad.py:4 imports tasks.runner",
    ]
