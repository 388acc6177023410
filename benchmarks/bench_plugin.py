"""A dltoolkit plugin used only by the benchmarks: synthetic in-memory images and an iteration timer.

Loaded with ``dltk -p bench_plugin`` (the benchmark scripts put this folder on ``sys.path``).
"""

from __future__ import annotations

import time

import attrs
import torch
from ignite.engine import Events

from dltoolkit import Component, InMemoryImages, hookimpl, option

TIMES: list[float] = []
CLOCK = time.perf_counter  # common.use_clock() swaps it for time.process_time


@attrs.frozen
class SyntheticConfig:
    count: int = option(4096, doc="Number of images.")
    image_size: int = option(64, doc="Square size.")
    channels: int = option(3, doc="Channels.")


def synthetic(config: SyntheticConfig, split: str | None = None) -> InMemoryImages:
    """Random uint8 images held in memory (the same every time)."""
    generator = torch.Generator().manual_seed(0)
    shape = (config.count, config.channels, config.image_size, config.image_size)
    return InMemoryImages(torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator))


@hookimpl
def dltk_register_datasets() -> list[Component]:
    return [Component("bench-images", synthetic, SyntheticConfig)]


@hookimpl
def dltk_engine_created(engine, role) -> None:
    """Record the clock (wall time, or CPU time if chosen) at each trainer iteration end, handlers included."""
    if role == "trainer":
        TIMES.clear()
        engine.add_event_handler(Events.ITERATION_COMPLETED, lambda _: TIMES.append(CLOCK()))
