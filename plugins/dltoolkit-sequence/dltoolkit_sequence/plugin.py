"""The dltoolkit-sequence plugin: registers the ``sequence-classify``, ``language-model`` and
``forecast`` recipes, the ``lstm`` and ``gru`` models, the ``digit-rows``, ``mnist-rows``, ``text-file`` and
``time-series`` datasets and the ``seq-accuracy``, ``bpc``, ``perplexity``, ``forecast-mae`` and
``naive-mae`` metrics.

Registration is light: this module holds names, options and declarations; torch, Ignite and
scikit-learn are imported inside the factories, so ``dltk list``, ``plugins`` and ``check`` never
load them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dltoolkit import Component, hookimpl
from dltoolkit_sequence.options import (
    BPC,
    CLASSES_TAG,
    CLASSIFY_REPORTS,
    FORECAST_MAE,
    FORECAST_REPORTS,
    FORECAST_TAG,
    LANGUAGE_REPORTS,
    MODEL_TAG,
    NAIVE_MAE,
    NEXT_CHAR_TAG,
    PERPLEXITY,
    SEQ_ACCURACY,
    DigitRowsConfig,
    ForecastConfig,
    HeldOutConfig,
    LanguageModelConfig,
    MnistRowsConfig,
    RnnConfig,
    SequenceClassifyConfig,
    TextFileConfig,
    TimeSeriesConfig,
)

if TYPE_CHECKING:
    from dltoolkit import DataSpec, Run, Trained

# The extra tag says what the recipe's eval_step gives, so `dltk check` refuses a metric that
# reads something else: (logits, labels) per sequence, or (logits, targets) per character.
CLASSIFY_PROVIDES = ("evaluate", "predict", "export", CLASSES_TAG)
LANGUAGE_PROVIDES = ("evaluate", "export", NEXT_CHAR_TAG)
FORECAST_PROVIDES = ("evaluate", "predict", "export", FORECAST_TAG)


def sequence_classify(config: SequenceClassifyConfig, *, run: Run) -> None:
    """Train a sequence classifier (LSTM/GRU): cross-entropy, Adam, gradient clipping."""
    from dltoolkit_sequence.recipe import train_classifier

    train_classifier(config, run=run)


def language_model(config: LanguageModelConfig, *, run: Run) -> None:
    """Train a character language model: next-character prediction over windows (truncated BPTT), Adam, clipping."""
    from dltoolkit_sequence.recipe import train_language_model

    train_language_model(config, run=run)


def forecast(config: ForecastConfig, *, run: Run) -> None:
    """Train a forecaster (LSTM/GRU): the next `horizon` values from `context` past ones, MSE, Adam, clipping."""
    from dltoolkit_sequence.recipe import train_forecaster

    train_forecaster(config, run=run)


def sequence_offers(model: Any, device: Any) -> Trained:
    """What a trained sequence model offers: the model, an ``eval_step`` and (language models) text generation."""
    from dltoolkit_sequence.recipe import sequence_offers as offers

    return offers(model, device)


def lstm(config: RnnConfig, *, data: DataSpec) -> Any:
    """LSTM (Hochreiter & Schmidhuber 1997) with a classification or next-character head, per the data."""
    from dltoolkit_sequence.models import build

    return build("lstm", config, data)


def gru(config: RnnConfig, *, data: DataSpec) -> Any:
    """GRU (Cho et al. 2014) with a classification or next-character head, per the data."""
    from dltoolkit_sequence.models import build

    return build("gru", config, data)


def digit_rows(config: DigitRowsConfig, split: str | None = None) -> Any:
    """scikit-learn's 8x8 digits read row by row: 8 steps of 8 features (the `digits` split, no download)."""
    from dltoolkit_sequence.data import digit_rows as build

    return build(config, split=split)


def mnist_rows(config: MnistRowsConfig, split: str | None = None) -> Any:
    """MNIST read row by row: 28 steps of 28 features in [0, 1] (torchvision; official 60,000/10,000 split)."""
    from dltoolkit_sequence.data import mnist_rows as build

    return build(config, split=split)


def text_file(config: TextFileConfig, split: str | None = None) -> Any:
    """Your own UTF-8 text as character windows for language models; the last 10% is held out."""
    from dltoolkit_sequence.data import text_file as build

    return build(config, split=split)


