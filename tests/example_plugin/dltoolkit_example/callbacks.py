"""A callback: statistics of generated pixels over training."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import attrs

import dltoolkit

if TYPE_CHECKING:
    from ignite.engine import Engine  # imported for real when a run starts


@attrs.frozen
class PixelStatsConfig:
    every: int = dltoolkit.option(1, doc="Measure every this many epochs.", validator=attrs.validators.ge(1))
    num: int = dltoolkit.option(
        256,
        doc="Generated images per measurement.",
        validator=[attrs.validators.ge(2), attrs.validators.le(10_000)],
    )


class PixelStats:
    """Mean and std of generated pixels: progress line, metrics.jsonl, TensorBoard, JSON."""

    def __init__(self, config: PixelStatsConfig):
        self.config = config

    def attach(self, engine: Engine, run: dltoolkit.Run) -> None:
        import torch
        from ignite.engine import Events

        sampler = run.sampler  # the sampler of the recipe's Trained, set by run.fit before callbacks attach
        if sampler is None:
            raise dltoolkit.DltkError("callbacks: 'pixel-stats' needs a recipe that draws samples")
        out = run.ensure_dir() / "pixel_stats.json"  # creates the run directory on first use

        def measure(engine: Engine) -> None:
            images = torch.cat(list(sampler.batches(self.config.num, seed=run.seed)))
            scores = {"pixel_mean": images.mean().item(), "pixel_std": images.std().item()}
            run.report(engine, scores, kind="eval")
            out.write_text(json.dumps({"epoch": engine.state.epoch, **scores}), encoding="utf-8")

        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.config.every), measure)


def pixel_stats(config: PixelStatsConfig) -> PixelStats:
    """Mean and standard deviation of generated pixels every N epochs."""
    return PixelStats(config)


@dltoolkit.hookimpl
def dltk_register_callbacks() -> list[dltoolkit.Component]:
    return [dltoolkit.Component("pixel-stats", pixel_stats, PixelStatsConfig, needs={"recipe": "sample"})]
