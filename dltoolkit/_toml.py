"""Reading recipe files and ``key.path=value`` overrides: TOML in, plain data out, every problem
as one line (no attrs, no components: :mod:`dltoolkit._config` validates what comes out)."""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dltoolkit._errors import DltkError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; a missing or broken file is a :class:`DltkError`."""
    from dltoolkit._paths import problem_with_file

    problem = problem_with_file(path, "recipe file")
    if problem is not None:
        raise DltkError(f"{path}: {problem}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DltkError(f"{path}: cannot read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DltkError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise DltkError(f"{path}: not valid TOML: nested too deeply") from None
    if _depth(data) > MAX_DEPTH:
        raise DltkError(f"{path}: not valid TOML: nested too deeply (more than {MAX_DEPTH} levels)")
    return data


MAX_DEPTH = 32
"""Deepest nesting of tables and arrays a recipe file may have (recipes need about 4)."""


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def parse_override(text: str) -> tuple[list[str | int], Any]:
    """``a.b=VALUE`` -> (["a", "b"], value). The value is TOML, or a plain string if not valid TOML."""
    if "=" not in text:
        raise ValueError(f"override '{text}': expected KEY=VALUE (for example recipe.epochs=3)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ValueError(f"override '{text}': '{key}' is not a key path like recipe.epochs")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    except RecursionError:
        raise ValueError(f"override '{key}': the value is nested too deeply") from None
    if _depth(value) > MAX_DEPTH:
        raise ValueError(f"override '{key}': the value is nested too deeply (more than {MAX_DEPTH} levels)")
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in key.split(".")]
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str], source: str) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``key.path=value`` applied; all problems at once."""
    data = copy.deepcopy(data)
    problems = []
    for text in overrides:
        try:
            parts, value = parse_override(text)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        node: Any = data
        for depth, part in enumerate(parts[:-1]):
            where = ".".join(str(p) for p in parts[: depth + 1])
            if isinstance(node, list):
                if not isinstance(part, int) or part >= len(node):
                    problems.append(f"{source}: {where}: no such entry (the array has {len(node)})")
                    break
                node = node[part]
            elif isinstance(node, dict):
                node = node.setdefault(str(part), {})
            else:
                problems.append(f"{source}: {where}: is {_show(node)}, not a table")
                break
        else:
            last = parts[-1]
            if isinstance(node, list):
                if not isinstance(last, int) or last >= len(node):
                    problems.append(f"{source}: {text.split('=')[0]}: no such entry (the array has {len(node)})")
                else:
                    node[last] = value
            elif isinstance(node, dict):
                node[str(last)] = value
            else:
                problems.append(f"{source}: {text.split('=')[0]}: cannot set inside {_show(node)}")
    if problems:
        raise DltkError(problems)
    return data
