"""Recipe files: TOML -> validated, frozen attrs objects; ``key.path=value`` overrides.

Every problem is collected and reported at once as ``FILE: key.path: what is wrong``.
"""

from __future__ import annotations

import collections.abc
import json
import math
import re
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import cattrs
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)

from dltoolkit._compat import mismatches
from dltoolkit._component import Component, Scalar, option
from dltoolkit._errors import DltkError
from dltoolkit._names import EVAL, TRAIN
from dltoolkit._names import resolve as resolve_score
from dltoolkit._rundir import RECIPE_NAME  # (also imported from here by cli and eval)
from dltoolkit._suggest import did_you_mean, one_of
from dltoolkit._toml import _show, apply_overrides, read_toml

_converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)


def _strict_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {_show(value)}")
    if not -(2**63) <= value < 2**63:  # what torch and numpy index with: larger ones overflow later
        raise TypeError(f"expected an integer from -2**63 to 2**63 - 1, got {value}")
    return value


def _strict_float(value: Any, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {_show(value)}")
    if not math.isfinite(value):  # TOML has inf and nan; no option means them (lr = inf fails after starting)
        raise TypeError(f"expected a finite number, got {value}")
    return float(value)


def _strict_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {_show(value)}")
    if "\x00" in value:  # no file name, device or component name holds one; paths would fail later
        raise TypeError("a path may not contain a NUL byte")
    return value


def _strict_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {_show(value)}")
    return value


def _is_fixed_tuple(annotation: Any) -> bool:
    return typing.get_origin(annotation) is tuple and Ellipsis not in typing.get_args(annotation)


def _strict_tuple(value: Any, annotation: Any) -> tuple:
    args = typing.get_args(annotation)
    if not isinstance(value, list):
        raise TypeError(f"expected an array of {len(args)} values, got {_show(value)}")
    if len(value) != len(args):
        raise TypeError(f"expected an array of {len(args)} values, got {len(value)}: {value!r}")
    return tuple(_converter.structure(v, a) for v, a in zip(value, args, strict=True))


def _is_sequence(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (list, collections.abc.Sequence, collections.abc.MutableSequence):
        return True
    return origin is tuple and Ellipsis in typing.get_args(annotation)


def _array_example(value: Any) -> str:
    """What the user probably meant, as a TOML array (``cutout`` or, after a shell ate the quotes,
    ``[cutout, color]`` -> ``["cutout", "color"]``)."""
    if isinstance(value, str):
        text = value.strip()
        items = [i.strip() for i in text[1:-1].split(",")] if text.startswith("[") and text.endswith("]") else [text]
        return json.dumps([i for i in items if i])
    return f"[{json.dumps(value)}]" if isinstance(value, (int, float)) else "[...]"


def _strict_sequence_factory(annotation: Any, converter: cattrs.Converter) -> Any:
    """An array of any length (``list[X]``, ``tuple[X, ...]``): cattrs' own hook, whose errors name
    each bad item's index, after refusing a string (cattrs would take its letters)."""
    from cattrs.cols import homogenous_tuple_structure_factory, list_structure_factory

    is_tuple = typing.get_origin(annotation) is tuple
    base = (homogenous_tuple_structure_factory if is_tuple else list_structure_factory)(annotation, converter)

    def structure(value: Any, _: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            example = _array_example(value)
            if isinstance(value, str) and value.strip().startswith("["):
                raise TypeError(
                    f"expected an array, got {value!r}, which is not one in TOML: quote each string, as in "
                    f"{example}; on a shell, single-quote the whole KEY=VALUE so that those quotes survive"
                )
            raise TypeError(f"expected an array such as {example}, got {_show(value)}")
        return base(value, annotation)

    return structure


_converter.register_structure_hook_func(_is_fixed_tuple, _strict_tuple)
_converter.register_structure_hook_factory(_is_sequence, _strict_sequence_factory)
_converter.register_structure_hook(int, _strict_int)
_converter.register_structure_hook(float, _strict_float)
_converter.register_structure_hook(str, _strict_str)
_converter.register_structure_hook(bool, _strict_bool)


def _join(path: str, key: str | int) -> str:
    return f"{path}.{key}" if path else str(key)


def _walk_errors(exc: BaseException, path: str, problems: list[tuple[str, str]]) -> None:
    if isinstance(exc, ForbiddenExtraKeysError):
        names = [f.name for f in attrs.fields(exc.cl)]
        for key in sorted(exc.extra_fields):
            problems.append((_join(path, key), f"unknown key{did_you_mean(key, names)}"))
        return
    if isinstance(exc, (ClassValidationError, IterableValidationError)):
        for sub in exc.exceptions:
            sub_path = path
            for note in getattr(sub, "__notes__", ()):
                if isinstance(note, AttributeValidationNote):
                    sub_path = _join(path, note.name)
                elif isinstance(note, IterableValidationNote):
                    sub_path = _join(path, note.index)
            _walk_errors(sub, sub_path, problems)
        return
    if isinstance(exc, KeyError):
        problems.append((path, "missing required key"))
        return
    message = str(exc)
    if "values in" in message and "to structure as tuple" in message:
        message = message.split(" to structure")[0].replace("values in", "values in array")
    problems.append((path, message))


def _run_validators(instance: Any, path: str, problems: list[tuple[str, str]]) -> None:
    for field in attrs.fields(type(instance)):
        value = getattr(instance, field.name)
        if field.validator is not None:
            try:
                field.validator(instance, field, value)
            except (ValueError, TypeError) as exc:
                problems.append((_join(path, field.name), _validator_message(exc, value)))
        if attrs.has(type(value)):
            _run_validators(value, _join(path, field.name), problems)


def _validator_message(exc: Exception, value: Any) -> str:
    text = str(exc.args[0]) if exc.args else str(exc)
    # attrs' own validators say "'epochs' must be >= 1: 0"; keep the rule, show the value once
    if text.startswith("'") and "' must be " in text:
        rule = text.split("' must be ", 1)[1]
        rule = rule.rsplit(" (got ", 1)[0] if rule.endswith(")") and " (got " in rule else rule.rsplit(": ", 1)[0]
        if rule.startswith("in "):
            return f"must be one of {rule[3:]}, got {_show(value)}"
        return f"must be {rule}, got {_show(value)}"
    return text


def structure(cls: type, data: Any, path: str, problems: list[tuple[str, str]]) -> Any:
    """Structure ``data`` into the attrs class ``cls``; append ``(path, message)`` problems.

    Types are strict (``2.5`` is not an integer, ``"3"`` is not a number), unknown keys are
    errors with a suggestion, and every field validator runs so all problems come out at once.
    Returns the instance, or None when there were problems.
    """
    if not isinstance(data, dict):
        problems.append((path, f"expected a table, got {_show(data)}"))
        return None
    before = len(problems)
    with attrs.validators.disabled():
        try:
            instance = _converter.structure(data, cls)
        except (ClassValidationError, IterableValidationError) as exc:
            _walk_errors(exc, path, problems)
            return None
    _run_validators(instance, path, problems)
    return instance if len(problems) == before else None


def unstructure(instance: Any) -> dict[str, Any]:
    """The plain-data form of a config (TOML-writable: tuples become lists)."""
    return _converter.unstructure(instance)


# --- the recipe file --------------------------------------------------------------------------


DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d{1,3})?)$")


def _device(_instance: Any, _attribute: Any, value: str) -> None:
    # checked by pattern, without importing torch; whether this machine has it is checked at run time
    if not DEVICE_PATTERN.match(value):
        raise ValueError(f"unknown device {value!r}: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")


@attrs.frozen
class RunSection:
    """``[run]``: where results go and where training happens."""

    dir: str = option("runs", doc="Folder under which each run gets <recipe-stem>-<timestamp>/.")
    device: str = option(
        "auto",
        doc="'auto' (CUDA if available, else CPU), 'cpu', 'cuda', 'cuda:N' or 'mps'.",
        validator=_device,
        resumable=True,
    )
    threads: int | None = option(
        None,
        doc="CPU threads torch uses inside an operation (torch.set_num_threads). Default: torch's own "
        "choice (one per core). Small models train faster with 1: their operations are too small to split.",
        validator=attrs.validators.optional([attrs.validators.ge(1), attrs.validators.le(1024)]),
        resumable=True,
    )
    writers: tuple[str, ...] = option(
        ("tensorboard", "progress"),
        doc="Writers by name, with their default options, besides metrics.jsonl (always written): "
        "'tensorboard' (tb/), 'progress' (the progress bar or line), a plugin's. [] turns both off; "
        "[[writers]] tables add writers with options.",
    )


@attrs.frozen
class CheckpointSection:
    """``[checkpoint]``: when checkpoints are written and which are kept."""

    every: int = option(1, doc="Checkpoint every this many `unit`s.", validator=attrs.validators.ge(1), resumable=True)
    unit: str = option("epoch", doc="'epoch' or 'iteration'.", validator=attrs.validators.in_(("epoch", "iteration")))
    keep: int = option(3, doc="How many recent checkpoints to keep.", validator=attrs.validators.ge(1), resumable=True)
    best_by: str | None = option(
        None,
        doc="Also keep the best checkpoint by this score: a scalar the recipe reports (its epoch mean) "
        "or a metric of this recipe file, lowest or highest as the recipe or metric declares. "
        "Default: none (only the recent checkpoints are kept).",
    )


RECIPE_CORE_OPTIONS: dict[str, str] = {
    "compile": "Wrap the trained models in torch.compile (the core does it for every recipe; the checkpoint "
    "format is unchanged, so a compiled run resumes uncompiled and the other way round). Where compilation "
    "is not available, one warning line and the run goes on uncompiled.",
    "sync_batchnorm": "With several processes (--nproc-per-node, torchrun), BatchNorm layers compute their "
    "statistics over the global batch (torch.nn.SyncBatchNorm; CUDA only). No effect on one process.",
}
"""Options every ``[recipe]`` table accepts besides its own: the core applies them to any recipe
(both false by default, both may change on ``--resume``)."""


@attrs.frozen
class ComponentTable:
    """A component table of a recipe file: the registered ``name`` and its validated options."""

    name: str
    component: Component
    config: Any
    path: str  # where it sits in the recipe file: "model", "metrics.0"

    def options(self) -> dict[str, Any]:
        return unstructure(self.config)


@attrs.frozen
class RecipeFile:
    """A validated recipe file (overrides applied). Build it with :meth:`from_toml`."""

    path: Path
    data: dict[str, Any]  # the resolved TOML data, as written to the run's recipe.toml
    seed: int
    run: RunSection
    checkpoint: CheckpointSection
    recipe: ComponentTable
    model: ComponentTable | None
    dataset: ComponentTable | None
    metrics: tuple[ComponentTable, ...]
    callbacks: tuple[ComponentTable, ...]
    writers: tuple[ComponentTable, ...] = ()
    compile: bool = False
    sync_batchnorm: bool = False

    @property
    def stem(self) -> str:
        return self.path.stem

    def table(self, kind: str) -> ComponentTable | None:
        return {"recipe": self.recipe, "model": self.model, "dataset": self.dataset}.get(kind)

    @classmethod
    def from_toml(cls, path: str | Path, registry: Any, overrides: Sequence[str] = ()) -> RecipeFile:
        """Read, override and validate a recipe file; raise :class:`DltkError` with every problem."""
        path = Path(path)
        data = read_toml(path)
        data = apply_overrides(data, overrides, str(path))
        return cls.from_data(data, path, registry)

    @classmethod
    def from_data(cls, data: dict[str, Any], path: Path, registry: Any) -> RecipeFile:
        problems: list[tuple[str, str]] = []
        known = ("seed", "run", "recipe", "model", "dataset", "metrics", "callbacks", "writers", "checkpoint")
        for key in data:
            if key not in known:
                problems.append((key, f"unknown key{did_you_mean(key, known)}"))

        seed = data.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
            problems.append(("seed", f"expected an integer from 0 to 2**32 - 1, got {_show(seed)}"))
        run = structure(RunSection, data.get("run", {}), "run", problems)
        checkpoint = structure(CheckpointSection, data.get("checkpoint", {}), "checkpoint", problems)

        recipe = None
        core_options: dict[str, bool] = {}
        if "recipe" not in data:
            problems.append(("recipe", "missing required table [recipe] (with name = ...)"))
        else:
            own = data["recipe"]
            if isinstance(own, dict):
                for key in RECIPE_CORE_OPTIONS:
                    if key in own:
                        if isinstance(own[key], bool):
                            core_options[key] = own[key]
                        else:
                            problems.append((f"recipe.{key}", f"expected true or false, got {_show(own[key])}"))
                own = {k: v for k, v in own.items() if k not in RECIPE_CORE_OPTIONS}
            recipe = _component_table(registry, "recipe", own, "recipe", problems)
        model = _component_table(registry, "model", data["model"], "model", problems) if "model" in data else None
        dataset = (
            _component_table(registry, "dataset", data["dataset"], "dataset", problems) if "dataset" in data else None
        )
        metrics = _component_array(registry, "metric", data.get("metrics", []), "metrics", problems)
        callbacks = _component_array(registry, "callback", data.get("callbacks", []), "callbacks", problems)
        writers = _component_array(registry, "writer", data.get("writers", []), "writers", problems)
        for index, name in enumerate(run.writers if run is not None else ()):
            problem = registry.problem_with("writer", name)
            if problem is not None:
                problems.append((f"run.writers.{index}", problem))

        seen: dict[str, int] = {}
        for table in metrics:
            index = int(table.path.split(".")[1])
            if table.name in seen:
                problems.append((f"{table.path}.name", f"'{table.name}' is already metrics.{seen[table.name]}"))
            seen.setdefault(table.name, index)
        if recipe is not None:
            for needed in recipe.component.requires:
                if needed not in data:
                    problems.append((needed, f"the '{recipe.name}' recipe needs a [{needed}] table"))
        if recipe is not None:
            tables = {"recipe": recipe, "model": model, "dataset": dataset}
            present = {k: v for k, v in tables.items() if v is not None}
            problems.extend(mismatches(registry, present, (*metrics, *callbacks)))
        broken_metric = any(where.startswith("metrics") for where, _ in problems)  # its scores are unknown
        if checkpoint is not None and checkpoint.best_by is not None and recipe is not None and not broken_metric:
            legacy = path.name == RECIPE_NAME and (path.parent / "metrics.jsonl").is_file()  # an older run's
            old = former_names(recipe, metrics, data, renamed_only=not legacy)
            best_by, problem = resolve_score(checkpoint.best_by, scores_of(recipe, metrics), old)
            if problem is not None:
                problems.append(("checkpoint.best_by", problem))
            elif best_by != checkpoint.best_by:  # recipe.toml and the checkpoints say the namespaced name
                checkpoint = attrs.evolve(checkpoint, best_by=best_by)
                data = {**data, "checkpoint": {**data.get("checkpoint", {}), "best_by": best_by}}
        if problems:
            raise DltkError(f"{path}: {where}: {what}" for where, what in problems)
        assert recipe is not None and run is not None and checkpoint is not None
        return cls(
            path=path,
            data=data,
            seed=seed,
            run=run,
            checkpoint=checkpoint,
            recipe=recipe,
            model=model,
            dataset=dataset,
            metrics=metrics,
            callbacks=callbacks,
            writers=writers,
            **core_options,
        )


def scores_of(recipe: ComponentTable, metrics: Iterable[ComponentTable]) -> dict[str, Scalar]:
    """The scores ``checkpoint.best_by`` may name, by namespaced name: the recipe's declared scalars
    (``train/<name>``, their epoch means) and its metrics' (``eval/<name>``) that have a direction
    (``better`` is not ``"none"``)."""
    found: dict[str, Scalar] = {}
    for space, tables in ((TRAIN, (recipe,)), (EVAL, tuple(metrics))):
        for table in tables:
            for scalar in table.component.reports:
                if scalar.better != "none":
                    found.setdefault(f"{space}/{scalar.name}", scalar)
    return found


def former_names(
    recipe: ComponentTable, metrics: Iterable[ComponentTable], data: Mapping[str, Any], *, renamed_only: bool = False
) -> dict[str, str]:
    """``{namespaced name: bare name it had before namespaces}`` of a recipe file's scores: a
    scalar's first former name, or the metric's name as the file wrote it when that was a former
    name of a one-scalar metric (``seq-accuracy``), else its name. ``renamed_only``: only the
    scores of metric tables written under a former name (what a user's old recipe file means)."""
    written = data.get("metrics") if isinstance(data.get("metrics"), list) else []
    old: dict[str, str] = {}
    for space, table in [(TRAIN, recipe), *((EVAL, t) for t in metrics)]:
        index = int(table.path.split(".")[1]) if space == EVAL else -1
        given = written[index].get("name") if 0 <= index < len(written) and isinstance(written[index], dict) else None
        for scalar in table.component.reports:
            was = scalar.formerly[0] if scalar.formerly else scalar.name
            renamed = given in table.component.formerly and len(table.component.reports) == 1
            if renamed:
                was = given
            if renamed or not renamed_only:
                old.setdefault(f"{space}/{scalar.name}", was)
    return old


def _component_table(
    registry: Any, kind: str, table: Any, path: str, problems: list[tuple[str, str]]
) -> ComponentTable | None:
    if not isinstance(table, dict):
        problems.append((path, f"expected a table, got {_show(table)}"))
        return None
    name = table.get("name")
    if name is None:
        problems.append((_join(path, "name"), f"missing: which {kind}? ({one_of(registry.names(kind))})"))
        return None
    if not isinstance(name, str):
        problems.append((_join(path, "name"), f"expected a string, got {_show(name)}"))
        return None
    problem = registry.problem_with(kind, name)
    if problem is not None:
        problems.append((_join(path, "name"), problem))
        return None
    component = registry.find(kind, name)
    options = {k: v for k, v in table.items() if k != "name"}
    config = structure(component.config, options, path, problems)
    if config is None:
        return None
    return ComponentTable(name=component.name or name, component=component, config=config, path=path)


def _component_array(
    registry: Any, kind: str, tables: Any, path: str, problems: list[tuple[str, str]]
) -> tuple[ComponentTable, ...]:
    if not isinstance(tables, list):
        problems.append((path, f"expected an array of tables ([[{path}]]), got {_show(tables)}"))
        return ()
    result = []
    for index, table in enumerate(tables):
        built = _component_table(registry, kind, table, _join(path, index), problems)
        if built is not None:
            result.append(built)
    return tuple(result)


def validate_options(component: Component, options: Mapping[str, Any], source: str) -> Any:
    """Validate ``options`` against ``component.config`` outside a recipe file (export metadata)."""
    problems: list[tuple[str, str]] = []
    config = structure(component.config, dict(options), component.kind, problems)
    if problems:
        raise DltkError(f"{source}: {where}: {what}" for where, what in problems)
    return config
