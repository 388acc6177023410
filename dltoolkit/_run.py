"""A run: one execution of a recipe file, its directory, its components and its hooks."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import tomli_w
import torch
from ignite.engine import Engine, Events

from dltoolkit import _checkpoint
from dltoolkit._config import RECIPE_NAME, ComponentTable, RecipeFile, scores_of
from dltoolkit._dataspec import DataSpec, spec_of
from dltoolkit._errors import DltkError, ExitCode, Interrupted, RunFailed
from dltoolkit._manager import PluginHost, call_run_hook
from dltoolkit._paths import dltk_command, one_line
from dltoolkit._registry import Registry
from dltoolkit._resumecheck import TRAIN_SIZE, changes
from dltoolkit._scalars import FiniteWatch, ScalarMeans, as_vector
from dltoolkit._trained import Trained

METRICS_NAME = "metrics.jsonl"
SUMMARY_NAME = "run.json"
SUBDIRS = ("checkpoints", "samples", "tb")
LOCK_NAME = ".lock"
PER_ITERATION_IMAGE = re.compile(r"[A-Za-z][A-Za-z0-9-]*(?:_[A-Za-z][A-Za-z0-9-]*)*_(\d{8,})")
"""The stem of an image of one iteration under ``samples/`` (``grid_00000220``,
``confusion_train_00000100``): a name, ``_``, the iteration in 8 or more digits. Undone on resume."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DltkError(f"run.device: '{name}' requested but CUDA is not available here")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise DltkError(f"run.device: '{name}' requested but this machine has {torch.cuda.device_count()} CUDA devices")
    if device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise DltkError(f"run.device: '{name}' requested but MPS is not available here")
    return device


def _check_writable(folder: Path, key: str) -> None:
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise DltkError(f"{key}: cannot write under '{folder}' ({probe} is not a writable folder)")


