"""The dltoolkit-sequence plugin: registers the ``sequence-classify``, ``language-model`` and
``forecast`` recipes, the ``lstm``, ``gru``, ``gpt`` and ``transformer`` models, the ``digit-rows``,
``mnist-rows``, ``text-file`` and ``time-series`` datasets and the ``bpc``, ``perplexity``, ``forecast-mae`` and
``naive-mae`` metrics.

Registration is light: this module holds names, options and docs, and names each factory by its
``"module:attr"`` string, imported when a run builds it; so ``dltk list``, ``plugins`` and
``check`` never load torch, Ignite or scikit-learn.
"""

from __future__ import annotations

from dltoolkit import Component, MetricConfig, Scalar, hookimpl
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
    DigitRowsConfig,
    EncoderConfig,
    ForecastConfig,
    GptConfig,
    LanguageModelConfig,
    MnistRowsConfig,
    RnnConfig,
    SequenceClassifyConfig,
    TextFileConfig,
    TimeSeriesConfig,
)

# The extra tag says what the recipe's eval_step gives, so `dltk check` refuses a metric that
# reads something else: (logits, labels) per sequence, or (logits, targets) per character.
# "class-logits": the classifier's eval_step gives (logits, labels), which the core's built-in
# held-out metrics accuracy, top-k, loss and class-accuracy read.
CLASSIFY_PROVIDES = ("evaluate", "predict", "export", CLASSES_TAG, "class-logits")
LANGUAGE_PROVIDES = ("evaluate", "export", NEXT_CHAR_TAG)
FORECAST_PROVIDES = ("evaluate", "predict", "export", FORECAST_TAG)
RECIPE = "dltoolkit_sequence.recipe"
OFFERS = f"{RECIPE}:sequence_offers"


@hookimpl
def dltk_register_recipes() -> list[Component]:
    return [
        Component(
            "sequence-classify",
            f"{RECIPE}:train_classifier",
            SequenceClassifyConfig,
            summary="Train a sequence classifier (LSTM/GRU): cross-entropy, Adam, gradient clipping.",
            requires=("model", "dataset"),
            needs={"model": MODEL_TAG, "dataset": ("sequences", "labels")},
            provides=CLASSIFY_PROVIDES,
            reports=CLASSIFY_REPORTS,
            offers=OFFERS,
        ),
        Component(
            "language-model",
            f"{RECIPE}:train_language_model",
            LanguageModelConfig,
            summary="Train a character language model: next-character prediction over consecutive or random "
            "windows; Adam or AdamW, warm-up and cosine, accumulation, clipping.",
            requires=("model", "dataset"),
            needs={"model": MODEL_TAG, "dataset": "text"},
            provides=LANGUAGE_PROVIDES,
            reports=LANGUAGE_REPORTS,
            offers=OFFERS,
        ),
        Component(
            "forecast",
            f"{RECIPE}:train_forecaster",
            ForecastConfig,
            summary="Train a forecaster (LSTM/GRU): the next `horizon` values from `context` past ones, MSE, Adam, "
            "clipping.",
            requires=("model", "dataset"),
            needs={"model": MODEL_TAG, "dataset": "series"},
            provides=FORECAST_PROVIDES,
            reports=FORECAST_REPORTS,
            offers=OFFERS,
        ),
    ]


@hookimpl
def dltk_register_models() -> list[Component]:
    return [
        Component(
            "lstm",
            "dltoolkit_sequence.models:lstm",
            RnnConfig,
            summary="LSTM (Hochreiter & Schmidhuber 1997) with a classification or next-character head, per the data.",
            provides=MODEL_TAG,
        ),
        Component(
            "gru",
            "dltoolkit_sequence.models:gru",
            RnnConfig,
            summary="GRU (Cho et al. 2014) with a classification or next-character head, per the data.",
            provides=MODEL_TAG,
        ),
        Component(
            "gpt",
            "dltoolkit_sequence.attention:gpt",
            GptConfig,
            summary="GPT (decoder-only Transformer, nanoGPT's layout) character language model; key/value cache "
            "for generation.",
            provides=MODEL_TAG,
            needs={"dataset": "text"},
            check="dltoolkit_sequence.checks:check_gpt",
        ),
        Component(
            "transformer",
            "dltoolkit_sequence.attention:transformer",
            EncoderConfig,
            summary="Transformer encoder (pre-norm, learned positions, mean or last pooling) for labelled "
            "sequences and series.",
            provides=MODEL_TAG,
            check="dltoolkit_sequence.checks:check_transformer",
        ),
    ]


@hookimpl
def dltk_register_datasets() -> list[Component]:
    data = "dltoolkit_sequence.data"
    return [
        Component(
            "digit-rows",
            f"{data}:digit_rows",
            DigitRowsConfig,
            summary="scikit-learn's 8x8 digits read row by row: 8 steps of 8 features (the `digits` split, "
            "no download).",
            provides=("sequences", "labels"),
        ),
        Component(
            "mnist-rows",
            f"{data}:mnist_rows",
            MnistRowsConfig,
            summary="MNIST read row by row: 28 steps of 28 features in [0, 1] (torchvision; official 60,000/10,000 "
            "split).",
            provides=("sequences", "labels"),
        ),
        Component(
            "text-file",
            f"{data}:text_file",
            TextFileConfig,
            summary="Your own UTF-8 text as character windows for language models; the last 10% is held out.",
            provides="text",
        ),
        Component(
            "time-series",
            f"{data}:time_series",
            TimeSeriesConfig,
            summary="One column of a CSV time series as (context, horizon) windows; ships a synthetic series; "
            "last 20% held out.",
            provides="series",
        ),
    ]


def _held_out(name: str, summary: str, tag: str, scalar: Scalar) -> Component:
    factory = f"dltoolkit_sequence.metrics:{name.replace('-', '_')}"
    needs = {"recipe": ("evaluate", tag)}
    return Component(name, factory, MetricConfig, summary=summary, needs=needs, reports=[scalar])


@hookimpl
def dltk_register_metrics() -> list[Component]:
    return [
        _held_out(
            "bpc",
            "Held-out bits per character of a language model (cross-entropy / ln 2): lower is better.",
            NEXT_CHAR_TAG,
            BPC,
        ),
        _held_out(
            "perplexity",
            "Held-out per-character perplexity of a language model (exp of the cross-entropy): lower is better.",
            NEXT_CHAR_TAG,
            PERPLEXITY,
        ),
        _held_out(
            "forecast-mae",
            "Held-out mean absolute error of a forecaster, in the series' units: lower is better.",
            FORECAST_TAG,
            FORECAST_MAE,
        ),
        _held_out(
            "naive-mae",
            "Held-out mean absolute error of the naive last-value forecast, the baseline to beat.",
            FORECAST_TAG,
            NAIVE_MAE,
        ),
    ]
