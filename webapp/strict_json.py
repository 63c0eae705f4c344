"""JSON from users, parsed strictly: bounded size and nesting, finite numbers only."""

from __future__ import annotations

import json
import math
from typing import Any


def nesting_depth(text: str) -> int:
    """How deep JSON arrays and objects nest in the text (brackets inside strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is too large a number")
    return value


def loads(text: str, *, max_chars: int, max_depth: int) -> Any:
    """Parse JSON, or raise ValueError saying why not (an integer of over 4300 digits too).

    Size and depth are checked before parsing: Python's parser recurses once per level, and a
    100,000-deep nest would end in a RecursionError. NaN, Infinity and numbers that overflow a
    float (1e400) are refused: they cannot be stored (Postgres) or sent back as JSON.
    """
    if len(text) > max_chars:
        raise ValueError(f"longer than {max_chars} characters")
    if nesting_depth(text) > max_depth:
        raise ValueError(f"nested deeper than {max_depth} levels")
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise ValueError(exc.msg) from None
