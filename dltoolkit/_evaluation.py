"""Evaluation: the recipe file's ``[[metrics]]`` scored on schedule during training, and the
functions ``dltk eval`` scores a finished run with."""

from __future__ import annotations

import time
from typing import Any

import torch
from ignite.engine import Engine, Events

from dltoolkit._errors import DltkError
from dltoolkit._metrics import HeldOutMetric


class Evaluation:
    """Scores ``metrics`` every ``every`` epochs of each and after the last epoch, and reports them
    (kind ``eval``, each score's protocol beside it) through ``report(engine, scores, kind=,
    protocol=)``. With several processes, metrics that draw samples run on rank 0 alone and
    metrics that score predictions split the held-out data over the ranks."""

    def __init__(self, source: Any, metrics: list[Any], report: Any, *, rank: int = 0, world_size: int = 1):
        self.source = source  # what metrics read: the run (sampler, trained, reference, device, seed)
        self.metrics = metrics
        self.report = report
        self.rank = rank
        self.world_size = world_size

    def due(self, epoch: int, last: int) -> list[Any]:
        due = [m for m in self.metrics if epoch % m.every == 0 or epoch == last]
        if self.world_size > 1 and self.rank > 0:
            due = [m for m in due if isinstance(m, HeldOutMetric)]
        return due

    def __call__(self, engine: Engine) -> None:
        due = self.due(engine.state.epoch, engine.state.max_epochs)
        results = evaluate_metrics(self.source, due)
        if self.world_size > 1:
            for metric in due:
                if metric.name in results:
                    on_rank_0 = not isinstance(metric, HeldOutMetric)
                    results[metric.name]["processes"] = (
                        f"rank 0 of {self.world_size}" if on_rank_0 else f"split over {self.world_size}, gathered"
                    )
        if results:
            scores = {name: float(r["value"]) for name, r in results.items()}
            protocol = {name: {k: v for k, v in r.items() if k != "value"} for name, r in results.items()}
            self.report(engine, scores, kind="eval", protocol=protocol)

    def attach(self, trainer: Engine) -> None:
        if self.metrics:
            trainer.add_event_handler(Events.EPOCH_COMPLETED, self)


def evaluate_metrics(source: Any, metrics: list[Any]) -> dict[str, dict[str, Any]]:
    """Evaluate metric objects; return ``{name: {"value": float, ...protocol}}``.

    A sample metric (:class:`~dltoolkit.SampleMetric`) is evaluated with the others of its class
    in one call of ``evaluate_together(source, metrics)``. A held-out metric
    (:class:`~dltoolkit._metrics.HeldOutMetric`) gives a fresh Ignite ``Metric`` from
    ``ignite_metric()``; those of one split are attached to one evaluator engine that runs
    ``source.trained.eval_step`` over ``source.reference(split)``.

    ``source`` is a :class:`~dltoolkit.Run` or anything with what metrics read from one (``dltk eval``).
    """
    groups: dict[Any, list[Any]] = {}
    by_split: dict[str, list[Any]] = {}
    for metric in metrics:
        if isinstance(metric, HeldOutMetric):
            by_split.setdefault(metric.split, []).append(metric)
        else:
            groups.setdefault(type(metric).evaluate_together, []).append(metric)
    results: dict[str, dict[str, Any]] = {}
    for evaluate_together, members in groups.items():
        results.update(evaluate_together(source, members))
    for split, members in by_split.items():
        results.update(run_evaluator(source, members, split))
    return results


def run_evaluator(source: Any, metrics: list[Any], split: str) -> dict[str, dict[str, Any]]:
    """Run Ignite metrics over the held-out ``split`` on an evaluator engine (role ``evaluator``)."""
    from dltoolkit._data import make_loader

    trained = getattr(source, "trained", None)
    names = ", ".join(m.name for m in metrics)
    if trained is None:
        raise DltkError(f"metrics: {names} score a trained model's predictions; give a run, checkpoint or export")
    if trained.eval_step is None:
        raise DltkError(f"metrics: {names} score predictions, and this recipe offers no eval_step")
    dataset, identity = source.reference(split)
    batch_size = max(m.batch_size for m in metrics)
    loader = make_loader(dataset, batch_size, seed=0, shuffle=False, drop_last=False, split_batch=False)
    modules = [m for m in trained.modules.values() if isinstance(m, torch.nn.Module)]
    modes = [m.training for m in modules]

    def step(_engine: Engine, batch: Any) -> Any:
        with torch.no_grad():
            return trained.eval_step(batch)

    evaluator = Engine(step)
    for metric in metrics:
        metric.ignite_metric().attach(evaluator, metric.name)
    if hasattr(source, "engine_created"):
        source.engine_created(evaluator, "evaluator")
    devices = [source.device] if torch.device(source.device).type == "cuda" else []
    started = time.perf_counter()
    try:
        for module in modules:
            module.eval()
        with torch.random.fork_rng(devices=devices):  # evaluation never moves the training RNG
            torch.manual_seed(int(getattr(source, "seed", 0)))
            state = evaluator.run(loader)
    finally:
        for module, mode in zip(modules, modes, strict=True):
            module.train(mode)
    seconds = round(time.perf_counter() - started, 3)
    results = {}
    for metric in metrics:
        value = state.metrics[metric.name]
        value = float(value.item() if isinstance(value, torch.Tensor) else value)
        results[metric.name] = {"value": value, "split": split, "count": len(dataset), "reference": identity}
        results[metric.name]["seconds"] = seconds
    return results