def time_series(config: TimeSeriesConfig, split: str | None = None) -> Any:
    """One column of a CSV time series as (context, horizon) windows; ships a synthetic series; last 20% held out."""
    from dltoolkit_sequence.data import time_series as build

    return build(config, split=split)


def forecast_mae(config: HeldOutConfig, *, run: Any = None) -> Any:
    """Held-out mean absolute error of a forecaster, in the series' units: lower is better."""
    from dltoolkit_sequence.metrics import ForecastMae

    return ForecastMae(config)


def naive_mae(config: HeldOutConfig, *, run: Any = None) -> Any:
    """Held-out mean absolute error of the naive last-value forecast, the baseline to beat."""
    from dltoolkit_sequence.metrics import NaiveMae

    return NaiveMae(config)


def seq_accuracy(config: HeldOutConfig, *, run: Any = None) -> Any:
    """Held-out accuracy of a sequence classifier: the share of sequences whose most likely class is right."""
    from dltoolkit_sequence.metrics import SeqAccuracy

    return SeqAccuracy(config)


def bpc(config: HeldOutConfig, *, run: Any = None) -> Any:
    """Held-out bits per character of a language model (cross-entropy / ln 2): lower is better."""
    from dltoolkit_sequence.metrics import BitsPerChar

    return BitsPerChar(config)


def perplexity(config: HeldOutConfig, *, run: Any = None) -> Any:
    """Held-out per-character perplexity of a language model (exp of the cross-entropy): lower is better."""
    from dltoolkit_sequence.metrics import Perplexity

    return Perplexity(config)


@hookimpl
def dltk_register_recipes() -> list[Component]:
    return [
        Component(
            "sequence-classify",
            sequence_classify,
            SequenceClassifyConfig,
            requires=("model", "dataset"),
            needs={"model": MODEL_TAG, "dataset": ("sequences", "labels")},
            provides=CLASSIFY_PROVIDES,
            reports=CLASSIFY_REPORTS,
            offers=sequence_offers,
        ),
        Component(
            "language-model",
            language_model,
            LanguageModelConfig,
            requires=("model", "dataset"),
            needs={"model": MODEL_TAG, "dataset": "text"},
            provides=LANGUAGE_PROVIDES,
            reports=LANGUAGE_REPORTS,
            offers=sequence_offers,
        ),
        Component(
            "forecast",
            forecast,
            ForecastConfig,
            requires=("model", "dataset"),
            needs={"model": MODEL_TAG, "dataset": "series"},
            provides=FORECAST_PROVIDES,
            reports=FORECAST_REPORTS,
            offers=sequence_offers,
        ),
    ]


@hookimpl
def dltk_register_models() -> list[Component]:
    return [
        Component("lstm", lstm, RnnConfig, provides=MODEL_TAG),
        Component("gru", gru, RnnConfig, provides=MODEL_TAG),
    ]


@hookimpl
def dltk_register_datasets() -> list[Component]:
    return [
        Component("digit-rows", digit_rows, DigitRowsConfig, provides=("sequences", "labels")),
        Component("mnist-rows", mnist_rows, MnistRowsConfig, provides=("sequences", "labels")),
        Component("text-file", text_file, TextFileConfig, provides="text"),
        Component("time-series", time_series, TimeSeriesConfig, provides="series"),
    ]


@hookimpl
def dltk_register_metrics() -> list[Component]:
    return [
        Component(
            "seq-accuracy",
            seq_accuracy,
            HeldOutConfig,
            needs={"recipe": ("evaluate", CLASSES_TAG)},
            reports=[SEQ_ACCURACY],
        ),
        Component("bpc", bpc, HeldOutConfig, needs={"recipe": ("evaluate", NEXT_CHAR_TAG)}, reports=[BPC]),
        Component(
            "perplexity", perplexity, HeldOutConfig, needs={"recipe": ("evaluate", NEXT_CHAR_TAG)}, reports=[PERPLEXITY]
        ),
        Component(
            "forecast-mae",
            forecast_mae,
            HeldOutConfig,
            needs={"recipe": ("evaluate", FORECAST_TAG)},
            reports=[FORECAST_MAE],
        ),
        Component(
            "naive-mae", naive_mae, HeldOutConfig, needs={"recipe": ("evaluate", FORECAST_TAG)}, reports=[NAIVE_MAE]
        ),
    ]
