"""A run: one execution of a recipe file, composed of small parts that each attach themselves.

The parts, one module each: the run directory (:mod:`dltoolkit._rundir`), the builder
(:mod:`dltoolkit._builder`), the recorder and its writers (:mod:`dltoolkit._recorder`), the scalar
watch (:mod:`dltoolkit._scalars`), evaluation (:mod:`dltoolkit._evaluation`), checkpoints and resume
(:mod:`dltoolkit._resume`) and the graceful stop (:mod:`dltoolkit._stop`). :meth:`Run.fit` is the
list of them in the one right order; a recipe needing another order can attach them itself.
"""

from __future__ import annotations

import contextlib
import errno
import math
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine

from dltoolkit import _checkpoint
from dltoolkit._builder import (
    Builder,
    absolute_root,
    cache_dir,
    check_batch_split,
    compile_modules,
    dataset_identity,
    model_context,
    networks,
    sync_batchnorm,
)
from dltoolkit._config import ComponentTable, RecipeFile
from dltoolkit._dataspec import DataSpec
from dltoolkit._errors import DltkError, ExitCode, RunFailed
from dltoolkit._evaluation import Evaluation, evaluate_metrics, run_evaluator
from dltoolkit._limits import resolve_device
from dltoolkit._manager import PluginHost, call_run_hook
from dltoolkit._paths import dltk_command
from dltoolkit._recorder import Recorder, build_writers
from dltoolkit._registry import Registry
from dltoolkit._resume import Checkpoints
from dltoolkit._rundir import CHECKPOINTS, METRICS_NAME, SUMMARY_NAME, RunDirectory, new_run_path
from dltoolkit._scalars import ScalarWatch
from dltoolkit._stop import GracefulStop, keep_finished_epoch
from dltoolkit._trained import Trained

__all__ = [  # what other modules and tests import from here
    "METRICS_NAME",
    "SUMMARY_NAME",
    "Run",
    "absolute_root",
    "cache_dir",
    "check_batch_split",
    "compile_modules",
    "dataset_identity",
    "evaluate_metrics",
    "execute",
    "keep_finished_epoch",
    "model_context",
    "resolve_device",
    "restart_advice",
    "run_evaluator",
    "sync_batchnorm",
]