class Run:
    """One execution of a recipe file; recipes, callbacks and hooks receive it.

    It owns the run directory (created on first write, so a run refused for bad input leaves
    nothing behind), builds components from the recipe file's tables, logs to
    ``metrics.jsonl`` and TensorBoard, and wires checkpointing.

    A recipe builds its parts with :meth:`build_dataset` and :meth:`build_model`, writes an
    Ignite trainer whose step returns its declared scalars, and hands everything to
    :meth:`fit`, which owns the life cycle: scalar logging, evaluation, callbacks, checkpoints,
    progress, resume and clean stops, in that order.

    Attributes recipes, callbacks and metrics use: ``recipe_file``, ``registry``, ``device``,
    ``path``, ``resuming``, ``seed``, ``data`` (the training data's :class:`~dltoolkit.DataSpec`),
    ``train_dataset``, ``trained`` (the :class:`~dltoolkit.Trained` given to :meth:`fit`),
    ``sampler`` (``trained.sampler``), ``metadata`` (plain data stored in every checkpoint, written
    by the core from the recipe file and the data), ``cache_dir`` and ``reference(split)``.

    With several processes (``ignite.distributed``): ``rank`` and ``world_size``; ``shared_path``
    is the run directory, which only rank 0 writes; on other ranks ``path`` is a scratch folder
    (see docs/distributed.md).
    """

    check_every_step: bool | None = None
    """Check the step scalars are finite every iteration (True) or at logging points and before
    checkpoints (False); None: every iteration on a CPU, where reading them costs no device sync."""

    def __init__(
        self,
        recipe_file: RecipeFile,
        host: PluginHost,
        registry: Registry,
        *,
        run_dir: Path | None = None,
        resuming: bool = False,
    ):
        self.recipe_file = recipe_file
        self.host = host
        self.registry = registry
        self.hook = host.hook
        self.resuming = resuming
        try:
            self.device = resolve_device(recipe_file.run.device)
        except DltkError as exc:  # the same line as dltk check gives
            raise DltkError(f"{recipe_file.path}: {p}" for p in exc.problems) from None
        self._threads_before = torch.get_num_threads()
        if recipe_file.run.threads is not None:
            torch.set_num_threads(recipe_file.run.threads)
        self.path = run_dir if run_dir is not None else self._new_path()
        self.trained: Trained | None = None
        self.data: DataSpec | None = None
        self.train_dataset: Any = None
        self._references: dict[str, tuple[Any, dict[str, Any]]] = {}
        self._evaluated_at: dict[str, int] = {}  # held-out score name -> the iteration it was measured at
        self.metadata = _checkpoint.Metadata({})
        self._lock_fd: int | None = None
        self.created = False
        self._metrics_file: Any = None
        self._tb: Any = None
        self._best: Any = None
        self._last: Any = None
        self._best_higher: bool = False
        self.trainer: Engine | None = None
        self.metrics: list[Any] = []
        self._finalizers: list[Any] = []
        self.resume_rewrites_recipe = False
        self._explicit_dir = run_dir is not None
        if not resuming:
            if run_dir is not None and run_dir.exists() and not run_dir.is_dir():
                raise DltkError(f"--run-dir: '{run_dir}' is a file, not a folder; give a new or empty folder")
            if (
                run_dir is not None
                and run_dir.exists()
                and (not run_dir.is_dir() or any(p.name != LOCK_NAME for p in run_dir.iterdir()))
            ):
                raise DltkError(f"--run-dir: '{run_dir}' exists and is not empty; use --resume to continue it")
            if run_dir is None:
                _check_writable(Path(recipe_file.run.dir), f"{recipe_file.path}: run.dir")
            else:
                _check_writable(run_dir, "--run-dir")
        self.rank, self.world_size = int(idist.get_rank()), int(idist.get_world_size())
        self.shared_path = self.path
        if self.world_size > 1:
            self._join_ranks()

    def _join_ranks(self) -> None:
        """Several processes: one run directory (rank 0's name for it), written by rank 0 only.

        Every other rank writes what a run writes (logs, samples, summaries) to a private scratch
        folder removed when it ends, so plugins need no rank checks of their own; it reads the
        run directory only to load the checkpoint rank 0 chose on ``--resume``.
        """
        from dltoolkit import _distributed

        check_batch_split(self.recipe_file, self.world_size)
        if self.device.type == "cuda":
            self.device = idist.device()  # cuda:<local rank>
        self.path = Path(_distributed.broadcast_text(str(self.path) if self.rank == 0 else None))
        self.shared_path = self.path
        if self.rank > 0:
            scratch = Path(tempfile.mkdtemp(prefix=f"dltk-rank{self.rank}-"))
            self.path = scratch / self.shared_path.name
            _distributed.PATH_ALIASES[str(self.path)] = str(self.shared_path)

    # -- directory and logs -------------------------------------------------------------

    def _new_path(self) -> Path:
        base = Path(self.recipe_file.run.dir) / f"{self.recipe_file.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        path, n = base, 1
        while path.exists():
            n += 1
            path = base.with_name(f"{base.name}-{n}")
        return path

    def ensure_dir(self) -> Path:
        """Create the run directory and write ``recipe.toml`` (once)."""
        if self.created:
            return self.path
        if self.rank > 0:  # a scratch folder: rank 0 owns the run directory
            for sub in SUBDIRS:
                (self.path / sub).mkdir(parents=True, exist_ok=True)
            self.created = True
            return self.path
        if not self.resuming:
            if self._explicit_dir:
                if self.path.exists() and any(p.name != LOCK_NAME for p in self.path.iterdir()):
                    raise DltkError(f"--run-dir: '{self.path}' exists and is not empty; use --resume to continue it")
                self.path.mkdir(parents=True, exist_ok=True)
                self._lock()  # two runs given the same --run-dir: one gets it, the other stops here
                if any(p.name != LOCK_NAME for p in self.path.iterdir()):
                    self._unlock()
                    raise DltkError(f"--run-dir: '{self.path}' exists and is not empty; use --resume to continue it")
            else:  # two runs started in the same second must not share a folder
                self.path.parent.mkdir(parents=True, exist_ok=True)
                base, n = self.path, 1
                while True:
                    try:
                        self.path.mkdir()
                        break
                    except FileExistsError:
                        n += 1
                        self.path = base.with_name(f"{base.name}-{n}")
                self._lock()
            print(f"dltk: writing run to {self.path}", file=sys.stderr)
            self.write_recipe()
        else:
            self._lock()  # two resumes of one run: the second stops before it writes anything
        for sub in SUBDIRS:
            (self.path / sub).mkdir(exist_ok=True)
        self.created = True
        return self.path

    def _lock(self) -> None:
        """Own the run directory: an exclusive ``flock`` on its ``.lock`` file, held until the run
        ends. The OS releases it when the process dies, so a killed run leaves no stale lock."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on POSIX: no locking
            return
        fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DltkError(
                f"{self.path}: in use by another dltk run (pid {holder}); wait for it to end or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    @property
    def owns_dir(self) -> bool:
        """Whether this run made its directory (it holds the lock of a folder it created or found empty)."""
        return self.created or self._lock_fd is not None

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def write_recipe(self) -> None:
        """Write the resolved recipe file (overrides applied) as ``recipe.toml``, atomically."""
        text = f"# resolved recipe of this run (overrides applied)\n{tomli_w.dumps(self.recipe_file.data)}"
        _checkpoint.atomic_write(self.path / RECIPE_NAME, lambda h: h.write(text.encode()))

    def log(self, record: Mapping[str, Any]) -> None:
        """Append one JSON object to ``metrics.jsonl``."""
        if self._metrics_file is None:
            self.ensure_dir()
            self._metrics_file = open(self.path / METRICS_NAME, "a", encoding="utf-8")  # noqa: SIM115
        self._metrics_file.write(json.dumps(dict(record), default=_json_default) + "\n")
        self._metrics_file.flush()

    @property
    def tb(self) -> Any:
        """Ignite's ``TensorboardLogger`` writing to ``tb/`` (created on first use)."""
        if self._tb is None:
            from ignite.handlers import TensorboardLogger

            self.ensure_dir()
            self._tb = TensorboardLogger(log_dir=str(self.path / "tb"))
        return self._tb

    def close(self) -> None:
        """Close the logs, release the run directory, give torch back its thread count."""
        self._unlock()
        if torch.get_num_threads() != self._threads_before:
            torch.set_num_threads(self._threads_before)
        if self._metrics_file is not None:
            self._metrics_file.close()
            self._metrics_file = None
        if self._tb is not None:
            tb, self._tb = self._tb, None
            try:
                tb.close()
            except OSError as exc:  # its folder went away or filled up: the run's own error says so
                shown = one_line(f"dltk: TensorBoard events not finished: {exc.filename}: {exc.strerror}")
                print(shown, file=sys.stderr)
        if self.rank > 0:
            shutil.rmtree(self.path.parent, ignore_errors=True)

    # -- components ---------------------------------------------------------------------

    def table(self, kind: str) -> ComponentTable:
        table = self.recipe_file.table(kind)
        if table is None:
            raise DltkError(f"{self.recipe_file.path}: {kind}: this recipe needs a [{kind}] table")
        return table

    def _from_file(self, exc: DltkError) -> DltkError:
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
            raise self._from_file(exc) from None

    def build_dataset(self, split: str | None = None) -> Any:
        """Build the ``[dataset]`` table's dataset; without ``split`` it is the training data
        (``train_dataset``), and its description becomes ``data``."""
        dataset = self.build("dataset", split=split) if split is not None else self.build("dataset")
        if split is None:
            try:
                self.data = spec_of(dataset)
            except TypeError as exc:
                raise TypeError(f"dataset '{self.table('dataset').name}': {exc}") from None
            self.train_dataset = dataset
            self._check_data(self.data)
        return dataset

    def _check_data(self, spec: DataSpec) -> None:
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
        """Build the ``[model]`` table's model for ``data`` (default: the training data's description).

        The factory receives ``data=`` (a :class:`~dltoolkit.DataSpec`) and, for images,
        ``image_shape=(C, H, W)``, as far as it accepts them. With ``recipe.sync_batchnorm`` and
        several processes, its BatchNorm layers (in the model or in the modules it holds) become
        ``SyncBatchNorm``, before a recipe wraps them for distributed training.
        """
        data = data if data is not None else self.data
        if data is None:
            raise TypeError("run.build_model(): build the dataset first (run.build_dataset()) or pass data=")
        model = self.build("model", **self._checked_model_context(data))
        if self.recipe_file.sync_batchnorm and self.world_size > 1:
            if self.device.type != "cuda":
                raise DltkError(
                    f"{self.recipe_file.path}: recipe.sync_batchnorm: SyncBatchNorm runs on CUDA devices only; "
                    f"this run trains on {self.device.type} (set it to false)"
                )
            model = sync_batchnorm(model)
        return model

    def _checked_model_context(self, data: DataSpec) -> dict[str, Any]:
        """The model's context, once the model was built on the ``meta`` device and found to fit."""
        from dltoolkit._limits import build_model_checked

        context = model_context(data)
        table = self.table("model")
        build_model_checked(
            lambda: table.component.build(table.config, **context),
            name=table.name,
            device=self.device,
            source=str(self.recipe_file.path),
        )
        return context

    @property
    def sampler(self) -> Any:
        """The sampler of the model being trained (``trained.sampler``), or None."""
        return self.trained.sampler if self.trained is not None else None

    def build_callbacks(self) -> list[Any]:
        try:
            return [t.component.build(t.config) for t in self.recipe_file.callbacks]
        except DltkError as exc:
            raise self._from_file(exc) from None

    def build_metrics(self) -> list[tuple[ComponentTable, Any]]:
        try:
            return [(t, t.component.build(t.config, run=self)) for t in self.recipe_file.metrics]
        except DltkError as exc:
            raise self._from_file(exc) from None

    def engine_created(self, engine: Engine, role: str) -> None:
        """Announce an engine: attach the recipe file's callbacks (trainer) and call the hook."""
        if role == "trainer":
            self.trainer = engine
            callbacks = self.build_callbacks()
            for callback in callbacks if self.rank == 0 else []:  # callbacks write artefacts: rank 0's job
                callback.attach(engine, self)
        call_run_hook(self.hook, "dltk_engine_created", run=self, engine=engine, role=role)

    def attach_evaluation(self, trainer: Engine) -> None:
        """Evaluate the recipe file's ``[[metrics]]`` every ``every`` epochs and after the last.

        Metrics that score samples draw from ``trained.sampler``; metrics that score
        predictions run on an Ignite evaluator engine over the held-out split with
        ``trained.eval_step`` (see :func:`evaluate_metrics`). Scores go to :meth:`report`
        (kind ``"eval"``) with their protocol beside them.
        """
        built = [metric for _table, metric in self.build_metrics()]
        self.metrics = built
        if not built:
            return

        def evaluate(engine: Engine) -> None:
            epoch, last = engine.state.epoch, engine.state.max_epochs
            due = [m for m in built if epoch % m.every == 0 or epoch == last]
            if self.world_size > 1 and self.rank > 0:  # metrics drawing samples run on rank 0 alone
                due = [m for m in due if getattr(m, "needs", "samples") == "predictions"]
            results = evaluate_metrics(self, due)
            if self.world_size > 1:
                for metric in due:
                    if metric.name in results:
                        on_rank_0 = getattr(metric, "needs", "samples") != "predictions"
                        results[metric.name]["processes"] = (
                            f"rank 0 of {self.world_size}" if on_rank_0 else f"split over {self.world_size}, gathered"
                        )
            if results:
                scores = {name: float(r["value"]) for name, r in results.items()}
                protocol = {name: {k: v for k, v in r.items() if k != "value"} for name, r in results.items()}
                self.report(engine, scores, kind="eval", protocol=protocol)

        trainer.add_event_handler(Events.EPOCH_COMPLETED, evaluate)

    # -- what metrics need ------------------------------------------------------------------

    @property
    def seed(self) -> int:
        return self.recipe_file.seed

    @property
    def cache_dir(self) -> Path:
        """Where reusable work (reference statistics) is cached: ``$DLTK_CACHE_DIR`` or ``~/.cache/dltoolkit``."""
        return cache_dir()

    def reference(self, split: str) -> tuple[Any, dict[str, Any]]:
        """The recipe file's dataset for ``split`` and a description of it (for protocols and cache keys).

        Built once per split and kept, so evaluations every few epochs do not reload it.
        """
        if split not in self._references:
            table = self.table("dataset")
            try:
                dataset = table.component.build(table.config, split=split)
            except DltkError as exc:
                raise self._from_file(exc) from None
            self._references[split] = (dataset, dataset_identity(table.name, table.options(), split))
        return self._references[split]

    # -- checkpoints and scores ---------------------------------------------------------

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def attach_checkpoints(self, trainer: Engine, objects: Mapping[str, Any]) -> dict[str, Any]:
        """Checkpoint ``objects`` (plus RNG state and metadata) as ``[checkpoint]`` says.

        Returns the full mapping that is saved, for :meth:`resume`. Attach it after the handlers
        whose work a checkpoint should include (epoch summaries, evaluations, sample grids).
        """
        self.ensure_dir()
        section = self.recipe_file.checkpoint
        to_save = {**objects, "trainer": trainer, "rng": _checkpoint.RngState(), "meta": self.metadata}
        self._last = _checkpoint.attach_checkpoints(
            trainer, to_save, self.checkpoint_dir, every=section.every, unit=section.unit, keep=section.keep
        )
        if section.best_by is not None:
            self._best_higher = self._higher_is_better(section.best_by)
            self._best = _checkpoint.guarded(
                _checkpoint.attach_best(to_save, self.checkpoint_dir, section.best_by, self._best_higher), to_save
            )
        return to_save

    def _higher_is_better(self, name: str) -> bool:
        scalar = scores_of(self.recipe_file.recipe, self.recipe_file.metrics).get(name)
        return bool(scalar is not None and scalar.higher_is_better)

    # -- the life cycle -----------------------------------------------------------------

    def fit(
        self,
        trainer: Engine,
        data: Any,
        *,
        epochs: int,
        state: Mapping[str, Any],
        trained: Trained,
        log_every: int = 50,
        on_resume: Any = None,
        failure_hint: str = "",
    ) -> None:
        """Train: everything a run does around the recipe's own step, in the one right order.

        ``trainer`` is an Ignite engine whose step returns the scalars the recipe declares in
        its component's ``reports`` (``{name: 0-d tensor}``). ``state`` maps names to what a
        checkpoint holds (models, optimisers, schedulers, anything with ``state_dict``); the
        names of ``trained.modules`` must be among them. In order, ``fit``:

        1. records ``trained`` and writes the checkpoint metadata that ``dltk generate``,
           ``export`` and ``eval`` rebuild the model from;
        2. checks every step's scalars are finite (a non-finite one stops the run, exit 1,
           naming it; ``failure_hint`` is added to the message) and logs their means every
           ``log_every`` iterations (kind ``step``) and per epoch (kind ``epoch``);
        3. evaluates the ``[[metrics]]``, attaches the ``[[callbacks]]`` and calls
           ``dltk_engine_created(role="trainer")``;
        4. checkpoints (``[checkpoint]``), shows progress, and on ``--resume`` loads the newest
           checkpoint, then calls ``on_resume()`` (to re-apply options the user may change);
        5. runs ``epochs`` epochs of ``data``, stopping cleanly on SIGINT/SIGTERM.

        Handlers the recipe attaches to ``trainer`` before calling ``fit`` run before all of
        these on the same event (Ignite calls handlers in the order they were added): attach
        there what a checkpoint should include, such as artefacts written at each epoch's end.
        """
        missing = [name for name in trained.modules if name not in state]
        if missing:
            raise TypeError(f"run.fit(): trained.modules {missing} must also be in state (what checkpoints hold)")
        self.trained = trained
        self.write_metadata(trained)
        means = self._attach_scalars(trainer, log_every, failure_hint)
        self.attach_evaluation(trainer)
        self.engine_created(trainer, "trainer")
        to_save = self.attach_checkpoints(trainer, {**state, "stats": means})
        self.attach_progress(trainer)
        keep_finished_epoch(trainer)
        if self.resume(to_save, max_epochs=epochs) is not None and on_resume is not None:
            on_resume()
        if self.recipe_file.compile:
            compile_modules([m for m in state.values() if isinstance(m, torch.nn.Module)], self.device)
        started = time.perf_counter()
        try:
            self.run_engine(trainer, data, epochs)
        finally:
            self.write_summary(state, trained, trainer, time.perf_counter() - started)

    def write_summary(self, state: Mapping[str, Any], trained: Trained, trainer: Engine, seconds: float) -> None:
        """``run.json``: parameters per module and training wall time (summed over resumes), for ``dltk compare``."""
        path = self.path / SUMMARY_NAME
        previous: dict[str, Any] = {}
        if self.resuming and path.is_file():
            try:
                previous = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                previous = {}
        modules = {n: m for n, m in state.items() if isinstance(m, torch.nn.Module)}
        summary = {
            "parameters": {n: sum(p.numel() for p in m.parameters()) for n, m in modules.items()},
            "trained_modules": list(trained.modules),
            "train_seconds": round(float(previous.get("train_seconds", 0.0)) + seconds, 3),
            "sessions": int(previous.get("sessions", 0)) + 1,
            "epoch": trainer.state.epoch,
            "iteration": trainer.state.iteration,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        text = json.dumps(summary, indent=1) + "\n"
        try:
            _checkpoint.atomic_write(path, lambda h: h.write(text.encode()))
        except OSError as exc:  # never hide the run's own outcome
            print(f"dltk: could not write {path}: {exc}", file=sys.stderr)

    def write_metadata(self, trained: Trained) -> None:
        """What rebuilds the trained model: recipe, model and options, data description, dataset, seed."""
        from dltoolkit import __version__

        recipe_file = self.recipe_file
        data = self.data
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
        if hasattr(self.train_dataset, "__len__"):  # what a resume checks the data against
            meta[TRAIN_SIZE] = len(self.train_dataset)
        self.metadata.data.update(meta)

    def _attach_scalars(self, trainer: Engine, log_every: int, failure_hint: str) -> ScalarMeans:
        names = [s.name for s in self.recipe_file.recipe.component.reports]
        means = ScalarMeans(names, self.device)

        @trainer.on(Events.EPOCH_STARTED)
        def _reset(engine: Engine) -> None:
            if engine.state.iteration % engine.state.epoch_length == 0:  # not a mid-epoch resume
                means.reset_epoch()

        # On a CPU, reading a flag costs nothing: every step is checked. On an accelerator that
        # would wait for the device each step, so the first bad step is kept on the device and read
        # at logging points and before any checkpoint (none is ever written after a bad step).
        every_step = self.device.type == "cpu" if self.check_every_step is None else self.check_every_step
        watch = FiniteWatch(len(names), self.device)

        def fail(engine: Engine, iteration: int, values: list[float]) -> RunFailed:
            bad = [f"{n} = {v:g}" for n, v in zip(names, values, strict=True) if not math.isfinite(v)]
            advice = (
                f"Resume from the last good checkpoint with: {dltk_command()} run --resume {self.shared_path}"
                if _checkpoint.checkpoints_in(self.shared_path / "checkpoints")
                else restart_advice(self)
            )
            hint = f" ({failure_hint})" if failure_hint else ""
            epoch = (iteration - 1) // max(engine.state.epoch_length or 1, 1) + 1
            return RunFailed(
                f"{self.shared_path}: non-finite loss at iteration {iteration} "
                f"(epoch {epoch}): {', '.join(bad)}; no checkpoint was written with it. "
                f"{advice}{hint}"
            )

        def check(engine: Engine) -> None:
            """Before logging or a checkpoint: no bad step since the last check; sums over all ranks."""
            if not every_step:
                found = watch.first_bad()
                if found is not None:
                    raise fail(engine, *found)
            means.sync()

        @trainer.on(Events.ITERATION_COMPLETED)
        def _collect(engine: Engine) -> None:
            values = as_vector(engine.state.output, names, self.device)
            if every_step:
                if not bool(torch.isfinite(values).all()):
                    raise fail(engine, engine.state.iteration, values.tolist())
            else:
                watch.add(values, engine.state.iteration)
            means.add(values)

        @trainer.on(Events.ITERATION_COMPLETED(every=log_every))
        def _log_window(engine: Engine) -> None:
            check(engine)
            self.report(engine, means.window_means(), kind="step")
            means.mark_window()

        @trainer.on(Events.EPOCH_COMPLETED)
        def _log_epoch(engine: Engine) -> None:
            check(engine)
            self.report(engine, means.epoch_means(), kind="epoch")

        if not every_step or self.world_size > 1:
            section = self.recipe_file.checkpoint
            if section.unit == "iteration":
                trainer.add_event_handler(Events.ITERATION_COMPLETED(every=section.every), check)
            trainer.add_event_handler(Events.TERMINATE, check)
            trainer.add_event_handler(Events.COMPLETED, check)

        return means

    def resume(self, to_load: Mapping[str, Any], *, max_epochs: int | None = None) -> Path | None:
        """Load the newest readable checkpoint into ``to_load``; return its path (None if fresh).

        With ``max_epochs``, a run whose trainer already completed that many epochs is refused
        (Ignite would otherwise start it again from scratch).

        A checkpoint that is truncated or unreadable is reported on stderr and the previous one
        is tried; with none left it is a :class:`DltkError`. With several processes rank 0
        chooses (and sets aside what is unusable) and every rank loads the checkpoint it chose.
        """
        if not self.resuming:
            return None
        if self.world_size == 1:
            return self._resume_newest(to_load, max_epochs=max_epochs)
        from dltoolkit import _distributed

        chosen = self._resume_newest(to_load, max_epochs=max_epochs) if self.rank == 0 else None
        name = _distributed.broadcast_text(str(chosen) if chosen is not None else "" if self.rank == 0 else None)
        if self.rank > 0 and name:
            from ignite.handlers import Checkpoint

            Checkpoint.load_objects(to_load, _checkpoint.load_checkpoint(Path(name)))
        return Path(name) if name else None

    def _resume_newest(self, to_load: Mapping[str, Any], *, max_epochs: int | None = None) -> Path | None:
        _checkpoint.remove_stray_temp_files(self.checkpoint_dir)
        candidates = _checkpoint.checkpoints_in(self.checkpoint_dir)
        if not candidates:  # stopped before its first checkpoint: not a dead end, start it again here
            print(
                f"dltk: {self.path} has no checkpoint yet (it stopped before the first one): "
                "starting it again from the beginning in the same directory",
                file=sys.stderr,
            )
            self._undo_after(0)
            if self.resume_rewrites_recipe:
                self.write_recipe()
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
            if unusable and self._last is not None:
                _checkpoint.sync_saved(self._last, self.checkpoint_dir, self.recipe_file.checkpoint.keep)
            changed = changes(data.get("meta", {}), self.metadata.data, self.recipe_file, path.name)
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
                        f"{self.path}: the run already finished {state.epoch} epochs; "
                        f"pass recipe.epochs=N with N > {state.epoch} to train longer"
                    )
            # what runs from here on (resumable options may have changed); the best score stays the loaded one
            self.metadata.data.update({k: v for k, v in current.items() if k not in ("best_by", "best_score")})
            if self.resume_rewrites_recipe:
                self.write_recipe()
            print(f"dltk: resuming {self.path} from {path.name}", file=sys.stderr)
            self._undo_after(int(data["trainer"]["iteration"]))
            return path
        raise DltkError([*problems, f"{self.path}: no readable checkpoint left to resume from"])

    def _undo_after(self, iteration: int) -> None:
        """Undo what the run recorded after ``iteration``, the checkpoint we resume from (0: none):
        the metrics.jsonl records (they will be logged again) and the ``samples/`` images of one
        iteration (:data:`PER_ITERATION_IMAGE`: grids, reconstructions, confusion matrices), which
        would otherwise stay beside the new ones and in progress.gif. Only images of iterations the
        log reached are taken for the run's, so that a user's ``photo_20240101.png`` stays."""
        path = self.path / METRICS_NAME
        reached = 0
        if path.exists():
            kept = []
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    logged = int(json.loads(line).get("iteration", 0))
                except (ValueError, AttributeError, TypeError):
                    continue
                reached = max(reached, logged)
                if logged <= iteration:
                    kept.append(line)
            text = "".join(f"{line}\n" for line in kept)
            _checkpoint.atomic_write(path, lambda h: h.write(text.encode()))
        folder = self.path / "samples"
        for image in folder.glob("*.png") if folder.is_dir() else ():
            found = PER_ITERATION_IMAGE.fullmatch(image.stem)
            if found and iteration < int(found.group(1)) <= reached:
                image.unlink(missing_ok=True)

    def report(self, engine: Engine, scores: Mapping[str, float], *, kind: str, **extra: Any) -> None:
        """Record scores of ``kind`` ("step", "epoch", "eval"): state.metrics, metrics.jsonl, TensorBoard.

        When the score named by ``checkpoint.best_by`` is among them, the best checkpoint is
        considered.
        """
        engine.state.metrics.update(scores)
        if kind == "eval":  # the epoch line shows a held-out score only on the epoch it was measured
            self._evaluated_at.update(dict.fromkeys(scores, engine.state.iteration))
        self.log(
            {
                "kind": kind,
                "epoch": engine.state.epoch,
                "iteration": engine.state.iteration,
                **scores,
                **extra,
            }
        )
        writer = self.tb.writer
        for name, value in scores.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                writer.add_scalar(f"{kind}/{name}", value, engine.state.iteration)
        best_by = self.recipe_file.checkpoint.best_by
        fresh = kind != "step" and best_by in scores
        if self._best is not None and fresh and math.isfinite(scores[best_by]):
            self.metadata.data["best_by"] = best_by
            self.metadata.data["best_score"] = float(scores[best_by])
            self._best(engine)

    def add_finalizer(self, function: Any) -> None:
        """Call ``function(engine)`` if the engine run fails, before the error propagates.

        For artefacts worth writing even then (the GIF, the loss plot). Use this rather than an
        Ignite ``EXCEPTION_RAISED`` handler, which would swallow the exception (and the exit code).
        """
        self._finalizers.append(function)

    def run_engine(self, engine: Engine, data: Any, max_epochs: int) -> None:
        """``engine.run(data, max_epochs)``, stopping cleanly on SIGINT or SIGTERM.

        The first signal stops the engine at the end of the current iteration; the handlers of
        ``Events.TERMINATE`` and ``Events.COMPLETED`` then write the last checkpoint, the GIF and the
        plots, and :class:`Interrupted` (exit 130 or 143) is raised. A second signal exits at once
        (checkpoints are written atomically, so nothing is left half-written).
        """
        received: list[int] = []

        together = self.world_size > 1  # every rank must stop after the same iteration

        def on_signal(signum: int, _frame: Any) -> None:
            code = ExitCode.INTERRUPTED if signum == signal.SIGINT else ExitCode.TERMINATED
            if received:
                if self.rank == 0:
                    print("dltk: stopping now", file=sys.stderr, flush=True)
                os._exit(int(code))
            received.append(signum)
            if self.rank == 0:
                state = engine.state
                done = bool(state.epoch_length) and state.iteration >= max_epochs * state.epoch_length
                what = "training is complete; finishing its last files" if done else "stopping after this iteration"
                print(
                    f"dltk: {signal.Signals(signum).name} received: {what} (again to stop at once)",
                    file=sys.stderr,
                    flush=True,
                )
            if not together:
                engine.terminate()

        if together:
            from dltoolkit import _distributed

            interval = 1 if idist.backend() == "gloo" else 20  # on a GPU, agreeing waits for the device

            def agree(engine: Engine) -> None:
                if engine.state.iteration % interval == 0 or engine.state.iteration % engine.state.epoch_length == 0:
                    signum = _distributed.agree_on_stop(received[0] if received else 0, self.device)
                    if signum:
                        if not received:
                            received.append(signum)
                        engine.terminate()

            engine.add_event_handler(Events.ITERATION_COMPLETED, agree)

        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {}
        if threading.current_thread() is threading.main_thread():
            previous = {s: signal.signal(s, on_signal) for s in handled}
        try:
            engine.run(data, max_epochs=max_epochs)
        except BaseException as error:
            for finalize in self._finalizers:
                try:
                    finalize(engine)
                except Exception as exc:  # never hide the original error
                    print(f"dltk: could not finish {finalize}: {exc}", file=sys.stderr)
            if isinstance(error, OSError) and error.errno == errno.ENOSPC:
                where = error.filename or self.path
                raise RunFailed(
                    f"{where}: disk full at iteration {engine.state.iteration}; the checkpoints already written "
                    f"are intact. Free some space, then continue with: {dltk_command()} run --resume {self.path}"
                ) from None
            raise
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        finished = engine.state.iteration >= max_epochs * (engine.state.epoch_length or 1)
        if received and not finished:  # a signal during the last handlers of a complete run changes nothing
            code = ExitCode.INTERRUPTED if received[0] == signal.SIGINT else ExitCode.TERMINATED
            raise Interrupted(
                f"{self.path}: stopped by {signal.Signals(received[0]).name} at iteration {engine.state.iteration}; "
                f"state saved. Continue with: {dltk_command()} run --resume {self.path}",
                code,
            )

    def attach_progress(self, trainer: Engine) -> None:
        """A progress bar on a terminal (Ignite's ``ProgressBar``), one line per epoch otherwise (rank 0)."""
        if self.rank > 0:
            return
        if sys.stderr.isatty():
            from ignite.handlers import ProgressBar

            ProgressBar(persist=True).attach(trainer, metric_names="all")
            return
        started = time.perf_counter()

        @trainer.on(Events.EPOCH_COMPLETED)
        def _line(engine: Engine) -> None:
            now = engine.state.iteration
            shown = ", ".join(
                f"{k}={v:.4g}"
                for k, v in engine.state.metrics.items()
                if isinstance(v, (int, float)) and self._evaluated_at.get(k, now) == now
            )
            elapsed = time.perf_counter() - started
            print(
                f"epoch {engine.state.epoch}/{engine.state.max_epochs} "
                f"(iteration {engine.state.iteration}, {elapsed:.1f}s): {shown}",
                file=sys.stderr,
            )

    def add_images(self, tag: str, grid: torch.Tensor, step: int) -> None:
        self.tb.writer.add_image(tag, grid, step)


