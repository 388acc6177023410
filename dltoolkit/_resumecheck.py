"""What a resume must find unchanged: the data and the recipe options a checkpoint was trained with.

Every checkpoint's metadata records the seed, the recipe, model and dataset options, the data
description and the number of training samples (see :meth:`dltoolkit._run.Run.write_metadata`).
A resume compares them with the run's recipe file as it is now; a difference is refused unless the
option's component declared it ``resumable`` (epochs, learning rates, logging intervals). Without
this check a folder that lost images resumes with empty epochs, and a ``recipe.toml`` edited by
hand (split, batch size, seed) silently continues on different data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from dltoolkit._component import is_resumable

TRAIN_SIZE = "train_size"
"""Metadata key: how many samples the training data had."""


def _loads(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _show(value: Any) -> str:
    return repr(value) if not isinstance(value, float) else f"{value:g}"


def changes(saved: Mapping[str, Any], current: Mapping[str, Any], recipe_file: Any, checkpoint: str) -> list[str]:
    """One line per difference between the metadata of ``checkpoint`` (``saved``) and ``current``
    that its component did not declare resumable. Keys missing on either side (older checkpoints)
    are not compared."""
    source = recipe_file.path
    problems: list[str] = []

    def differ(key: str, old: Any, new: Any) -> None:
        problems.append(
            f"{source}: {key}: {_show(old)} when {checkpoint} was written, {_show(new)} now; "
            "cannot change on resume (start a new run instead)"
        )

    if "seed" in saved and "seed" in current and saved["seed"] != current["seed"]:
        differ("seed", saved["seed"], current["seed"])
    for kind, name_key, options_key in (("recipe", "recipe", "recipe_options"), ("model", "model", "model_options")):
        if name_key in saved and name_key in current and saved[name_key] != current[name_key]:
            differ(f"{kind}.name", saved[name_key], current[name_key])
            continue
        if options_key in saved and options_key in current:
            table = recipe_file.table(kind)
            _compare_options(kind, _loads(saved[options_key]), _loads(current[options_key]), table, differ)
    if "dataset" in saved and "dataset" in current:
        old, new = dict(_loads(saved["dataset"])), dict(_loads(current["dataset"]))
        if old.get("name") != new.get("name"):
            differ("dataset.name", old.get("name"), new.get("name"))
        else:
            old.pop("name", None)
            new.pop("name", None)
            _compare_options("dataset", old, new, recipe_file.table("dataset"), differ)
    if not problems and TRAIN_SIZE in saved and TRAIN_SIZE in current and saved[TRAIN_SIZE] != current[TRAIN_SIZE]:
        problems.append(
            f"{source}: dataset: {saved[TRAIN_SIZE]} training samples when {checkpoint} was written, "
            f"{current[TRAIN_SIZE]} now: the data changed since this run started; restore it or start a new run"
        )
    if not problems and "data" in saved and "data" in current and _loads(saved["data"]) != _loads(current["data"]):
        problems.append(
            f"{source}: dataset: the samples were {_describe(saved['data'])} when {checkpoint} was written, "
            f"{_describe(current['data'])} now: the data changed since this run started; restore it or start a new run"
        )
    return problems


def _compare_options(kind: str, old: Any, new: Any, table: Any, differ: Any) -> None:
    if not isinstance(old, dict) or not isinstance(new, dict):
        return
    config = table.component.config if table is not None else None
    for key in sorted(set(old) | set(new)):
        if kind == "dataset" and key in ("download", "root", "path"):
            continue  # where the files are, not what they are (a moved folder is checked by its samples)
        if key in old and key in new and old[key] != new[key]:
            if config is not None and is_resumable(config, key):
                continue
            differ(f"{kind}.{key}", old[key], new[key])


def _describe(text: Any) -> str:
    from dltoolkit._dataspec import DataSpec

    try:
        return DataSpec.from_json(text).describe() if isinstance(text, str) else str(text)
    except (ValueError, TypeError):
        return str(text)
