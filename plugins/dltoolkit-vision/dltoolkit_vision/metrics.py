"""The confusion counts of the classify recipe's held-out report (``samples/confusion_*.png`` and
each class's accuracy). The held-out metrics ``accuracy``, ``top-k``, ``loss`` and
``class-accuracy`` are the core's built-in ones, for any recipe that provides ``"class-logits"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ignite.distributed as idist
import torch
from ignite.exceptions import NotComputableError
from ignite.metrics import Metric
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