def restart_advice(run: Run) -> str:
    """What to do after a failure before the first checkpoint: ``--resume`` starts the run again."""
    path = getattr(run, "shared_path", run.path)
    return (
        f"No checkpoint was written yet: {dltk_command()} run --resume {path} starts it again from the beginning "
        "in this directory (KEY=VALUE after it changes the options declared resumable)"
    )


def keep_finished_epoch(trainer: Engine) -> None:
    """Every stop keeps finished work: when a stop (``terminate()``) comes on an epoch's last
    iteration, Ignite skips that epoch's ``EPOCH_COMPLETED``; fire it before ``TERMINATE``'s
    handlers and the stop's checkpoint, so the epoch gets its record, evaluations and best choice."""
    done = {"epoch": 0}

    @trainer.on(Events.EPOCH_COMPLETED)
    def _mark(engine: Engine) -> None:
        done["epoch"] = engine.state.epoch

    @trainer.on(Events.TERMINATE)
    def _finish_epoch(engine: Engine) -> None:
        state = engine.state
        complete = state.epoch_length and state.iteration == state.epoch * state.epoch_length
        if complete and done["epoch"] != state.epoch:
            engine.fire_event(Events.EPOCH_COMPLETED)


def evaluate_metrics(source: Any, metrics: list[Any]) -> dict[str, dict[str, Any]]:
    """Evaluate metric objects; return ``{name: {"value": float, ...protocol}}``.

    A metric that scores samples (``needs = "samples"``, the default) is evaluated with the
    others of its class in one call of ``evaluate_together(source, metrics)``. A metric that
    scores predictions (``needs = "predictions"``) gives an Ignite ``Metric`` from
    ``ignite_metric()``; those of one split are attached to one evaluator engine that runs
    ``source.trained.eval_step`` over ``source.reference(split)``.

    ``source`` is a :class:`Run` or anything with what metrics read from one (``dltk eval``).
    """
    groups: dict[Any, list[Any]] = {}
    by_split: dict[str, list[Any]] = {}
    for metric in metrics:
        if getattr(metric, "needs", "samples") == "predictions":
            by_split.setdefault(getattr(metric, "split", "test"), []).append(metric)
        else:
            groups.setdefault(type(metric).evaluate_together, []).append(metric)
    results: dict[str, dict[str, Any]] = {}
    for evaluate_together, members in groups.items():
        results.update(evaluate_together(source, members))
    for split, members in by_split.items():
        results.update(run_evaluator(source, members, split))
    return results


