"""Held-out metrics of the sequence recipes, scored by Ignite metrics on the recipes' ``eval_step``:
``seq-accuracy`` on ``(logits, labels)``, ``bpc`` and ``perplexity`` on next-character
``(logits, targets)`` (one row per character), ``forecast-mae`` and ``naive-mae`` on forecasts
in the series' units."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import torch.nn.functional as F
from ignite.metrics import Accuracy, Loss, MeanAbsoluteError, Metric, MetricsLambda

from dltoolkit_sequence.options import HeldOutConfig


class HeldOut(ABC):
    """One configured held-out metric (what :meth:`dltoolkit.Run.fit` and ``dltk eval`` evaluate)."""

    name = ""
    needs = "predictions"

    def __init__(self, config: HeldOutConfig):
        self.config = config
        self.every = config.every
        self.split = config.split
        self.batch_size = config.batch_size

    @abstractmethod
    def ignite_metric(self) -> Metric:
        """The Ignite metric the core attaches to its evaluator engine."""

    @staticmethod
    def _dataset(result: Mapping[str, Any]) -> str:
        reference = result.get("reference") or {}
        return reference.get("dataset", "?") if isinstance(reference, Mapping) else "?"


class SeqAccuracy(HeldOut):
    name = "seq-accuracy"

    def ignite_metric(self) -> Metric:
        return Accuracy()

    @classmethod
    def summary(cls, result: Mapping[str, Any]) -> str:
        return f"{result.get('count')} {cls._dataset(result)}/{result.get('split')} sequences, argmax of the logits"


class BitsPerChar(HeldOut):
    name = "bpc"
    unit = "bits per character"

    def ignite_metric(self) -> Metric:
        return MetricsLambda(lambda nats: nats / math.log(2.0), Loss(F.cross_entropy))

    @classmethod
    def summary(cls, result: Mapping[str, Any]) -> str:
        return (
            f"{result.get('count')} {cls._dataset(result)}/{result.get('split')} windows, every character "
            f"predicted from those before it in its window (state reset per window), {cls.unit}"
        )


class Perplexity(BitsPerChar):
    name = "perplexity"
    unit = "per-character perplexity (2 ** bpc)"

    def ignite_metric(self) -> Metric:
        return MetricsLambda(math.exp, Loss(F.cross_entropy))


def _forecast_pair(key: str) -> Any:
    def transform(output: Mapping[str, Any]) -> tuple[Any, Any]:
        return output[key].flatten(), output["actual"].flatten()  # one example per forecast value

    return transform


class ForecastMae(HeldOut):
    name = "forecast-mae"
    key = "forecast"

    def ignite_metric(self) -> Metric:
        return MeanAbsoluteError(output_transform=_forecast_pair(self.key))

    @classmethod
    def summary(cls, result: Mapping[str, Any]) -> str:
        return (
            f"{result.get('count')} {cls._dataset(result)}/{result.get('split')} windows, mean absolute error "
            f"of every forecast value ({cls.key}), in the series' units"
        )


class NaiveMae(ForecastMae):
    name = "naive-mae"
    key = "naive"
