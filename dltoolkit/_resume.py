"""Checkpoints and all of resume: the last and best checkpoints a run keeps, the metadata they carry
(what rebuilds the model and what a resume must find unchanged), ``run.json``, and resuming: the
newest readable checkpoint is loaded, what was recorded after it is undone, and the data and recipe
options it was trained with are checked.

A resume compares the checkpoint's metadata with the run's recipe file as it is now; a difference
is refused unless the option's component declared it ``resumable`` (epochs, learning rates,
logging intervals). Without this check a folder that lost images resumes with empty epochs, and a
``recipe.toml`` edited by hand (split, batch size, seed) silently continues on different data.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from dltoolkit import _checkpoint, _names
from dltoolkit._builder import absolute_root
from dltoolkit._component import is_resumable
from dltoolkit._config import (
    RECIPE_CORE_OPTIONS,
    CheckpointSection,
    RunSection,
    read_toml,
)
from dltoolkit._errors import DltkError
from dltoolkit._registry import Registry
from dltoolkit._rundir import CHECKPOINTS, RECIPE_NAME, SUMMARY_NAME
from dltoolkit._toml import parse_override

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


class Checkpoints:
    """The checkpoints of one run, and its resume.

    :meth:`attach` saves the trainer's state every ``[checkpoint] every`` epochs or iterations (and
    when the run completes) with the RNG state and :attr:`metadata`, and keeps the best by
    ``best_by`` (:meth:`consider_best`, a listener of the recorder). ``run.json`` is written with
    each checkpoint, so its ``train_seconds`` add up over sessions even when one was killed.
    :meth:`resume` loads the newest readable checkpoint.
    """

    def __init__(self, run: Any):
        self.run = run
        self.metadata = _checkpoint.Metadata({})
        self.last: Any = None
        self.best: Any = None
        self.best_handler: Any = None  # the Ignite Checkpoint behind self.best (what it saved last)
        self.trainer: Any = None
        self._summary: dict[str, Any] = {}
        self._started: float | None = None

    @property
    def folder(self) -> Path:
        return self.run.path / CHECKPOINTS

    def write_metadata(self, trained: Any) -> None:
        """What rebuilds the trained model: recipe, model and options, data description, dataset, seed."""
        from dltoolkit import __version__

        recipe_file, data, train_dataset = self.run.recipe_file, self.run.data, self.run.train_dataset
        meta: dict[str, Any] = {
            "format": 2,
            "dltoolkit_version": __version__,
            "recipe": recipe_file.recipe.name,
            "seed": recipe_file.seed,
            "modules": json.dumps(list(trained.modules)),
            "recipe_options": json.dumps(recipe_file.recipe.options()),
        }
        model, dataset = recipe_file.table("model"), recipe_file.table("dataset")
        if model is not None:
            meta["model"] = model.name
            meta["model_options"] = json.dumps(model.options())
        if dataset is not None:
            meta["dataset"] = json.dumps({"name": dataset.name, **absolute_root(dataset.options())})
        if data is not None:
            meta["data"] = data.to_json()
            if data.kind == "images":
                meta["image_shape"] = list(data.shape)
        if hasattr(train_dataset, "__len__"):  # what a resume checks the data against
            meta[TRAIN_SIZE] = len(train_dataset)
        self.metadata.data.update(meta)

    def attach(self, trainer: Any, objects: Mapping[str, Any]) -> dict[str, Any]:
        """Checkpoint ``objects`` (plus trainer, RNG state and metadata) as ``[checkpoint]`` says;
        return the mapping saved (what :meth:`resume` loads). Attach it after the handlers whose
        work a checkpoint should include (epoch summaries, evaluations, sample grids)."""
        from ignite.engine import Events

        self.run.ensure_dir()
        self.trainer = trainer
        section = self.run.recipe_file.checkpoint
        to_save = {**objects, "trainer": trainer, "rng": _checkpoint.RngState(), "meta": self.metadata}
        self.last = _checkpoint.attach_checkpoints(
            trainer, to_save, self.folder, every=section.every, unit=section.unit, keep=section.keep
        )
        event = Events.EPOCH_COMPLETED if section.unit == "epoch" else Events.ITERATION_COMPLETED
        trainer.add_event_handler(event(every=section.every), lambda engine: self.write_summary(engine))
        if section.best_by is not None:
            higher = higher_is_better(self.run.recipe_file, section.best_by)
            same = same_score(self.run.recipe_file, section.best_by)
            self.best_handler = _checkpoint.attach_best(to_save, self.folder, section.best_by, higher, same=same)
            self.best = _checkpoint.guarded(self.best_handler, to_save)
        return to_save

    def consider_best(self, record: Any) -> None:
        """A fresh ``best_by`` score (an epoch mean or an evaluation) may make a new best checkpoint."""
        best_by = self.run.recipe_file.checkpoint.best_by
        if self.best is None or best_by is None or record.kind == "step":
            return
        space, name = _names.split(best_by)
        if _names.namespace(record.kind) != space or name not in record.values:
            return
        value = float(record.values[name])
        if math.isfinite(value):
            self.metadata.data["best_by"] = best_by
            self.metadata.data["best_score"] = value
            self.trainer.state.metrics[best_by] = value
            before = self.best_handler.last_checkpoint
            self.best(self.trainer)
            if self._summary and self.best_handler.last_checkpoint != before:  # a resume may start from it
                self.write_summary(self.trainer)

    # -- run.json ------------------------------------------------------------------------

    def start_clock(self, state: Mapping[str, Any], trained: Any) -> None:
        """The session starts training now: ``run.json`` adds its time to the earlier sessions'."""

        path = self.run.path / SUMMARY_NAME
        previous: dict[str, Any] = {}
        if self.run.resuming and path.is_file():
            try:
                previous = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                previous = {}
        from dltoolkit._builder import networks

        self._summary = {
            "parameters": {n: sum(p.numel() for p in m.parameters()) for n, m in networks(state).items()},
            "trained_modules": list(trained.modules),
            "previous_seconds": float(previous.get("train_seconds", 0.0)),
            "sessions": int(previous.get("sessions", 0)) + 1,
        }
        self._started = time.perf_counter()

    def write_summary(self, trainer: Any, *, finished: bool = False) -> None:
        """``run.json``: parameters per module and training wall time summed over sessions, for ``dltk compare``."""
        if self._started is None:
            return
        summary = dict(self._summary)
        seconds = summary.pop("previous_seconds") + time.perf_counter() - self._started
        summary.update(train_seconds=round(seconds, 3), epoch=trainer.state.epoch, iteration=trainer.state.iteration)
        summary["finished" if finished else "updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        path = self.run.path / SUMMARY_NAME
        text = json.dumps(summary, indent=1) + "\n"
        try:
            _checkpoint.atomic_write(path, lambda h: h.write(text.encode()))
        except OSError as exc:  # never hide the run's own outcome
            if not finished:
                raise
            print(f"dltk: could not write {path}: {exc}", file=sys.stderr)

    # -- resume --------------------------------------------------------------------------

    def resume(self, to_load: Mapping[str, Any], *, max_epochs: int | None = None) -> Path | None:
        """Load the newest readable checkpoint into ``to_load``; return its path (None if fresh).

        With ``max_epochs``, a run whose trainer already completed that many epochs is refused
        (Ignite would otherwise start it again from scratch). A checkpoint that is truncated or
        unreadable is reported on stderr and the previous one is tried; with none left it is a
        :class:`DltkError`. With several processes rank 0 chooses (and sets aside what is
        unusable) and every rank loads the checkpoint it chose.
        """
        run = self.run
        if not run.resuming:
            return None
        if run.world_size == 1:
            return self._resume_newest(to_load, max_epochs=max_epochs)
        from dltoolkit import _distributed

        chosen = self._resume_newest(to_load, max_epochs=max_epochs) if run.rank == 0 else None
        name = _distributed.broadcast_text(str(chosen) if chosen is not None else "" if run.rank == 0 else None)
        if run.rank > 0 and name:
            from ignite.handlers import Checkpoint

            Checkpoint.load_objects(to_load, _checkpoint.load_checkpoint(Path(name)))
        return Path(name) if name else None

    def _resume_newest(self, to_load: Mapping[str, Any], *, max_epochs: int | None = None) -> Path | None:
        run, folder = self.run, self.folder
        _checkpoint.remove_stray_temp_files(folder)
        # a run killed before its first periodic checkpoint may have a best one: as good a starting point
        candidates = _checkpoint.checkpoints_in(folder) or _checkpoint.best_checkpoints_in(folder)
        if not candidates:  # stopped before its first checkpoint: not a dead end, start it again here
            print(
                f"dltk: {run.path} has no checkpoint yet (it stopped before the first one): "
                "starting it again from the beginning in the same directory",
                file=sys.stderr,
            )
            run.directory.undo_after(0)
            if run.resume_rewrites_recipe:
                run.directory.write_recipe()
            return None
        problems: list[str] = []
        unusable: list[Path] = []
        for path in candidates:
            problem = _checkpoint.verify(path)
            if problem is not None:
                problems.append(problem)
                unusable.append(path)
                print(f"dltk: skipping {problem}", file=sys.stderr)
                continue
            try:
                data = _checkpoint.load_checkpoint(path)
            except DltkError as exc:
                problems.extend(exc.problems)
                unusable.append(path)
                print(f"dltk: skipping {exc.problems[0]}", file=sys.stderr)
                continue
            for bad in unusable:
                _checkpoint.set_aside(bad)
            if unusable and self.last is not None:
                _checkpoint.sync_saved(self.last, folder, run.recipe_file.checkpoint.keep)
            self._load(path, data, to_load, max_epochs)
            print(f"dltk: resuming {run.path} from {path.name}", file=sys.stderr)
            run.directory.undo_after(int(data["trainer"]["iteration"]))
            return path
        raise DltkError([*problems, f"{run.path}: no readable checkpoint left to resume from"])

    def _load(self, path: Path, data: Mapping[str, Any], to_load: Mapping[str, Any], max_epochs: int | None) -> None:
        run = self.run
        changed = changes(data.get("meta", {}), self.metadata.data, run.recipe_file, path.name)
        if changed:
            raise DltkError(changed)
        current = dict(self.metadata.data)
        from ignite.handlers import Checkpoint

        try:
            Checkpoint.load_objects(to_load, data)
        except (ValueError, RuntimeError, KeyError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DltkError(
                f"{path}: does not fit this recipe (were recipe options changed on resume?): {first}"
            ) from None
        trainer = to_load.get("trainer")
        if max_epochs is not None and trainer is not None:
            state = trainer.state
            if state.iteration >= max_epochs * state.epoch_length:
                raise DltkError(
                    f"{run.path}: the run already finished {state.epoch} epochs; "
                    f"pass recipe.epochs=N with N > {state.epoch} to train longer"
                )
        # what runs from here on (resumable options may have changed); the best score stays the loaded one
        self.metadata.data.update({k: v for k, v in current.items() if k not in ("best_by", "best_score")})
        if run.resume_rewrites_recipe:
            run.directory.write_recipe()


# -- what may change on --resume: only options their component declared resumable ---------------

SECTIONS = {"run": RunSection, "checkpoint": CheckpointSection}


def _override_config(registry: Registry, data: dict, parts: list) -> type | None:
    """The Config class that holds the option an override path names (None if unknown)."""
    head = str(parts[0])
    if head in SECTIONS and len(parts) == 2:
        return SECTIONS[head]
    if head in ("recipe", "model", "dataset") and len(parts) == 2:
        table = data.get(head)
    elif head in ("metrics", "callbacks", "writers") and len(parts) == 3 and isinstance(parts[1], int):
        tables = data.get(head)
        table = tables[parts[1]] if isinstance(tables, list) and parts[1] < len(tables) else None
    else:
        return None
    name = table.get("name") if isinstance(table, dict) else None
    kind = {"metrics": "metric", "callbacks": "callback", "writers": "writer"}.get(head, head)
    component = registry.find(kind, name) if isinstance(name, str) else None
    return component.config if component is not None else None


def _resumable_keys(registry: Registry, data: dict) -> list[str]:
    """Every option of this recipe file that its component declared resumable, as a key path."""
    heads: list[list] = [["run"], ["checkpoint"], ["recipe"], ["model"], ["dataset"]]
    for array in ("metrics", "callbacks", "writers"):
        if isinstance(data.get(array), list):
            heads += [[array, i] for i in range(len(data[array]))]
    keys = []
    for head in heads:
        config = _override_config(registry, data, [*head, "_"])
        if config is not None:
            keys += [
                ".".join(str(p) for p in [*head, f.name]) for f in attrs.fields(config) if is_resumable(config, f.name)
            ]
        if head == ["recipe"]:
            keys += [f"recipe.{name}" for name in RECIPE_CORE_OPTIONS]
    return keys


def check_resume_overrides(registry: Registry, overrides: Sequence[str], run_dir: Path) -> None:
    """Only options their component declared ``resumable`` may change on ``--resume``."""
    recipe_path = run_dir / RECIPE_NAME
    data = read_toml(recipe_path)
    problems = []
    for text in overrides:
        try:
            parts, _ = parse_override(text)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        key = ".".join(str(p) for p in parts)
        if len(parts) == 2 and parts[0] == "recipe" and parts[1] in RECIPE_CORE_OPTIONS:
            continue  # compile, sync_batchnorm: how the run executes, not what it learns
        config = _override_config(registry, data, parts)
        names = [f.name for f in attrs.fields(config)] if config is not None else []
        if parts[0] == "recipe":
            names += list(RECIPE_CORE_OPTIONS)
        if config is not None and str(parts[-1]) not in [*names, "name"]:  # a typo: say so, as a new run would
            from dltoolkit._suggest import did_you_mean

            problems.append(f"{recipe_path}: {key}: unknown key{did_you_mean(str(parts[-1]), names)}")
            continue
        if config is None or not is_resumable(config, str(parts[-1])):
            allowed = ", ".join(_resumable_keys(registry, data)) or "none"
            problems.append(
                f"{recipe_path}: {key}: cannot be changed when resuming (only {allowed} can); start a new run instead"
            )
    if problems:
        raise DltkError(problems)


def same_score(recipe_file: Any, best_by: str) -> Callable[[Any], bool]:
    """Whether a ``best_by`` kept in a checkpoint's metadata names the score ``best_by`` (namespaced)
    names: the same name, or the bare or former name a run written before namespaces kept."""
    from dltoolkit._config import former_names, scores_of

    scores = scores_of(recipe_file.recipe, recipe_file.metrics)
    old = former_names(recipe_file.recipe, recipe_file.metrics, recipe_file.data)
    return lambda kept: isinstance(kept, str) and _names.resolve(kept, scores, old)[0] == best_by


def higher_is_better(recipe_file: Any, name: str) -> bool:
    """The direction of the score ``name`` as the recipe or its metric declares it."""
    from dltoolkit._config import scores_of

    scalar = scores_of(recipe_file.recipe, recipe_file.metrics).get(name)
    return bool(scalar is not None and scalar.higher_is_better)
