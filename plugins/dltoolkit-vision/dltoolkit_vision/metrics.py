"""Held-out classification metrics: Ignite metrics on the evaluator engine the core runs over the split.

The recipe's ``eval_step`` gives ``(logits, labels)``; each metric object here gives the Ignite
``Metric`` that reads it (``needs = "predictions"``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import ignite.distributed as idist
import torch
import torch.nn.functional as F
from ignite.exceptions import NotComputableError
from ignite.metrics import Accuracy, Loss, Metric, TopKCategoricalAccuracy
from torch import Tensor


class ConfusionCounts(Metric):
    """Counts of (true class, predicted class) pairs: a ``(K, K)`` int64 matrix, rows the true class.

    Sized from the logits on the first batch, so it needs no class count up front.
    """

    def reset(self) -> None:
        self._counts: Tensor | None = None

    def update(self, output: Sequence[Tensor]) -> None:
        logits, labels = output[0].detach(), output[1].detach().long()
        k = int(logits.shape[1])
        if self._counts is None:
            self._counts = torch.zeros(k, k, dtype=torch.int64, device=logits.device)
        pairs = labels * k + logits.argmax(dim=1)
        self._counts += torch.bincount(pairs, minlength=k * k).view(k, k)

    def compute(self) -> Any:
        if self._counts is None:
            raise NotComputableError("ConfusionCounts needs at least one batch")
        counts = idist.all_reduce(self._counts.clone())
        assert isinstance(counts, Tensor)
        return counts.cpu()


def class_accuracies(counts: Tensor) -> list[float | None]:
    """Each class's accuracy (its row's diagonal share); None for a class absent from the split."""
    totals = counts.sum(dim=1)
    return [float(counts[i, i]) / float(t) if t > 0 else None for i, t in enumerate(totals.tolist())]


def mean_class_accuracy(counts: Tensor) -> float:
    """The mean of the accuracies of the classes present (balanced accuracy)."""
    present = [a for a in class_accuracies(counts) if a is not None]
    return sum(present) / len(present) if present else float("nan")


class MeanClassAccuracy(ConfusionCounts):
    """The mean over the classes present of each class's accuracy (balanced accuracy)."""

    def compute(self) -> float:
        return mean_class_accuracy(super().compute())


class HeldOut:
    """One held-out classification metric: ``name``, ``every``, ``split``, ``batch_size`` and the Ignite
    ``Metric`` it attaches to the evaluator engine (``needs = "predictions"``)."""

    needs = "predictions"

    def __init__(self, name: str, config: Any, make: Callable[[], Metric]):
        self.name = name
        self.every = config.every
        self.split = config.split
        self.batch_size = config.batch_size
        self._make = make

    def ignite_metric(self) -> Metric:
        return self._make()


def accuracy(config: Any) -> HeldOut:
    return HeldOut("accuracy", config, Accuracy)


def top_k(config: Any) -> HeldOut:
    return HeldOut("top_k", config, lambda: TopKCategoricalAccuracy(k=config.k))


def loss(config: Any) -> HeldOut:
    return HeldOut("loss", config, lambda: Loss(F.cross_entropy))


def class_accuracy(config: Any) -> HeldOut:
    return HeldOut("class_accuracy", config, MeanClassAccuracy)
