"""Running means of a recipe's step scalars: kept on the device (no sync per step) and checkpointed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor


class ScalarMeans:
    """Sums of the step scalars over the epoch and over the current logging window.

    One in-place add per iteration; a window's mean is the difference from a mark. Saved in
    every checkpoint (entry ``stats``) so a run resumed mid-epoch reports the same means.
    """

    def __init__(self, names: Sequence[str], device: torch.device):
        self.names = tuple(names)
        self.device = device
        self.reset_epoch()

    def reset_epoch(self) -> None:
        self.epoch_sum = torch.zeros(len(self.names), dtype=torch.float64, device=self.device)
        self.epoch_count = 0
        self.mark_window()

    def mark_window(self) -> None:
        self.mark_sum = self.epoch_sum.clone()
        self.mark_count = self.epoch_count

    def add(self, values: Tensor) -> None:
        self.epoch_sum.add_(values)
        self.epoch_count += 1

    def sync(self) -> None:
        """With several processes: make the sums the mean over ranks (a collective; every rank calls it).

        The sums are equal on every rank after it, so means are over the global batch and a
        checkpoint written after it holds what every rank would have saved.
        """
        import ignite.distributed as idist

        world = idist.get_world_size()
        if world > 1:
            self.epoch_sum = idist.all_reduce(self.epoch_sum.clone()) / world

    def _means(self, total: Tensor, count: int) -> dict[str, float]:
        return dict(zip(self.names, (total / max(count, 1)).tolist(), strict=True))

    def epoch_means(self) -> dict[str, float]:
        return self._means(self.epoch_sum, self.epoch_count)

    def window_means(self) -> dict[str, float]:
        return self._means(self.epoch_sum - self.mark_sum, self.epoch_count - self.mark_count)

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch_sum": self.epoch_sum.cpu(),
            "epoch_count": self.epoch_count,
            "mark_sum": self.mark_sum.cpu(),
            "mark_count": self.mark_count,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.epoch_sum = state["epoch_sum"].to(self.device)
        self.mark_sum = state["mark_sum"].to(self.device)
        self.epoch_count = int(state["epoch_count"])
        self.mark_count = int(state["mark_count"])


def as_vector(output: Any, names: Sequence[str], device: torch.device) -> Tensor:
    """A step's output (``{name: scalar}`` or a 1-D tensor in declared order) as a float64 vector."""
    if isinstance(output, Mapping):
        missing = [n for n in names if n not in output]
        if missing:
            raise TypeError(
                f"the recipe's step returned {sorted(output)} but its component declares {list(names)} "
                f"in reports (missing: {missing})"
            )
        return torch.stack([torch.as_tensor(output[n], device=device).detach().reshape(()) for n in names]).to(
            torch.float64
        )
    if isinstance(output, Tensor) and output.dim() == 1 and len(output) == len(names):
        return output.detach().to(torch.float64)
    raise TypeError(
        f"the recipe's step must return {{name: value}} for its declared reports {list(names)} "
        f"(or a tensor of {len(names)} values in that order), got {type(output).__name__}"
    )


class FiniteWatch:
    """Remembers, on the device, the first iteration whose step scalars were not all finite.

    :meth:`add` queues a few device operations and never waits for the device; :meth:`first_bad`
    reads the result (one synchronisation), at logging points and before checkpoints.
    """

    def __init__(self, size: int, device: torch.device):
        self.first = torch.full((), -1, dtype=torch.int64, device=device)
        self.values = torch.zeros(size, dtype=torch.float64, device=device)

    def add(self, values: Tensor, iteration: int) -> None:
        fresh = ~torch.isfinite(values).all() & (self.first < 0)
        self.first = torch.where(fresh, iteration, self.first)
        self.values = torch.where(fresh, values, self.values)

    def first_bad(self) -> tuple[int, list[float]] | None:
        """``(iteration, scalars)`` of the first non-finite step since the start, or None."""
        iteration = int(self.first.item())
        return None if iteration < 0 else (iteration, self.values.tolist())
