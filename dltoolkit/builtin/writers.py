"""Built-in writers: ``metrics.jsonl`` (always on), TensorBoard, and the progress line.

Each is a :class:`dltoolkit.Writer` registered like any plugin's (``dltk_register_writers``); the
protocol and the ``metrics.jsonl`` schema are in docs/writers.md.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from dltoolkit import Component, hookimpl
from dltoolkit.writers import Image, Record, Writer, finite_number

if TYPE_CHECKING:
    from dltoolkit import Run

MAX_TAGS_PER_VALUE = 100
"""A value that is a mapping (per-class accuracies) goes to TensorBoard only up to this many keys."""


@attrs.frozen
class NoOptions:
    pass


class JsonlWriter(Writer):
    """``metrics.jsonl``: one JSON object per record (``run.log``), flushed as it is written."""

    writes_run_directory = True

    def __init__(self, _config: NoOptions):
        self.run: Run | None = None

    def start(self, run: Run, resume_from: int) -> None:
        self.run = run

    def record(self, record: Record) -> None:
        assert self.run is not None
        self.run.log(record.as_json())


class TensorboardWriter(Writer):
    """TensorBoard events under ``tb/`` (Ignite's ``TensorboardLogger``): scalars as
    ``<kind>/<name>`` (``step/loss``, ``epoch/loss``, ``eval/accuracy``), a mapping value's items
    as ``<name>/<key>`` (``<name>_<split>/<key>`` for a
    record of another split than ``test``), and images by tag."""

    writes_run_directory = True

    def __init__(self, _config: NoOptions):
        self.run: Run | None = None
        self._logger: Any = None

    def start(self, run: Run, resume_from: int) -> None:
        self.run = run

    @property
    def logger(self) -> Any:
        """Ignite's ``TensorboardLogger`` writing to ``tb/`` (created on first use)."""
        if self._logger is None:
            from ignite.handlers import TensorboardLogger

            from dltoolkit.files import TB

            assert self.run is not None
            self._logger = TensorboardLogger(log_dir=str(self.run.ensure_dir() / TB))
        return self._logger

    def record(self, record: Record) -> None:
        writer = self.logger.writer
        split = record.extra.get("split", "test")
        for name, value in record.values.items():
            if finite_number(value):
                writer.add_scalar(f"{record.kind}/{name}", value, record.iteration)
            elif isinstance(value, Mapping) and len(value) <= MAX_TAGS_PER_VALUE:
                tag = name if split == "test" else f"{name}_{split}"
                for key, item in value.items():
                    if finite_number(item):
                        writer.add_scalar(f"{tag}/{key}", item, record.iteration)

    def image(self, image: Image) -> None:
        self.logger.writer.add_image(image.tag, image.image, image.iteration)

    def end(self, exit_code: int) -> None:
        if self._logger is None:
            return
        logger, self._logger = self._logger, None
        try:
            logger.close()
        except OSError as exc:  # its folder went away or filled up: the run's own error says so
            from dltoolkit.writers import printable

            print(printable(f"dltk: TensorBoard events not finished: {exc.filename}: {exc.strerror}"), file=sys.stderr)


class ProgressWriter(Writer):
    """Progress on stderr: Ignite's ``ProgressBar`` on a terminal, otherwise one line per epoch with
    the epoch's means (``train/<name>``) and the held-out scores measured at that epoch
    (``eval/<name>``)."""

    def __init__(self, _config: NoOptions):
        self.latest: dict[str, tuple[int, float]] = {}

    def start(self, run: Run, resume_from: int) -> None:
        from ignite.engine import Engine, Events

        trainer = run.trainer
        if trainer is None:
            return
        if sys.stderr.isatty():
            from ignite.handlers import ProgressBar

            ProgressBar(persist=True).attach(trainer, metric_names="all")
            return
        started = time.perf_counter()

        @trainer.on(Events.EPOCH_COMPLETED)
        def _line(engine: Engine) -> None:
            now = engine.state.iteration
            shown = ", ".join(f"{k}={v:.4g}" for k, (at, v) in self.latest.items() if at == now)
            elapsed = time.perf_counter() - started
            print(
                f"epoch {engine.state.epoch}/{engine.state.max_epochs} "
                f"(iteration {engine.state.iteration}, {elapsed:.1f}s): {shown}",
                file=sys.stderr,
            )

    def record(self, record: Record) -> None:
        if record.kind in ("step", "epoch", "eval"):
            space = "eval" if record.kind == "eval" else "train"
            for name, value in record.values.items():
                if isinstance(value, (int, float)):
                    self.latest[f"{space}/{name}"] = (record.iteration, float(value))


def jsonl(config: NoOptions) -> JsonlWriter:
    """metrics.jsonl: every record as one JSON line (always on)."""
    return JsonlWriter(config)


def tensorboard(config: NoOptions) -> TensorboardWriter:
    """TensorBoard events under tb/: scalars, evaluations and images."""
    return TensorboardWriter(config)


def progress(config: NoOptions) -> ProgressWriter:
    """A progress bar on a terminal, one line per epoch otherwise (stderr)."""
    return ProgressWriter(config)


@hookimpl
def dltk_register_writers() -> list[Component]:
    return [
        Component("jsonl", jsonl, NoOptions),
        Component("tensorboard", tensorboard, NoOptions),
        Component("progress", progress, NoOptions),
    ]