def run_evaluator(source: Any, metrics: list[Any], split: str) -> dict[str, dict[str, Any]]:
    """Run Ignite metrics over the held-out ``split`` on an evaluator engine (role ``evaluator``)."""
    from dltoolkit._data import make_loader

    trained = getattr(source, "trained", None)
    names = ", ".join(m.name for m in metrics)
    if trained is None:
        raise DltkError(f"metrics: {names} score a trained model's predictions; give a run, checkpoint or export")
    if trained.eval_step is None:
        raise DltkError(f"metrics: {names} score predictions, and this recipe offers no eval_step")
    dataset, identity = source.reference(split)
    batch_size = max(int(getattr(m, "batch_size", 256)) for m in metrics)
    loader = make_loader(dataset, batch_size, seed=0, shuffle=False, drop_last=False, split_batch=False)
    modules = [m for m in trained.modules.values() if isinstance(m, torch.nn.Module)]
    modes = [m.training for m in modules]

    def step(_engine: Engine, batch: Any) -> Any:
        with torch.no_grad():
            return trained.eval_step(batch)

    evaluator = Engine(step)
    for metric in metrics:
        metric.ignite_metric().attach(evaluator, metric.name)
    if hasattr(source, "engine_created"):
        source.engine_created(evaluator, "evaluator")
    devices = [source.device] if torch.device(source.device).type == "cuda" else []
    started = time.perf_counter()
    try:
        for module in modules:
            module.eval()
        with torch.random.fork_rng(devices=devices):  # evaluation never moves the training RNG
            torch.manual_seed(int(getattr(source, "seed", 0)))
            state = evaluator.run(loader)
    finally:
        for module, mode in zip(modules, modes, strict=True):
            module.train(mode)
    seconds = round(time.perf_counter() - started, 3)
    results = {}
    for metric in metrics:
        value = state.metrics[metric.name]
        value = float(value.item() if isinstance(value, torch.Tensor) else value)
        results[metric.name] = {"value": value, "split": split, "count": len(dataset), "reference": identity}
        results[metric.name]["seconds"] = seconds
    return results


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
    return Path(os.environ.get("DLTK_CACHE_DIR") or Path.home() / ".cache" / "dltoolkit")


