"""The builder: a recipe file's components built for one run, with the data checked against what
the recipe and model need, the model checked to fit in memory (on the ``meta`` device first), and
the held-out references kept."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from dltoolkit._config import ComponentTable, RecipeFile
from dltoolkit._dataspec import DataSpec, spec_of
from dltoolkit._errors import DltkError


class Builder:
    """Builds the components a recipe file names, as recipes ask for them.

    Keeps what was built that others read: ``data`` (the training data's
    :class:`~dltoolkit.DataSpec`), ``train_dataset`` and the held-out ``reference`` datasets.
    """

    def __init__(self, recipe_file: RecipeFile, device: torch.device, world_size: int = 1):
        self.recipe_file = recipe_file
        self.device = device
        self.world_size = world_size
        self.data: DataSpec | None = None
        self.train_dataset: Any = None
        self._references: dict[str, tuple[Any, dict[str, Any]]] = {}

    def table(self, kind: str) -> ComponentTable:
        table = self.recipe_file.table(kind)
        if table is None:
            raise DltkError(f"{self.recipe_file.path}: {kind}: this recipe needs a [{kind}] table")
        return table

    def from_file(self, exc: DltkError) -> DltkError:
        """The same problems, each prefixed with the recipe file (``FILE: key: what``)."""
        prefix = f"{self.recipe_file.path}: "
        lines = [line if line.startswith(prefix) else prefix + line for line in exc.problems]
        return type(exc)(lines, exc.exit_code) if type(exc) is DltkError else DltkError(lines, exc.exit_code)

    def build(self, kind: str, **context: Any) -> Any:
        """Build the component named by the recipe file's ``[kind]`` table."""
        table = self.table(kind)
        try:
            return table.component.build(table.config, **context)
        except DltkError as exc:
            raise self.from_file(exc) from None

    def build_dataset(self, split: str | None = None) -> Any:
        """The ``[dataset]`` table's dataset; without ``split`` the training data, checked."""
        dataset = self.build("dataset", split=split) if split is not None else self.build("dataset")
        if split is None:
            try:
                self.data = spec_of(dataset)
            except TypeError as exc:
                raise TypeError(f"dataset '{self.table('dataset').name}': {exc}") from None
            self.train_dataset = dataset
            self.check_data(self.data)
        return dataset

    def check_data(self, spec: DataSpec) -> None:
        """The built data against what the recipe and model need (for datasets that declared nothing)."""
        from dltoolkit._compat import data_problem

        dataset = self.table("dataset")
        problems = []
        for owner in (self.recipe_file.recipe, self.recipe_file.model):
            if owner is not None and "dataset" in owner.component.needs:
                what = f"the {owner.component.kind} '{owner.name}'"
                problem = data_problem(owner.component.needs["dataset"], spec, dataset.name, what)
                if problem is not None:
                    problems.append(f"{self.recipe_file.path}: dataset.name: {problem}")
        if problems:
            raise DltkError(problems)

    def build_model(self, data: DataSpec | None = None) -> Any:
        """The ``[model]`` table's model for ``data`` (default: the training data's description),
        once built on the ``meta`` device and found to fit; with ``recipe.sync_batchnorm`` and several
        processes, its BatchNorm layers become ``SyncBatchNorm``."""
        from dltoolkit._limits import build_model_checked

        data = data if data is not None else self.data
        if data is None:
            raise TypeError("run.build_model(): build the dataset first (run.build_dataset()) or pass data=")
        context = model_context(data)
        table = self.table("model")
        build_model_checked(
            lambda: table.component.build(table.config, **context),
            name=table.name,
            device=self.device,
            source=str(self.recipe_file.path),
        )
        model = self.build("model", **context)
        if self.recipe_file.sync_batchnorm and self.world_size > 1:
            if self.device.type != "cuda":
                raise DltkError(
                    f"{self.recipe_file.path}: recipe.sync_batchnorm: SyncBatchNorm runs on CUDA devices only; "
                    f"this run trains on {self.device.type} (set it to false)"
                )
            model = sync_batchnorm(model)
        return model

    def build_callbacks(self) -> list[Any]:
        try:
            return [t.component.build(t.config) for t in self.recipe_file.callbacks]
        except DltkError as exc:
            raise self.from_file(exc) from None

    def build_metrics(self, run: Any) -> list[tuple[ComponentTable, Any]]:
        try:
            return [(t, t.component.build(t.config, run=run)) for t in self.recipe_file.metrics]
        except DltkError as exc:
            raise self.from_file(exc) from None

    def reference(self, split: str) -> tuple[Any, dict[str, Any]]:
        """The dataset for ``split`` and a description of it (for protocols and cache keys), built once."""
        if split not in self._references:
            table = self.table("dataset")
            try:
                dataset = table.component.build(table.config, split=split)
            except DltkError as exc:
                raise self.from_file(exc) from None
            self._references[split] = (dataset, dataset_identity(table.name, table.options(), split))
        return self._references[split]


