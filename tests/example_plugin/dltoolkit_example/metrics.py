"""A metric that scores samples: the gap between the mean generated pixel and the mean real one."""

from __future__ import annotations

from typing import Any

import attrs

import dltoolkit


@attrs.frozen
class PixelGapConfig:
    every: int = dltoolkit.option(
        1, doc="Evaluate every this many epochs (and after the last).", validator=attrs.validators.ge(1)
    )
    num_samples: int = dltoolkit.option(512, doc="Generated images scored.", validator=attrs.validators.ge(2))
    reference: str = dltoolkit.option(
        "train", doc="Split of the recipe's dataset to compare with.", validator=attrs.validators.in_(("train", "test"))
    )


class PixelGap:
    """One configured ``pixel-gap`` metric: a ``dltoolkit.SampleMetric`` (``name``, ``every`` and
    ``evaluate_together``)."""

    name = "pixel-gap"

    def __init__(self, config: PixelGapConfig):
        self.config = config
        self.every = config.every

    @staticmethod
    def evaluate_together(run: Any, metrics: list[PixelGap]) -> dict[str, dict[str, Any]]:
        import torch

        results = {}
        for metric in metrics:
            n = metric.config.num_samples
            fake = torch.cat(list(run.sampler.batches(n, seed=run.seed))).mean().item()
            dataset, identity = run.reference(metric.config.reference)
            real = torch.stack([dataset[i][0] for i in range(min(n, len(dataset)))]).mean().item()
            protocol = {"num_samples": n, "seed": run.seed, "reference": identity}
            results[metric.name] = {"value": abs(fake - real), **protocol}
        return results


def pixel_gap(config: PixelGapConfig) -> PixelGap:
    """Gap between the mean generated pixel and the mean real pixel (lower is better)."""
    return PixelGap(config)


@dltoolkit.hookimpl
def dltk_register_metrics() -> list[dltoolkit.Component]:
    scalar = dltoolkit.Scalar("pixel-gap", "|mean generated pixel - mean real pixel|, in [-1, 1] units.", "lower")
    return [dltoolkit.Component("pixel-gap", pixel_gap, PixelGapConfig, needs={"recipe": "sample"}, reports=[scalar])]