class Run:
    """One execution of a recipe file; recipes, callbacks, metrics and hooks receive it.

    Its parts: ``directory`` (created on first write, so a run refused for bad input leaves
    nothing behind), ``builder``, ``recorder`` (writers: ``metrics.jsonl``, TensorBoard, progress,
    plugins'), ``checkpoints`` (and resume) and ``stop``. A recipe builds with
    :meth:`build_dataset` and :meth:`build_model`, writes an Ignite trainer whose step returns its
    declared scalars, and hands it to :meth:`fit`.

    What recipes, callbacks and metrics read: ``recipe_file``, ``registry``, ``device``, ``path``,
    ``resuming``, ``seed``, ``data`` (the training data's :class:`~dltoolkit.DataSpec`),
    ``train_dataset``, ``trained`` and ``sampler``, ``trainer``, ``metadata`` (plain data stored in
    every checkpoint), ``cache_dir`` and ``reference(split)``. With several processes: ``rank`` and
    ``world_size``; ``shared_path`` is the run directory, which only rank 0 writes; on other ranks
    ``path`` is a scratch folder (see docs/distributed.md).
    """

    check_every_step: bool | None = None
    """Check the step scalars are finite every iteration (True) or at logging points and before
    checkpoints (False); None: every iteration on a CPU, where reading them costs no device sync."""

    def __init__(self, recipe_file: RecipeFile, host: PluginHost, registry: Registry, *,
                 run_dir: Path | None = None, resuming: bool = False):  # fmt: skip
        self.recipe_file, self.host, self.registry, self.hook = recipe_file, host, registry, host.hook
        self.resuming = resuming
        try:
            self.device = resolve_device(recipe_file.run.device)
        except DltkError as exc:  # the same line as dltk check gives
            raise DltkError(f"{recipe_file.path}: {p}" for p in exc.problems) from None
        self._threads_before = torch.get_num_threads()
        if recipe_file.run.threads is not None:
            torch.set_num_threads(recipe_file.run.threads)
        path = run_dir if run_dir is not None else new_run_path(recipe_file.run.dir, recipe_file.stem)
        self.directory = RunDirectory(path, recipe_file.data, explicit=run_dir is not None, resuming=resuming)
        self.directory.refuse_if_taken(recipe_file.path)
        self.rank, self.world_size = int(idist.get_rank()), int(idist.get_world_size())
        self.shared_path = path
        if self.world_size > 1:
            self._join_ranks()
        self.builder = Builder(recipe_file, self.device, self.world_size)
        self.recorder = Recorder(build_writers(recipe_file, registry, rank=self.rank), run=self)
        self.checkpoints = Checkpoints(self)
        self.recorder.subscribe(self.checkpoints.consider_best)
        self.stop = GracefulStop(self.path, rank=self.rank, world_size=self.world_size, device=self.device)
        self.trained: Trained | None = None
        self.trainer: Engine | None = None
        self.metrics: list[Any] = []
        self.resume_rewrites_recipe = False

    def _join_ranks(self) -> None:
        """Several processes: one run directory (rank 0's name for it), written by rank 0 only;
        every other rank writes what a run writes to a private scratch folder removed when it ends."""
        from dltoolkit import _distributed

        check_batch_split(self.recipe_file, self.world_size)
        if self.device.type == "cuda":
            self.device = idist.device()  # cuda:<local rank>
        self.directory.path = Path(_distributed.broadcast_text(str(self.path) if self.rank == 0 else None))
        self.shared_path = self.path
        if self.rank > 0:
            scratch = Path(tempfile.mkdtemp(prefix=f"dltk-rank{self.rank}-"))
            self.directory.path, self.directory.scratch = scratch / self.shared_path.name, True
            _distributed.PATH_ALIASES[str(self.path)] = str(self.shared_path)

    # -- the run directory ----------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self.directory.path

    @property
    def created(self) -> bool:
        return self.directory.created

    @property
    def owns_dir(self) -> bool:
        """Whether this run made its directory (it holds the lock of a folder it created or found empty)."""
        return self.directory.owns

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINTS

    def ensure_dir(self) -> Path:
        """Create the run directory and write ``recipe.toml`` (once)."""
        return self.directory.ensure()

    def write_recipe(self) -> None:
        self.directory.write_recipe(self.recipe_file.data)

    def log(self, record: Mapping[str, Any]) -> None:
        """Append one JSON object to ``metrics.jsonl`` as it is (what the ``jsonl`` writer does);
        report through :attr:`recorder` to reach every writer."""
        from dltoolkit._rundir import json_line

        self.directory.append_metrics(json_line(record))

    # -- what the builder built -----------------------------------------------------------

    def table(self, kind: str) -> ComponentTable:
        return self.builder.table(kind)

    def build(self, kind: str, **context: Any) -> Any:
        return self.builder.build(kind, **context)

    def build_dataset(self, split: str | None = None) -> Any:
        """The ``[dataset]`` table's dataset; without ``split`` the training data (``train_dataset``,
        described by ``data``), checked against what the recipe and model need."""
        return self.builder.build_dataset(split)

    def build_model(self, data: DataSpec | None = None) -> Any:
        """The ``[model]`` table's model for ``data`` (default: the training data's description);
        see :meth:`dltoolkit._builder.Builder.build_model`."""
        return self.builder.build_model(data)

    def build_callbacks(self) -> list[Any]:
        return self.builder.build_callbacks()

    def build_metrics(self) -> list[tuple[ComponentTable, Any]]:
        return self.builder.build_metrics(self)

    def reference(self, split: str) -> tuple[Any, dict[str, Any]]:
        """The dataset for ``split`` and a description of it (for protocols and cache keys), built once."""
        return self.builder.reference(split)

    @property
    def data(self) -> DataSpec | None:
        return self.builder.data

    @property
    def train_dataset(self) -> Any:
        return self.builder.train_dataset

    @property
    def sampler(self) -> Any:
        """The sampler of the model being trained (``trained.sampler``), or None."""
        return self.trained.sampler if self.trained is not None else None

    @property
    def seed(self) -> int:
        return self.recipe_file.seed

    @property
    def cache_dir(self) -> Path:
        """Where reusable work (reference statistics) is cached: ``$DLTK_CACHE_DIR`` or ``~/.cache/dltoolkit``."""
        return cache_dir()

    @property
    def metadata(self) -> _checkpoint.Metadata:
        return self.checkpoints.metadata

    # -- reporting ------------------------------------------------------------------------

    def report(self, engine: Engine, scores: Mapping[str, float], *, kind: str, **extra: Any) -> None:
        """Record scores of ``kind`` (``step``, ``epoch``, ``eval``) through the recorder: into
        ``engine.state.metrics`` and every writer; a fresh ``checkpoint.best_by`` score may make a
        new best checkpoint."""
        self.recorder.report(engine, scores, kind=kind, **extra)

    def add_images(self, tag: str, grid: torch.Tensor, step: int, path: Path | None = None) -> None:
        """Report an image (``path``: the file under ``samples/`` it was written to, if any)."""
        self.recorder.image(tag, grid, step, path)

    @property
    def tb(self) -> Any:
        """The ``tensorboard`` writer's Ignite ``TensorboardLogger`` (older plugins' way in)."""
        for name, writer in self.recorder.writers:
            if name == "tensorboard" and hasattr(writer, "logger"):
                writer.run = self
                return writer.logger
        raise DltkError(f"{self.recipe_file.path}: run.writers: this run writes no TensorBoard events")

    def add_finalizer(self, function: Any) -> None:
        """Call ``function(engine)`` if the engine run fails, before the error propagates (for
        artefacts worth writing even then: the GIF, the plot). Use this rather than an Ignite
        ``EXCEPTION_RAISED`` handler, which would swallow the exception (and the exit code)."""
        self.stop.add_finalizer(function)

    def engine_created(self, engine: Engine, role: str) -> None:
        """Announce an engine: attach the recipe file's callbacks (trainer, rank 0) and call the hook."""
        if role == "trainer":
            self.trainer = engine
            callbacks = self.build_callbacks()
            for callback in callbacks if self.rank == 0 else []:  # callbacks write artefacts: rank 0's job
                callback.attach(engine, self)
        call_run_hook(self.hook, "dltk_engine_created", run=self, engine=engine, role=role)

    # -- the life cycle -------------------------------------------------------------------

    def fit(self, trainer: Engine, data: Any, *, epochs: int, state: Mapping[str, Any], trained: Trained,
            log_every: int = 50, on_resume: Any = None, failure_hint: str = "") -> None:  # fmt: skip
        """Train: everything a run does around the recipe's own step, in the one right order.

        ``trainer``'s step returns the scalars the recipe declares in its component's ``reports``
        (``{name: 0-d tensor}``). ``state`` maps names to what a checkpoint holds (models,
        optimisers, schedulers); the names of ``trained.modules`` must be among them. The parts:
        the checkpoint metadata; the scalar watch (means every ``log_every`` iterations and per
        epoch, a non-finite one stops the run, exit 1, with ``failure_hint``); evaluation of the
        ``[[metrics]]``; the ``[[callbacks]]`` and ``dltk_engine_created``; checkpoints; on
        ``--resume`` the newest checkpoint, then ``on_resume()``; the writers told where training
        starts; ``epochs`` epochs of ``data`` under the graceful stop (SIGINT/SIGTERM).

        Handlers the recipe attaches to ``trainer`` before calling ``fit`` run before all of these
        on the same event (Ignite calls handlers in the order they were added): attach there what
        a checkpoint should include, such as artefacts written at each epoch's end.
        """
        missing = [name for name in trained.modules if name not in state]
        if missing:
            raise TypeError(f"run.fit(): trained.modules {missing} must also be in state (what checkpoints hold)")
        self.trained = trained
        self.checkpoints.write_metadata(trained)
        means = self.scalar_watch(log_every, failure_hint).attach(
            trainer, checkpoint_unit=self.recipe_file.checkpoint.unit,
            checkpoint_every=self.recipe_file.checkpoint.every, world_size=self.world_size)  # fmt: skip
        self.metrics = [metric for _table, metric in self.build_metrics()]
        Evaluation(self, self.metrics, self.report, rank=self.rank, world_size=self.world_size).attach(trainer)
        self.engine_created(trainer, "trainer")
        to_save = self.checkpoints.attach(trainer, {**state, "stats": means})
        keep_finished_epoch(trainer)
        if self.checkpoints.resume(to_save, max_epochs=epochs) is not None and on_resume is not None:
            on_resume()
        if self.recipe_file.compile:
            compile_modules(list(networks(state).values()), self.device)
        self.recorder.start(resume_from=trainer.state.iteration)
        self.checkpoints.start_clock(state, trained)
        self.stop.path = self.path  # as created (a name taken in the same second gets a suffix)
        try:
            self.stop.run(trainer, data, epochs)
        finally:
            self.checkpoints.write_summary(trainer, finished=True)

    def scalar_watch(self, log_every: int, failure_hint: str = "") -> ScalarWatch:
        """The watch of the recipe's declared step scalars, reporting through :meth:`report`."""
        names = [s.name for s in self.recipe_file.recipe.component.reports]
        failure = _non_finite(self, failure_hint)
        return ScalarWatch(names, self.device, self.report, failure, log_every=log_every,
                           every_step=self.check_every_step)  # fmt: skip

    def close(self, exit_code: int | None = None) -> None:
        """End the writers (with ``exit_code``), release the run directory, give torch back its threads."""
        if exit_code is not None:
            self.recorder.end(exit_code)
        self.directory.close()
        if torch.get_num_threads() != self._threads_before:
            torch.set_num_threads(self._threads_before)


