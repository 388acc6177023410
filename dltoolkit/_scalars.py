"""The step scalars: running means kept on the device (no sync per step) and checkpointed, and the
watch that reports them and stops a run at the first non-finite one."""

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


class ScalarWatch:
    """The trainer's step scalars: their means reported every ``log_every`` iterations (kind
    ``step``) and per epoch (kind ``epoch``), and a watch that stops the run (exit 1, naming the
    iteration) at the first non-finite one, before any checkpoint could hold it.

    On a CPU every step is checked (reading a flag costs nothing); on an accelerator that would
    wait for the device each step, so the first bad step is kept on the device and read at
    logging points and before checkpoints (``every_step`` decides; None: by device type).
    ``means`` is checkpointed (entry ``stats``), so a run resumed mid-epoch reports the same means.
    """

    def __init__(
        self,
        names: Sequence[str],
        device: torch.device,
        report: Any,
        failure: Any,
        *,
        log_every: int = 50,
        every_step: bool | None = None,
    ):
        self.names = list(names)
        self.device = device
        self.report = report  # report(engine, scores, kind=...)
        self.failure = failure  # failure(engine, iteration, {name: value}) -> the exception to raise
        self.log_every = log_every
        self.every_step = device.type == "cpu" if every_step is None else every_step
        self.means = ScalarMeans(self.names, device)
        self.watch = FiniteWatch(len(self.names), device)

    def check(self, engine: Any) -> None:
        """Before logging or a checkpoint: no bad step since the last check; sums over all ranks."""
        if not self.every_step:
            found = self.watch.first_bad()
            if found is not None:
                raise self.failure(engine, found[0], dict(zip(self.names, found[1], strict=True)))
        self.means.sync()

    def attach(self, trainer: Any, *, checkpoint_unit: str = "epoch", checkpoint_every: int = 1,
               world_size: int = 1) -> ScalarMeans:  # fmt: skip
        """Attach to ``trainer``; return the means (what a checkpoint saves as ``stats``)."""
        from ignite.engine import Events

        means = self.means

        def reset(engine: Any) -> None:
            if engine.state.iteration % engine.state.epoch_length == 0:  # not a mid-epoch resume
                means.reset_epoch()

        def collect(engine: Any) -> None:
            values = as_vector(engine.state.output, self.names, self.device)
            if self.every_step:
                if not bool(torch.isfinite(values).all()):
                    found = dict(zip(self.names, values.tolist(), strict=True))
                    raise self.failure(engine, engine.state.iteration, found)
            else:
                self.watch.add(values, engine.state.iteration)
            means.add(values)

        def log_window(engine: Any) -> None:
            self.check(engine)
            self.report(engine, means.window_means(), kind="step")
            means.mark_window()

        def log_epoch(engine: Any) -> None:
            self.check(engine)
            self.report(engine, means.epoch_means(), kind="epoch")

        trainer.add_event_handler(Events.EPOCH_STARTED, reset)
        trainer.add_event_handler(Events.ITERATION_COMPLETED, collect)
        trainer.add_event_handler(Events.ITERATION_COMPLETED(every=self.log_every), log_window)
        trainer.add_event_handler(Events.EPOCH_COMPLETED, log_epoch)
        if not self.every_step or world_size > 1:
            if checkpoint_unit == "iteration":
                trainer.add_event_handler(Events.ITERATION_COMPLETED(every=checkpoint_every), self.check)
            trainer.add_event_handler(Events.TERMINATE, self.check)
            trainer.add_event_handler(Events.COMPLETED, self.check)
        return means
