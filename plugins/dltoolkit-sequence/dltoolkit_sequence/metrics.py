"""Held-out metrics of the sequence recipes: each factory returns the Ignite ``Metric`` the core
attaches to its evaluator engine over the recipe's ``eval_step`` (the core owns ``every``,
``split`` and ``batch_size``): ``bpc`` and
``perplexity`` on next-character ``(logits, targets)`` (one row per character), ``forecast-mae``
and ``naive-mae`` on forecasts in the series' units."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch.nn.functional as F
from ignite.metrics import Loss, MeanAbsoluteError, Metric, MetricsLambda

from dltoolkit import MetricConfig


def bpc(config: MetricConfig) -> Metric:
    """Held-out bits per character of a language model (cross-entropy / ln 2): lower is better.

    Every character is predicted from those before it in its window (the state is reset per window).
    """
    return MetricsLambda(lambda nats: nats / math.log(2.0), Loss(F.cross_entropy))


def perplexity(config: MetricConfig) -> Metric:
    """Held-out per-character perplexity of a language model (exp of the cross-entropy): lower is better."""
    return MetricsLambda(math.exp, Loss(F.cross_entropy))


def _forecast_pair(key: str) -> Callable[[Mapping[str, Any]], tuple[Any, Any]]:
    def transform(output: Mapping[str, Any]) -> tuple[Any, Any]:
        return output[key].flatten(), output["actual"].flatten()  # one example per forecast value

    return transform


def forecast_mae(config: MetricConfig) -> Metric:
    """Held-out mean absolute error of a forecaster, in the series' units: lower is better."""
    return MeanAbsoluteError(output_transform=_forecast_pair("forecast"))


def naive_mae(config: MetricConfig) -> Metric:
    """Held-out mean absolute error of the naive last-value forecast, the baseline to beat."""
    return MeanAbsoluteError(output_transform=_forecast_pair("naive"))