def _non_finite(run: Run, failure_hint: str) -> Any:
    """What a non-finite step scalar stops the run with (exit 1): where, which, and how to go on."""

    def failure(engine: Engine, iteration: int, values: Mapping[str, float]) -> RunFailed:
        bad = [f"{n} = {v:g}" for n, v in values.items() if not math.isfinite(v)]
        advice = (
            f"Resume from the last good checkpoint with: {dltk_command()} run --resume {run.shared_path}"
            if _checkpoint.checkpoints_in(run.shared_path / CHECKPOINTS)
            else restart_advice(run)
        )
        hint = f" ({failure_hint})" if failure_hint else ""
        epoch = (iteration - 1) // max(engine.state.epoch_length or 1, 1) + 1
        return RunFailed(
            f"{run.shared_path}: non-finite loss at iteration {iteration} (epoch {epoch}): {', '.join(bad)}; "
            f"no checkpoint was written with it. {advice}{hint}"
        )

    return failure


def restart_advice(run: Run) -> str:
    """What to do after a failure before the first checkpoint: ``--resume`` starts the run again."""
    path = getattr(run, "shared_path", run.path)
    return (
        f"No checkpoint was written yet: {dltk_command()} run --resume {path} starts it again from the beginning "
        "in this directory (KEY=VALUE after it changes the options declared resumable)"
    )


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
            run.close(exit_code)
            shutil.rmtree(run.path, ignore_errors=True)
        raise
    except KeyboardInterrupt:
        exit_code = ExitCode.INTERRUPTED
        raise
    finally:
        run.close(exit_code)
        try:
            run.hook.dltk_run_finished(run=run, exit_code=exit_code)
        except Exception as exc:  # a plugin's cleanup must not mask the run's outcome
            print(f"dltk: dltk_run_finished raised {type(exc).__name__}: {exc}", file=sys.stderr)
