"""The two metric contracts: held-out metrics (an Ignite ``Metric`` on the core's evaluator engine)
and sample metrics (an object that scores drawn samples, :class:`SampleMetric`).

A held-out metric component's factory returns a plain Ignite ``Metric``; its ``Config`` is
:class:`MetricConfig` or a subclass, whose ``every``, ``split`` and ``batch_size`` the core reads.
:func:`as_run_metric` turns what a metric factory returned into what the evaluation code consumes:
a :class:`HeldOutMetric` (the core's own holder of the factory and those options) or the
:class:`SampleMetric` itself. Nothing here imports torch or Ignite: an object can only be an Ignite
``Metric`` once ``ignite.metrics`` has been imported.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from dltoolkit._options import option

if TYPE_CHECKING:
    from ignite.metrics import Metric

SPLITS = ("train", "test")


def _positive(_instance: Any, attribute: attrs.Attribute, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"must be an integer >= 1, got {value!r}")


@attrs.frozen(kw_only=True)
class MetricConfig:
    """The options the core owns for every held-out metric: when, on which split, in what batches.

    Use it as the ``config`` of a metric component whose factory returns an Ignite ``Metric``, or
    subclass it to add the metric's own options (``class TopKConfig(MetricConfig): k: int =
    option(5, doc=...)``). Its fields are keyword-only, so a subclass may add required options.
    """

    every: int = option(
        1, doc="Evaluate every this many epochs (and after the last).", validator=_positive, resumable=True
    )
    split: str = option(
        "test",
        doc="Split of the recipe's dataset to score: 'test' (held out) or 'train'.",
        validator=attrs.validators.in_(SPLITS),
    )
    batch_size: int = option(256, doc="Examples per evaluation batch.", validator=_positive)


@runtime_checkable
class SampleMetric(Protocol):
    """What a sample metric's factory returns (FID, IS, KID, ...): it scores images drawn from
    ``run.sampler`` against ``run.reference(split)``.

    ``evaluate_together(run, metrics)`` is a static method: the metrics of one class due at the
    same epoch share one call (one pass of generated images through a feature extractor), and it
    returns ``{name: {"value": float, ...protocol}}``. It may also define a static
    ``summary(result) -> str`` giving the protocol of one result in a line, as ``dltk eval``
    prints it (a Protocol cannot declare an optional member; without it ``dltk eval`` prints the
    plain values of the result).
    """

    name: str
    every: int

    @staticmethod
    def evaluate_together(run: Any, metrics: list[Any]) -> Mapping[str, Mapping[str, Any]]: ...


class HeldOutMetric:
    """A held-out metric as the evaluation code consumes it (built by the core, never by a plugin):
    the component's name, its config's ``every``, ``split`` and ``batch_size``, and a fresh Ignite
    ``Metric`` from the factory for each evaluation (:meth:`ignite_metric`), attached by the core
    to an evaluator engine running ``run.trained.eval_step`` over the split.
    """

    def __init__(self, name: str, config: Any, make: Callable[[], Metric], first: Metric, doc: str = ""):
        self.name = name
        self.config = config
        self.every = int(config.every)
        self.split = str(config.split)
        self.batch_size = int(config.batch_size)
        self.doc = doc
        self._make = make
        self._first: Metric | None = first

    def ignite_metric(self) -> Metric:
        """A new Ignite ``Metric`` (the one built first, then one from the factory each time)."""
        metric, self._first = self._first, None
        return metric if metric is not None else self._make()

    def summary(self, result: Mapping[str, Any]) -> str:
        """The protocol of one score in a line, as ``dltk eval`` prints it."""
        reference = result.get("reference")
        dataset = reference.get("dataset", "?") if isinstance(reference, Mapping) else "?"
        line = f"{result.get('count')} {dataset}/{result.get('split')} examples"
        return f"{line}; {self.doc}" if self.doc else line


def is_ignite_metric(value: Any) -> bool:
    """Whether ``value`` is an Ignite ``Metric`` (without importing Ignite)."""
    module = sys.modules.get("ignite.metrics")
    return module is not None and isinstance(value, module.Metric)


def as_run_metric(component: Any, config: Any, built: Any, make: Callable[[], Any]) -> Any:
    """What the metric ``component``'s factory returned, as the evaluation code consumes it.

    An Ignite ``Metric`` becomes a :class:`HeldOutMetric` (``make`` builds the next ones); its
    config must have ``every``, ``split`` and ``batch_size`` (a :class:`MetricConfig`). Anything
    else must be a :class:`SampleMetric`. A factory that returns neither is a plugin bug
    (``TypeError`` naming the component).
    """
    where = f"plugin '{component.plugin}': metric '{component.name}'"
    if is_ignite_metric(built):
        missing = [f for f in ("every", "split", "batch_size") if not hasattr(config, f)]
        if missing:
            raise TypeError(
                f"{where}: its factory returns an Ignite Metric, so its config must be a dltoolkit.MetricConfig "
                f"(no {', '.join(missing)} in {type(config).__name__})"
            )
        return HeldOutMetric(component.name, config, make, built, doc=component.summary)
    if not isinstance(built, SampleMetric):
        raise TypeError(
            f"{where}: its factory must return an Ignite Metric or a dltoolkit SampleMetric "
            f"(name, every, evaluate_together), got {type(built).__name__}"
        )
    return built