def sync_batchnorm(model: Any) -> Any:
    """``model`` (a module, or an object holding modules) with BatchNorm layers made ``SyncBatchNorm``."""
    convert = torch.nn.SyncBatchNorm.convert_sync_batchnorm
    if isinstance(model, torch.nn.Module):
        return convert(model)
    import attrs

    names = [f.name for f in attrs.fields(type(model))] if attrs.has(type(model)) else list(vars(model))
    for name in names:
        value = getattr(model, name)
        if isinstance(value, torch.nn.Module):
            setattr(model, name, convert(value))
    return model


def networks(state: Mapping[str, Any]) -> dict[str, torch.nn.Module]:
    """The networks of a recipe's checkpointed ``state``: its ``nn.Module`` entries that have
    parameters. A parameter-free module (statistics a sampler draws by, such as a fitted prior) is
    saved, loaded and checked for finiteness like any module, but is neither counted in ``run.json``
    nor compiled."""
    return {n: m for n, m in state.items() if isinstance(m, torch.nn.Module) and any(True for _ in m.parameters())}


def compile_modules(modules: list[torch.nn.Module], device: torch.device) -> bool:
    """``recipe.compile``: compile each module in place (``nn.Module.compile``), so its
    ``state_dict`` keeps its keys (no ``_orig_mod.``) and checkpoints stay interchangeable between
    compiled and uncompiled runs. Where ``torch.compile`` cannot work here (no compiler, no
    Triton, an unsupported Python), one warning line and the modules stay as they are."""
    try:
        probe = torch.compile(lambda x: x * 2.0 + 1.0)
        probe(torch.ones(4, device=device))
    except Exception as exc:  # what fails differs by platform: a missing compiler, Triton, Python version
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(
            f"dltk: recipe.compile: torch.compile is not available here ({first}); training uncompiled", file=sys.stderr
        )
        return False
    seen: set[int] = set()
    for module in modules:
        if id(module) not in seen:
            seen.add(id(module))
            module.compile()
    return True


def check_batch_split(recipe_file: RecipeFile, world_size: int) -> None:
    """``recipe.batch_size`` is the global batch: with N processes each takes batch_size / N."""
    batch_size = getattr(recipe_file.recipe.config, "batch_size", None)
    if world_size > 1 and isinstance(batch_size, int) and batch_size % world_size:
        raise DltkError(
            f"{recipe_file.path}: recipe.batch_size: {batch_size} does not divide among {world_size} processes "
            f"(each takes batch_size / {world_size}); use a multiple of {world_size}"
        )


def model_context(data: DataSpec) -> dict[str, Any]:
    """What a model factory may receive: ``data``, and ``image_shape`` for images."""
    context: dict[str, Any] = {"data": data}
    if data.kind == "images":
        context["image_shape"] = tuple(data.shape)
    return context


def absolute_root(options: Mapping[str, Any]) -> dict[str, Any]:
    """Dataset options with ``root`` (a folder) and ``path`` (a file) made absolute, so that
    ``dltk eval`` and ``predict`` find the data from anywhere."""
    resolved = dict(options)
    for key in ("root", "path"):
        if isinstance(resolved.get(key), str) and resolved[key]:
            resolved[key] = str(Path(resolved[key]).resolve())
    return resolved


def cache_dir() -> Path:
    """Where reusable work (reference statistics) is cached: ``$DLTK_CACHE_DIR`` or ``~/.cache/dltoolkit``."""
    return Path(os.environ.get("DLTK_CACHE_DIR") or Path.home() / ".cache" / "dltoolkit")


def dataset_identity(name: str, options: Mapping[str, Any], split: str) -> dict[str, Any]:
    """What identifies a dataset's samples: its name, options (root and path made absolute) and split."""
    kept = {k: v for k, v in options.items() if k not in ("download", "split")}
    identity = {"dataset": name, **absolute_root(kept)}
    identity["split"] = split
    return identity
