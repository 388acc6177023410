"""The sweep file: what ``dltk sweep`` searches, read and checked before anything is written.

```toml
recipe = "../recipes/cnn_digits.toml"   # relative to this file
overrides = ["recipe.epochs=2"]          # fixed for every trial
objective = "eval/accuracy"              # a declared scalar (train/<name>) or metric (eval/<name>)
trials = 8
sampler = "tpe"                          # tpe (default), random, grid
pruner = "median"                        # median (default), none
seed = 0

[space]
"recipe.lr" = { type = "float", low = 1e-3, high = 0.3, log = true }
"recipe.optimizer" = { type = "categorical", choices = ["sgd", "adamw"] }
```

The same keys may sit in a ``[sweep]`` table instead. Every problem is one line
``SWEEP: key: what is wrong``, all at once, exit 2.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from dltoolkit import DltkError, RecipeFile

KEYS = ("recipe", "overrides", "objective", "trials", "sampler", "pruner", "seed", "name", "dir", "space",
        "startup_trials", "warmup_epochs")  # fmt: skip
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "none")
TYPES = ("float", "int", "categorical")
PARAM_KEYS = {"float": ("type", "low", "high", "log", "step"), "int": ("type", "low", "high", "log", "step"),
              "categorical": ("type", "choices")}  # fmt: skip


@attrs.frozen
class Param:
    """One dimension of the search space: a recipe key and its range or choices."""

    key: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    def values(self) -> list[Any]:
        """Every value of a finite dimension (the grid sampler's)."""
        if self.type == "categorical":
            return list(self.choices)
        assert self.low is not None and self.high is not None and self.step is not None
        count = math.floor((self.high - self.low) / self.step + 1e-9) + 1
        values = [self.low + i * self.step for i in range(count)]
        return values if self.type == "float" else [int(v) for v in values]

    def edges(self) -> list[Any]:
        """The values that bound the dimension (checked against the recipe's own validators)."""
        return list(self.choices) if self.type == "categorical" else [self.low, self.high]


@attrs.frozen
class Sweep:
    """A checked sweep file."""

    path: Path
    recipe: Path
    overrides: tuple[str, ...]
    objective: str  # namespaced: train/<name> or eval/<name>
    higher: bool
    trials: int
    sampler: str
    pruner: str
    seed: int
    name: str
    space: tuple[Param, ...]
    startup_trials: int
    warmup_epochs: int


def toml_value(value: Any) -> str:
    """A value as the right side of a ``key=value`` override (TOML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isfinite(value):
            return repr(value)
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)


def _suggest(word: str, options: Any) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _flat_space(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"recipe.lr": {...}}`` from quoted dotted keys or nested tables alike."""
    found: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and "type" not in value and "choices" not in value:
            found.update(_flat_space(value, f"{name}."))
        else:
            found[name] = value
    return found


def _param(key: str, value: Any, problems: list[str]) -> Param | None:
    where = f"space.{key}"
    if isinstance(value, list):  # a bare list: categorical
        value = {"type": "categorical", "choices": value}
    if not isinstance(value, Mapping):
        example = '{ type = "float", low = 0.001, high = 0.1, log = true }'
        problems.append(f"{where}: expected a table such as {example}")
        return None
    kind = value.get("type", "categorical" if "choices" in value else None)
    if kind not in TYPES:
        problems.append(f"{where}.type: expected one of {', '.join(TYPES)}, got {kind!r}{_suggest(str(kind), TYPES)}")
        return None
    for extra in value:
        if extra not in PARAM_KEYS[kind]:
            article = "an" if kind == "int" else "a"
            problems.append(f"{where}.{extra}: unknown key for {article} {kind}{_suggest(extra, PARAM_KEYS[kind])}")
    if kind == "categorical":
        choices = value.get("choices")
        if not isinstance(choices, list) or not choices:
            problems.append(f"{where}.choices: give a non-empty list of values")
            return None
        kinds = {("number" if _number(c) else type(c).__name__) for c in choices}
        if len(kinds) > 1 or kinds & {"list", "dict"}:
            problems.append(f"{where}.choices: the choices mix types ({', '.join(sorted(kinds))}); give one type")
            return None
        if len(set(map(json.dumps, choices))) != len(choices):
            problems.append(f"{where}.choices: a choice is given twice")
            return None
        return Param(key, kind, choices=tuple(choices))
    low, high, log, step = value.get("low"), value.get("high"), value.get("log", False), value.get("step")
    bad = False
    for name, bound in (("low", low), ("high", high)):
        if not _number(bound) or not math.isfinite(bound) or (kind == "int" and not isinstance(bound, int)):
            problems.append(f"{where}.{name}: give {'an integer' if kind == 'int' else 'a finite number'}")
            bad = True
    if bad:
        return None
    if not isinstance(log, bool):
        problems.append(f"{where}.log: give true or false")
        return None
    if low >= high:
        problems.append(f"{where}: the range is empty (low {low} must be below high {high})")
        return None
    if log and low <= 0:
        problems.append(f"{where}.low: a log scale needs low > 0, got {low}")
        return None
    if step is not None:
        if not _number(step) or step <= 0 or (kind == "int" and not isinstance(step, int)):
            problems.append(f"{where}.step: give a positive {'integer' if kind == 'int' else 'number'}")
            return None
        if log:
            problems.append(f"{where}.step: a log scale takes no step")
            return None
    return Param(key, kind, low=low, high=high, log=log, step=step)


def _objective(text: Any, recipe_file: Any, problems: list[str]) -> tuple[str, bool]:
    """The namespaced objective and whether higher is better, from the declarations."""
    declared: dict[str, Any] = {}
    for space, tables in (("train", (recipe_file.recipe,)), ("eval", tuple(recipe_file.metrics))):
        for table in tables:
            for scalar in table.component.reports:
                declared.setdefault(f"{space}/{scalar.name}", scalar)
    if not isinstance(text, str) or not text:
        problems.append(f"objective: give a declared score: {', '.join(sorted(declared)) or 'none declared'}")
        return "", False
    name = text if "/" in text else next((n for n in (f"eval/{text}", f"train/{text}") if n in declared), text)
    name = name.replace("epoch/", "train/", 1) if name.startswith("epoch/") else name
    scalar = declared.get(name)
    if scalar is None:
        options = ", ".join(sorted(declared)) or "none"
        problems.append(
            f"objective: '{text}' is not declared by the recipe or its metrics (declared: {options})"
            f"{_suggest(name, declared)}"
        )
        return "", False
    if scalar.better == "none":
        problems.append(f"objective: '{name}' has no direction (declared better = 'none'); choose a score")
        return "", False
    return name, scalar.higher_is_better


def _int(data: Mapping[str, Any], key: str, default: int, minimum: int, problems: list[str]) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        problems.append(f"{key}: give an integer of at least {minimum}, got {value!r}")
        return default
    return value


def read_sweep(path: Path, registry: Any, *, trials: int | None = None) -> tuple[Sweep, Any]:
    """Read and check the sweep file at ``path``; return it and the recipe file it searches (validated
    with the fixed overrides). Every problem at once, one line each, as a :class:`DltkError`."""
    from dltoolkit_optuna.toml import read_toml  # tomllib or tomli

    path = Path(path)
    if not path.is_file():
        raise DltkError(f"{path}: no such sweep file")
    data = read_toml(path)
    if "sweep" in data and isinstance(data["sweep"], Mapping) and set(data) == {"sweep"}:
        data = dict(data["sweep"])
    problems: list[str] = []
    for key in data:
        if key not in KEYS:
            problems.append(f"{key}: unknown key{_suggest(key, KEYS)}")
    recipe_value = data.get("recipe")
    recipe_path = path.parent / recipe_value if isinstance(recipe_value, str) else None
    if recipe_path is None:
        problems.append("recipe: give the recipe file to search, relative to the sweep file")
    elif not recipe_path.is_file():
        problems.append(f"recipe: no such recipe file {recipe_path}")
    overrides = data.get("overrides", [])
    if not isinstance(overrides, list) or not all(isinstance(o, str) and "=" in o for o in overrides):
        problems.append('overrides: give a list of KEY=VALUE strings, such as ["recipe.epochs=2"]')
        overrides = []
    sampler, pruner = data.get("sampler", "tpe"), data.get("pruner", "median")
    if sampler not in SAMPLERS:
        hint = _suggest(str(sampler), SAMPLERS)
        problems.append(f"sampler: expected one of {', '.join(SAMPLERS)}, got {sampler!r}{hint}")
    if pruner not in PRUNERS:
        problems.append(f"pruner: expected one of {', '.join(PRUNERS)}, got {pruner!r}{_suggest(str(pruner), PRUNERS)}")
    count = _int(data, "trials", 20, 1, problems) if trials is None else trials
    if count < 1:
        problems.append(f"--trials: give at least 1, got {count}")
    seed = _int(data, "seed", 0, 0, problems)
    startup = _int(data, "startup_trials", 5, 0, problems)
    warmup = _int(data, "warmup_epochs", 0, 0, problems)
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name:
        problems.append("name: give the study's name (default: the sweep file's stem)")
    space_table = data.get("space")
    params: list[Param] = []
    if not isinstance(space_table, Mapping) or not space_table:
        problems.append('space: give at least one recipe key to search, such as "recipe.lr" = { type = "float", ... }')
    else:
        for key, value in _flat_space(space_table).items():
            param = _param(key, value, problems)
            if param is not None:
                params.append(param)
    if sampler == "grid":
        for param in params:
            if param.type != "categorical" and param.step is None:
                problems.append(f"space.{param.key}: the grid sampler needs a finite set: give step, or choices")
    recipe_file = None
    if recipe_path is not None and recipe_path.is_file():
        try:
            recipe_file = RecipeFile.from_toml(recipe_path, registry, overrides)
        except DltkError as exc:
            problems += [f"recipe: {line}" for line in exc.problems]
        else:
            problems += _space_problems(recipe_path, registry, overrides, params)
    objective, higher = ("", False)
    if recipe_file is not None:
        objective, higher = _objective(data.get("objective"), recipe_file, problems)
    if problems:
        raise DltkError(f"{path}: {line}" for line in problems)
    assert recipe_path is not None
    sweep = Sweep(path, recipe_path, tuple(overrides), objective, higher, count, sampler, pruner, seed, name,
                  tuple(params), startup, warmup)  # fmt: skip
    return sweep, recipe_file


def _space_problems(recipe: Path, registry: Any, overrides: list[str], params: list[Param]) -> list[str]:
    """Each searched key must be a recipe key that takes the values of its range (checked by the
    recipe file's own validation, at each bound or choice)."""
    problems: list[str] = []
    for param in params:
        for value in param.edges():
            try:
                RecipeFile.from_toml(recipe, registry, [*overrides, f"{param.key}={toml_value(value)}"])
            except DltkError as exc:
                line = exc.problems[0]
                text = line.split(": ", 1)[1] if line.startswith(str(recipe)) else line
                text = text[len(param.key) + 2 :] if text.startswith(f"{param.key}: ") else text
                problems.append(f"space.{param.key}: {text}")
                break
    return problems
