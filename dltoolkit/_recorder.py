"""The recorder: what a run reports (scalars, evaluations, images) goes here once and is fanned out
to its writers (``metrics.jsonl`` always; TensorBoard, the progress line and plugins' trackers as
the recipe file says). The writer protocol is documented in docs/writers.md."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from dltoolkit._errors import DltkError

JSONL = "jsonl"
"""The writer of ``metrics.jsonl``: always on, first, and the only one on ranks > 0."""


@attrs.frozen
class Record:
    """One record: ``kind`` ``"step"`` (means over ``log_every`` iterations), ``"epoch"`` (means
    over the epoch), ``"eval"`` (held-out scores, with their ``protocol``) or a plugin's own kind;
    where the trainer was (``epoch``, ``iteration``); the ``values`` by name; ``extra`` fields
    written beside them in ``metrics.jsonl``."""

    kind: str
    epoch: int
    iteration: int
    values: Mapping[str, Any]
    protocol: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The ``metrics.jsonl`` line of this record."""
        line = {"kind": self.kind, "epoch": self.epoch, "iteration": self.iteration, **self.values, **self.extra}
        if self.protocol is not None:
            line["protocol"] = dict(self.protocol)
        return line


@attrs.frozen
class Image:
    """An image a run reports: ``tag``, a ``(C, H, W)`` uint8 tensor, the trainer's ``iteration``
    and the file under ``samples/`` it was also written to (None if none)."""

    tag: str
    image: Any
    iteration: int
    path: Path | None = None


class Writer:
    """Where a run's records and images go. Subclass and override what you need; every method
    is called on rank 0 only, in this order: :meth:`start` once, then :meth:`record` and
    :meth:`image` as the run reports, then :meth:`end` once (also after an error)."""

    writes_run_directory = False
    """True for writers whose files are the run directory's (``jsonl``, ``tensorboard``): their
    errors (a full disk) stop the run as any write there does. Other writers that raise are
    reported once and dropped."""

    def start(self, run: Any, resume_from: int) -> None:
        """The run is about to train; ``resume_from`` is the iteration it resumes from (0: fresh)."""

    def record(self, record: Record) -> None:
        """One :class:`Record`."""

    def image(self, image: Image) -> None:
        """One :class:`Image`."""

    def end(self, exit_code: int) -> None:
        """The run ended with ``exit_code`` (an :class:`~dltoolkit.ExitCode`)."""


class Recorder:
    """Fans out a run's records and images to its writers.

    ``writers`` are ``(name, writer)`` pairs built from the recipe file (``[run] writers`` and
    ``[[writers]]``) by :func:`build_writers`. ``subscribe(function)`` adds a core listener called
    with each :class:`Record` after the writers (the best checkpoint is one); its errors propagate.
    """

    def __init__(self, writers: list[tuple[str, Writer]], run: Any = None):
        self.writers = list(writers)
        self.run = run
        self.started = False
        self.ended = False
        self._listeners: list[Callable[[Record], None]] = []

    def subscribe(self, listener: Callable[[Record], None]) -> None:
        self._listeners.append(listener)

    def _call(self, name: str, writer: Writer, method: str, *args: Any) -> None:
        function = getattr(writer, method, None)
        if function is None:  # a writer implements what it needs; the rest is no-op
            return
        try:
            function(*args)
        except Exception as exc:
            if getattr(writer, "writes_run_directory", False):
                raise
            text = " ".join(str(exc).split()) or type(exc).__name__
            print(f"dltk: writer '{name}' failed ({type(exc).__name__}: {text}); dropped, training goes on",
                  file=sys.stderr)  # fmt: skip
            self.writers = [(n, w) for n, w in self.writers if w is not writer]

    def _each(self, method: str, *args: Any) -> None:
        if not self.started and method != "start":
            self.start(0)
        for name, writer in list(self.writers):
            self._call(name, writer, method, *args)

    def start(self, resume_from: int) -> None:
        """Tell the writers the run starts (``resume_from``: the iteration resumed from, 0 when fresh)."""
        if self.started:
            return
        self.started = True
        self._each("start", self.run, int(resume_from))

    def record(
        self,
        kind: str,
        values: Mapping[str, Any],
        *,
        epoch: int,
        iteration: int,
        protocol: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> Record:
        """Record ``values`` of ``kind`` at ``epoch``/``iteration``: every writer, then the listeners."""
        record = Record(kind, int(epoch), int(iteration), dict(values), protocol, extra)
        self._each("record", record)
        for listener in self._listeners:
            listener(record)
        return record

    def report(self, engine: Any, scores: Mapping[str, float], *, kind: str, **extra: Any) -> Record:
        """Record ``scores`` at the trainer's position and put them in ``engine.state.metrics``."""
        engine.state.metrics.update(scores)
        state = engine.state
        return self.record(kind, scores, epoch=state.epoch, iteration=state.iteration, **extra)

    def image(self, tag: str, image: Any, iteration: int, path: Path | None = None) -> None:
        """Report an image; ``path``: the file under ``samples/`` it was written to (journaled, so
        that a resume from an earlier iteration undoes it)."""
        if path is not None and self.run is not None:
            self.run.directory.journal(Path(path), iteration)
        self._each("image", Image(tag, image, int(iteration), Path(path) if path is not None else None))

    def end(self, exit_code: int) -> None:
        """Tell the writers the run ended; never raises (the run's outcome is said already)."""
        if self.ended or not self.started:
            self.ended = True
            return
        self.ended = True
        for name, writer in self.writers:
            try:
                if hasattr(writer, "end"):
                    writer.end(int(exit_code))
            except Exception as exc:
                print(f"dltk: writer '{name}' failed at the end ({type(exc).__name__}: {exc})", file=sys.stderr)


def writer_tables(recipe_file: Any) -> list[tuple[str, Any]]:
    """``(name, table or None)`` of the writers a recipe file asks for: ``jsonl`` first, then
    ``[run] writers`` by name (default options), then ``[[writers]]`` tables (which replace a
    writer of the same name given by name)."""
    tables = {t.name: t for t in getattr(recipe_file, "writers", ())}
    names = [JSONL, *(n for n in recipe_file.run.writers if n != JSONL and n not in tables)]
    return [(n, None) for n in names] + [(n, t) for n, t in tables.items() if n != JSONL]


def build_writers(recipe_file: Any, registry: Any, *, rank: int = 0) -> list[tuple[str, Writer]]:
    """The writers of a run (on ranks > 0 only ``jsonl``, into the rank's scratch folder)."""
    built = []
    for name, table in writer_tables(recipe_file):
        if rank > 0 and name != JSONL:
            continue
        try:
            if table is not None:
                writer = table.component.build(table.config)
            else:
                component = registry.get("writer", name)
                writer = component.build(component.config())
        except DltkError as exc:
            raise DltkError(f"{recipe_file.path}: {p}" for p in exc.problems) from None
        except Exception as exc:  # a plugin's writer that cannot start: said once, the run goes on
            text = " ".join(str(exc).split()) or type(exc).__name__
            print(f"dltk: writer '{name}' failed ({type(exc).__name__}: {text}); dropped, training goes on",
                  file=sys.stderr)  # fmt: skip
            continue
        built.append((name, writer))
    return built


def finite_number(value: Any) -> bool:
    """Whether ``value`` is a plain finite number (what TensorBoard and trackers plot)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
