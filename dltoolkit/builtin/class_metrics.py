"""The Ignite metrics of the built-in class-prediction metrics (:mod:`dltoolkit.builtin.metrics`):
each factory returns a fresh Ignite ``Metric`` reading the ``(logits, labels)`` of a recipe's
``eval_step`` on the evaluator engine the core runs over the split (the core owns ``every``,
``split`` and ``batch_size``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ignite.distributed as idist
import torch
import torch.nn.functional as F
from ignite.exceptions import NotComputableError
from ignite.metrics import Accuracy, Loss, Metric, TopKCategoricalAccuracy
from torch import Tensor

from dltoolkit import DataSpec, DltkError, MetricConfig


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


# --- the held-out metric components' factories: each returns a fresh Ignite Metric ------------------


def accuracy(config: MetricConfig) -> Metric:
    """Held-out accuracy: the share of samples whose most likely class is right (Ignite's Accuracy)."""
    return Accuracy()


def top_k(config: Any, *, run: Any = None) -> Metric:
    """Held-out top-k accuracy: the true class is among the k most likely (Ignite's
    TopKCategoricalAccuracy); ``config`` is a :class:`~dltoolkit.builtin.metrics.TopKConfig`.

    Refuses a ``k`` above the class count of the run's data, when the run knows it.
    """
    data = getattr(run, "data", None)
    if isinstance(data, DataSpec) and data.num_classes is not None and config.k > data.num_classes:
        raise DltkError(f"top-k.k: {config.k} is more than the {data.num_classes} classes of the data; lower it")
    return TopKCategoricalAccuracy(k=config.k)


def loss(config: MetricConfig) -> Metric:
    """Held-out cross-entropy of the predicted class probabilities (Ignite's Loss; no label smoothing)."""
    return Loss(F.cross_entropy)


def class_accuracy(config: MetricConfig) -> Metric:
    """Held-out mean per-class accuracy (balanced accuracy); each class's own is logged by the recipe."""
    return MeanClassAccuracy()
