"""A dltoolkit plugin used only by the benchmarks: synthetic in-memory images and an iteration timer.

Loaded with ``dltk -p bench_plugin`` (the benchmark scripts put this folder on ``sys.path``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import attrs
import torch
from ignite.engine import Events

from dltoolkit import Component, hookimpl, option
from dltoolkit.data import InMemoryImages

TIMES: list[float] = []
CLOCK = time.perf_counter  # common.use_clock() swaps it for time.process_time
SYNC = (
    os.environ.get("DLTK_BENCH_SYNC") == "1"
)  # benchmarks/gpu.py: wait for the device before each time stamp (as its plain loops do)


@attrs.frozen
class SyntheticConfig:
    count: int = option(4096, doc="Number of images.")
    image_size: int = option(64, doc="Square size.")
    channels: int = option(3, doc="Channels.")
    classes: int = option(0, doc="Random labels in [0, classes) (0: no labels).")


def synthetic(config: SyntheticConfig, split: str | None = None) -> InMemoryImages:
    """Random uint8 images held in memory (the same every time)."""
    generator = torch.Generator().manual_seed(0)
    shape = (config.count, config.channels, config.image_size, config.image_size)
    images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, config.classes, (config.count,), generator=generator) if config.classes else None
    return InMemoryImages(images, labels, num_classes=config.classes or None)


@hookimpl
def dltk_register_datasets() -> list[Component]:
    return [Component("bench-images", synthetic, SyntheticConfig)]


@hookimpl
def dltk_engine_created(engine, role) -> None:
    """Record the clock (wall time, or CPU time if chosen) at each trainer iteration end, handlers included."""
    if role == "trainer":
        TIMES.clear()

        def stamp(_engine) -> None:
            if SYNC and torch.cuda.is_available():
                torch.cuda.synchronize()
            TIMES.append(CLOCK())

        engine.add_event_handler(Events.ITERATION_COMPLETED, stamp)
        out = os.environ.get("DLTK_BENCH_TIMES")  # several processes: rank 0 writes its stamps here
        if out:
            import ignite.distributed as idist

            if idist.get_rank() == 0:
                engine.add_event_handler(Events.COMPLETED, lambda _: Path(out).write_text("\n".join(map(str, TIMES))))
