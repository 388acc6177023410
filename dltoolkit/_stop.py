"""The graceful stop: SIGINT/SIGTERM end training after the current iteration (every process after
the same one), the stop keeps finished work, and a failing run still writes what is worth writing."""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ignite.distributed as idist
from ignite.engine import Engine, Events

from dltoolkit._errors import ExitCode, Interrupted, RunFailed
from dltoolkit._paths import dltk_command


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


DUPLICATE_WINDOW = 0.25
"""Seconds within which a second signal of the same kind is the first one delivered twice, not a
second Ctrl-C: without a terminal, ``uv run`` forwards a SIGINT to dltk that dltk's process group
also received, and the two arrive together."""


class GracefulStop:
    """Runs an engine so that it stops cleanly.

    The first SIGINT or SIGTERM stops the engine at the end of the current iteration (with several
    processes, at an iteration all of them agree on); the handlers of ``Events.TERMINATE`` and
    ``Events.COMPLETED`` then write the last checkpoint, the GIF and the plots, and
    :class:`Interrupted` (exit 130 or 143) is raised. A second signal exits at once (checkpoints
    are written atomically, so nothing is left half-written), except the same signal again within
    :data:`DUPLICATE_WINDOW`: one signal delivered twice. If the engine fails, the
    ``finalizers`` run before the error propagates; a full disk becomes one line saying how to resume.
    """

    def __init__(self, path: Path, *, rank: int = 0, world_size: int = 1, device: Any = None):
        self.path = path  # the run directory named in the messages
        self.rank = rank
        self.world_size = world_size
        self.device = device
        self.finalizers: list[Callable[[Engine], None]] = []
        self.received: list[int] = []
        self._first_at = 0.0

    def add_finalizer(self, function: Callable[[Engine], None]) -> None:
        self.finalizers.append(function)

    def _on_signal(self, engine: Engine, max_epochs: int) -> Callable[[int, Any], None]:
        def on_signal(signum: int, _frame: Any) -> None:
            code = ExitCode.INTERRUPTED if signum == signal.SIGINT else ExitCode.TERMINATED
            now = time.monotonic()
            if self.received and self.received[-1] == signum and now - self._first_at < DUPLICATE_WINDOW:
                return  # one signal delivered twice (uv run forwards it to the process group it is in)
            if self.received:
                if self.rank == 0:
                    print("dltk: stopping now", file=sys.stderr, flush=True)
                os._exit(int(code))
            self.received.append(signum)
            self._first_at = now
            if self.rank == 0:
                state = engine.state
                done = bool(state.epoch_length) and state.iteration >= max_epochs * state.epoch_length
                what = "training is complete; finishing its last files" if done else "stopping after this iteration"
                print(
                    f"dltk: {signal.Signals(signum).name} received: {what} (again to stop at once)",
                    file=sys.stderr,
                    flush=True,
                )
            if self.world_size == 1:
                engine.terminate()

        return on_signal

    def _attach_agreement(self, engine: Engine) -> None:
        """Several processes: every rank must stop after the same iteration."""
        from dltoolkit import _distributed

        interval = 1 if idist.backend() == "gloo" else 20  # on a GPU, agreeing waits for the device

        def agree(engine: Engine) -> None:
            if engine.state.iteration % interval == 0 or engine.state.iteration % engine.state.epoch_length == 0:
                signum = _distributed.agree_on_stop(self.received[0] if self.received else 0, self.device)
                if signum:
                    if not self.received:
                        self.received.append(signum)
                    engine.terminate()

        engine.add_event_handler(Events.ITERATION_COMPLETED, agree)

    def run(self, engine: Engine, data: Any, max_epochs: int) -> None:
        """``engine.run(data, max_epochs)``, stopping cleanly on SIGINT or SIGTERM."""
        if self.world_size > 1:
            self._attach_agreement(engine)
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {}
        if threading.current_thread() is threading.main_thread():
            on_signal = self._on_signal(engine, max_epochs)
            previous = {s: signal.signal(s, on_signal) for s in handled}
        try:
            engine.run(data, max_epochs=max_epochs)
        except BaseException as error:
            for finalize in self.finalizers:
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
        if self.received and not finished:  # a signal during the last handlers of a complete run changes nothing
            code = ExitCode.INTERRUPTED if self.received[0] == signal.SIGINT else ExitCode.TERMINATED
            raise Interrupted(
                f"{self.path}: stopped by {signal.Signals(self.received[0]).name} at iteration "
                f"{engine.state.iteration}; state saved. Continue with: {dltk_command()} run --resume {self.path}",
                code,
            )
