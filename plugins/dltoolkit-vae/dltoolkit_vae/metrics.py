"""The held-out ``negative-elbo`` metric: the mean negative ELBO per image, from the recipe's ``eval_step``.

It scores predictions, not samples: the core runs ``trained.eval_step`` over the held-out split
on an Ignite evaluator engine (seeded, so the one z drawn per image is the same every time), and
the Ignite metric here averages the per-image values ``eval_step`` returns under ``"elbo"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from ignite.exceptions import NotComputableError
from ignite.metrics import Metric
from ignite.metrics.metric import reinit__is_reduced, sync_all_reduce

from dltoolkit import DltkError, MetricConfig


class MeanPerImage(Metric):
    """The mean of per-image values (a 1-D tensor per batch) over every image evaluated."""

    _state_dict_all_req_keys = ("_sum", "_count")

    @reinit__is_reduced
    def reset(self) -> None:
        self._sum = torch.tensor(0.0, dtype=torch.float64, device=self._device)
        self._count = 0

    @reinit__is_reduced
    def update(self, output: torch.Tensor) -> None:
        values = output.detach().reshape(-1)
        self._sum += values.sum().to(self._device, torch.float64)
        self._count += values.numel()

    @sync_all_reduce("_sum", "_count")
    def compute(self) -> float:
        if self._count == 0:
            raise NotComputableError("MeanPerImage needs at least one image before it can be computed")
        return float(self._sum.item()) / self._count


def per_image_elbo(output: Any) -> torch.Tensor:
    """``output["elbo"]`` of an ``eval_step``: the negative ELBO of each image of the batch."""
    if not isinstance(output, Mapping) or "elbo" not in output:
        raise DltkError(
            "metrics: 'negative-elbo' scores VAE runs; this recipe's eval_step gives no per-image 'elbo' "
            f"(it gives {type(output).__name__})"
        )
    return output["elbo"]


def elbo(config: MetricConfig) -> Metric:
    """Negative ELBO per held-out image, one z each: Bernoulli decoder (BCE) + KL, in nats; lower is better."""
    return MeanPerImage(output_transform=per_image_elbo)
