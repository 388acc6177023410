"""Lifecycle hooks: refuse dcgan runs on a CPU, time every training epoch."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import dltoolkit

if TYPE_CHECKING:
    from ignite.engine import Engine  # imported for real when a run starts


@dltoolkit.hookimpl
def dltk_configure(run: dltoolkit.Run) -> None:
    model = run.recipe_file.model
    if model is not None and model.name == "dcgan" and run.device.type == "cpu":
        raise dltoolkit.DltkError(f"{run.recipe_file.path}: run.device: dcgan on a CPU is too slow; use a GPU")


@dltoolkit.hookimpl
def dltk_engine_created(run: dltoolkit.Run, engine: Engine, role: str) -> None:
    from ignite.engine import Events

    if role != "trainer":
        return
    started: list[float] = []
    engine.add_event_handler(Events.EPOCH_STARTED, lambda _: started.append(time.perf_counter()))
    engine.add_event_handler(
        Events.EPOCH_COMPLETED,
        lambda e: run.report(e, {"epoch_seconds": time.perf_counter() - started[-1]}, kind="epoch"),
    )
