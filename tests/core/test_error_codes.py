"""One catalogue of error codes: every code the code base raises is in it, with the statuses it
is raised with; the README's table is the catalogue's."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from core.error_codes import (
    CATALOGUE,
    ERROR_CODES,
    MARKDOWN_END,
    MARKDOWN_START,
    markdown_table,
)
from tests.conftest import REPO_ROOT

PACKAGES = ("core", "webapp", "tasks", "workers", "scheduler", "pipelines", "models")
# Calls that take an error code, and the position of the code among their arguments.
CODE_ARGUMENT = {
    "ApiError": 1,
    "error_response": 1,
    "_unauthorized": 0,
    "PipelineError": 0,
    "JobRequestError": 0,
    "fail": 1,
}
# Calls whose code argument is a variable on purpose: (module, enclosing function). The
# snake_case strings in those functions must be catalogued too.
PASS_THROUGH = {
    ("core/job_state.py", "fail"),  # records the code it is given
    ("webapp/auth.py", "_unauthorized"),  # a 401 with the code it is given
    ("webapp/errors.py", "_api_error"),  # answers an ApiError with its code
    ("webapp/errors.py", "_job_request_error"),  # answers a JobRequestError with its code
    ("webapp/errors.py", "_http_error"),  # Werkzeug's name of the status (generic codes)
    ("webapp/quotas.py", "check_queue_quota"),  # one of its two quota codes
    ("webapp/uploads.py", "_check_dicom"),  # a PipelineError's code, invalid_image renamed
    ("tasks/runner.py", "_run_claimed"),  # a PipelineError's code
    ("pipelines/dicom.py", "_check_pillow_frame"),  # image_too_large or invalid_image by size
}
SNAKE = re.compile(r"^[a-z]+(?:_[a-z0-9]+)+$")


@dataclass(frozen=True)
class Use:
    """One place the code base raises or records an error code."""

    where: str
    code: str
    call: str
    status: int | None


def _module_strings(trees: dict[str, ast.Module]) -> dict[str, str]:
    """Module-level ``NAME = "text"`` constants of every module (e.g. WORKER_LOST)."""
    found = {}
    for tree in trees.values():
        for node in tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                for target in node.targets:
                    if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                        found[target.id] = node.value.value
    return found


def _functions(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


class _Reader(ast.NodeVisitor):
    """Collects the error codes of one module, with the function each call sits in."""

    def __init__(self, module: str, constants: dict[str, str]) -> None:
        self.module = module
        self.constants = constants
        self.functions: list[str] = ["<module>"]
        self.uses: list[Use] = []
        self.dynamic: set[tuple[str, str]] = set()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.functions.append(node.name)
        self.generic_visit(node)
        self.functions.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        argument = None
        if name in CODE_ARGUMENT and len(node.args) > CODE_ARGUMENT[name]:
            argument = node.args[CODE_ARGUMENT[name]]
        for keyword in node.keywords:
            if keyword.arg == "error_code":
                argument, name = keyword.value, "error_code"
        if argument is None:
            return
        status = None
        if name in {"ApiError", "error_response"} and isinstance(node.args[0], ast.Constant):
            status = node.args[0].value
        elif name == "_unauthorized":
            status = 401
        elif name == "JobRequestError":
            status = 400
        where = f"{self.module}:{node.lineno}"
        if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
            self.uses.append(Use(where, argument.value, name, status))
        elif isinstance(argument, ast.Name) and argument.id in self.constants:
            self.uses.append(Use(where, self.constants[argument.id], name, status))
        else:
            self.dynamic.add((self.module, self.functions[-1]))


def code_uses(root: Path = REPO_ROOT) -> tuple[list[Use], set[tuple[str, str]]]:
    """Every literal error code in the code base, and the pass-through sites (module, function)."""
    trees = {
        str(path.relative_to(root)): ast.parse(path.read_text(encoding="utf-8"))
        for package in PACKAGES
        for path in sorted((root / package).rglob("*.py"))
    }
    constants = _module_strings(trees)
    uses: list[Use] = []
    dynamic: set[tuple[str, str]] = set()
    for module, tree in trees.items():
        reader = _Reader(module, constants)
        reader.visit(tree)
        uses += reader.uses
        dynamic |= reader.dynamic
    return uses, dynamic


def _pass_through_strings(root: Path = REPO_ROOT) -> dict[str, str]:
    """snake_case string literals in the pass-through functions: the codes they may answer."""
    found = {}
    for module, name in PASS_THROUGH:
        tree = ast.parse((root / module).read_text(encoding="utf-8"))
        for function in _functions(tree):
            if function.name != name:
                continue
            for node in ast.walk(function):
                text = node.value if isinstance(node, ast.Constant) else None
                if isinstance(text, str) and SNAKE.match(text):
                    found[text] = f"{module}:{node.lineno}"
    return found


def test_every_code_used_is_catalogued_with_its_status() -> None:
    uses, _dynamic = code_uses()
    assert len(uses) > 40  # the reader finds them: a broken reader would pass vacuously
    missing = sorted({f"{use.code} ({use.where})" for use in uses if use.code not in ERROR_CODES})
    assert missing == []
    wrong_status = [
        f"{use.code} raised with {use.status} at {use.where}"
        for use in uses
        if use.status is not None and use.status not in ERROR_CODES[use.code].http
    ]
    assert wrong_status == []
    job_codes = [
        f"{use.code} at {use.where}"
        for use in uses
        if use.call in {"PipelineError", "fail", "error_code"}
        and not ERROR_CODES[use.code].job_failure
        # The web turns a PipelineError from the upload checks into an HTTP answer.
        and ERROR_CODES[use.code].http == ()
    ]
    assert job_codes == []


def test_codes_passed_through_variables_are_known_sites() -> None:
    _uses, dynamic = code_uses()
    assert dynamic == PASS_THROUGH
    strings = _pass_through_strings()
    assert {"too_many_queued_jobs", "queue_quota_exceeded", "corrupt_image"} <= set(strings)
    assert sorted(code for code in strings if code not in ERROR_CODES) == []


def test_every_catalogued_code_is_used() -> None:
    uses, _dynamic = code_uses()
    used = {use.code for use in uses} | set(_pass_through_strings())
    stale = [entry.code for entry in CATALOGUE if not entry.generic and entry.code not in used]
    assert stale == []


def test_the_reader_catches_an_uncatalogued_code(tmp_path: Path) -> None:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / "webapp" / "bad.py").write_text(
        "WHY = 'made_up_reason'\n"
        "def view():\n"
        "    raise ApiError(418, 'teapot_refused', 'no')\n"
        "def task(job_id):\n"
        "    job_state.fail(job_id, WHY, 'no')\n"
        "    return PipelineError(some_code, 'no')\n"
    )
    uses, dynamic = code_uses(tmp_path)
    assert [(use.code, use.status) for use in uses] == [
        ("teapot_refused", 418),
        ("made_up_reason", None),
    ]
    assert dynamic == {("webapp/bad.py", "task")}
    assert "made_up_reason" not in ERROR_CODES and "teapot_refused" not in ERROR_CODES


def test_codes_are_unique_and_snake_case() -> None:
    codes = [entry.code for entry in CATALOGUE]
    assert len(codes) == len(set(codes))
    assert all(SNAKE.match(code) for code in codes)
    assert all(entry.http or entry.job_failure for entry in CATALOGUE)
    assert all("|" not in entry.meaning for entry in CATALOGUE)  # a Markdown table cell


def test_readme_error_table_is_the_catalogue() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index(MARKDOWN_START)
    end = readme.index(MARKDOWN_END) + len(MARKDOWN_END)
    assert readme[start:end] == markdown_table(), "run: python -m core.error_codes --markdown"