def dataset_identity(name: str, options: Mapping[str, Any], split: str) -> dict[str, Any]:
    """What identifies a dataset's samples: its name, options (root and path made absolute) and split."""
    kept = {k: v for k, v in options.items() if k not in ("download", "split")}
    identity = {"dataset": name, **absolute_root(kept)}
    identity["split"] = split
    return identity


def _json_default(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {value!r}")


@contextlib.contextmanager
def _quiet_ignite_errors() -> Iterator[None]:
    """Ignite logs an engine's exception before raising it; dltk reports it itself (once)."""
    import logging

    previous_hook = threading.excepthook

    def thread_hook(args: Any) -> None:  # a writer thread's OSError reaches the run through its writer
        if not issubclass(args.exc_type, OSError):
            previous_hook(args)

    threading.excepthook = thread_hook
    logger = logging.getLogger("ignite.engine.engine")
    children = [logging.getLogger(n) for n in list(logging.root.manager.loggerDict) if n.startswith(logger.name + ".")]
    saved = [(each, each.level) for each in (logger, *children)]
    for each, _level in saved:
        each.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for each, level in saved:
            each.setLevel(level)
        threading.excepthook = previous_hook


def _os_error(run: Run, exc: OSError) -> DltkError:
    """An ``OSError`` from a run as one line: exit 1 once training started, else 2 (bad input)."""
    where = exc.filename if exc.filename is not None else run.path
    what = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        what = f"disk full ({what})"
    iteration = run.trainer.state.iteration if run.trainer is not None else 0
    if iteration > 0:
        return RunFailed(
            f"{where}: {what} at iteration {iteration}; the checkpoints already written are intact unless the "
            f"run directory itself was changed. Once fixed, continue with: {dltk_command()} run --resume {run.path}"
        )
    if exc.errno == errno.ENOSPC:
        return DltkError(f"{where}: {what}; free some space and try again")
    return DltkError(f"{where}: {what}")


def execute(run: Run) -> ExitCode:
    """Run the recipe, fire ``dltk_run_finished`` whatever happens, and return the exit code.

    :class:`DltkError` and ``KeyboardInterrupt`` propagate after the hook; a run refused before
    anything was trained leaves no directory behind.
    """
    exit_code = ExitCode.RUN_FAILED
    pre_existing = run.path.exists()
    try:
        try:
            with _quiet_ignite_errors():  # the error is said once, by dltk, not also by Ignite's logger
                call_run_hook(run.hook, "dltk_configure", run=run)
                table = run.recipe_file.recipe
                table.component.build(table.config, run=run)
        except OSError as exc:  # the file system refused: a user's problem, said in one line
            raise _os_error(run, exc) from None
        exit_code = ExitCode.OK
        return exit_code
    except DltkError as exc:
        exit_code = exc.exit_code
        trained = run.trainer is not None and run.trainer.state.iteration > 0
        # only what this run created itself: a run that lost its directory to another removes nothing
        if exit_code == ExitCode.BAD_INPUT and not trained and not run.resuming and not pre_existing and run.owns_dir:
            run.close()
            shutil.rmtree(run.path, ignore_errors=True)
        raise
    except KeyboardInterrupt:
        exit_code = ExitCode.INTERRUPTED
        raise
    finally:
        run.close()
        try:
            run.hook.dltk_run_finished(run=run, exit_code=exit_code)
        except Exception as exc:  # a plugin's cleanup must not mask the run's outcome
            print(f"dltk: dltk_run_finished raised {type(exc).__name__}: {exc}", file=sys.stderr)
