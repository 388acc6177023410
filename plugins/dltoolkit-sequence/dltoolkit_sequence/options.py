"""The sequence recipes', models', datasets' and metrics' options and declarations: plain data, no torch
(registration stays light)."""

from __future__ import annotations

import attrs

from dltoolkit import Scalar, option

CLASSIFY_REPORTS = (
    Scalar("loss", "Training cross-entropy per sequence, in nats.", "lower", group="loss"),
    Scalar("accuracy", "Share of the training batch whose most likely class is right.", "higher", group="accuracy"),
)
LANGUAGE_REPORTS = (
    Scalar("loss", "Training cross-entropy per character, in nats (divide by ln 2 for bits).", "lower", group="loss"),
)
FORECAST_REPORTS = (Scalar("loss", "Training mean squared error of the normalised forecast.", "lower", group="loss"),)
FORECAST_MAE = Scalar(
    "forecast-mae", "Held-out mean absolute error of the model's forecast, in the series' units.", "lower"
)
NAIVE_MAE = Scalar(
    "naive-mae",
    "Held-out mean absolute error of the naive forecast (the last value repeated), for comparison.",
    "lower",
)
BPC = Scalar("bpc", "Held-out cross-entropy of the next character, in bits per character.", "lower")
PERPLEXITY = Scalar("perplexity", "Held-out perplexity per character (exp of the cross-entropy in nats).", "lower")

# Tags: what a model provides and what each recipe's eval_step gives (metrics need them).
MODEL_TAG = "sequence-model"
CLASSES_TAG = "sequence-classes"
NEXT_CHAR_TAG = "next-char"
FORECAST_TAG = "forecast-values"
SYNTHETIC_SERIES = "synthetic_load.csv"

_positive = attrs.validators.ge(1)
_unit_fraction = [attrs.validators.ge(0.0), attrs.validators.lt(1.0)]


# Options the three recipes share (each with its own default).
def _epochs(default: int, over: str) -> int:
    return option(default, doc=f"Passes over the training {over}.", validator=_positive, resumable=True)


def _batch_size(default: int, unit: str) -> int:
    return option(default, doc=f"{unit} per step (the last partial batch is dropped).", validator=_positive)


def _adam_lr(default: float) -> float:
    return option(default, doc="Adam learning rate.", validator=attrs.validators.gt(0), resumable=True)


def _clip_grad_norm() -> float:
    return option(
        1.0,
        doc="Clip the gradients' global L2 norm to this before each step (0: no clipping).",
        validator=attrs.validators.ge(0.0),
    )


def _log_every() -> int:
    return option(
        20, doc="Log mean scalars to metrics.jsonl every this many iterations.", validator=_positive, resumable=True
    )


# --- recipes --------------------------------------------------------------------------------


@attrs.frozen
class SequenceClassifyConfig:
    epochs: int = _epochs(30, "data")
    batch_size: int = _batch_size(32, "Sequences")
    lr: float = _adam_lr(3e-3)
    weight_decay: float = option(0.0, doc="Adam L2 weight decay.", validator=attrs.validators.ge(0.0))
    clip_grad_norm: float = _clip_grad_norm()
    log_every: int = _log_every()


@attrs.frozen
class LanguageModelConfig:
    epochs: int = _epochs(20, "windows")
    batch_size: int = _batch_size(32, "Windows")
    lr: float = _adam_lr(2e-3)
    clip_grad_norm: float = _clip_grad_norm()
    log_every: int = _log_every()


@attrs.frozen
class ForecastConfig:
    epochs: int = _epochs(20, "windows")
    batch_size: int = _batch_size(64, "Windows")
    lr: float = _adam_lr(2e-3)
    clip_grad_norm: float = _clip_grad_norm()
    log_every: int = _log_every()


# --- models ---------------------------------------------------------------------------------


@attrs.frozen
class RnnConfig:
    hidden_size: int = option(128, doc="Units of each recurrent layer (per direction).", validator=_positive)
    num_layers: int = option(
        1, doc="Stacked recurrent layers.", validator=[attrs.validators.ge(1), attrs.validators.le(8)]
    )
    dropout: float = option(
        0.0, doc="Dropout between stacked layers and before the head (0: none).", validator=_unit_fraction
    )
    bidirectional: bool = option(
        False, doc="Also read each sequence backwards (classification only: a language model may not see ahead)."
    )
    embedding_dim: int = option(64, doc="Size of the character embedding (text data only).", validator=_positive)


# --- datasets -------------------------------------------------------------------------------


@attrs.frozen
class DigitRowsConfig:
    pass


@attrs.frozen
class MnistRowsConfig:
    root: str = option("data", doc="Folder holding MNIST (torchvision's layout: root/MNIST/raw/...).")
    download: bool = option(False, doc="Download MNIST into `root` when its files are missing.")


@attrs.frozen
class TextFileConfig:
    path: str = option(
        doc="A UTF-8 text file (required; the shipped recipe leaves it empty for you to set). "
        "Its characters are the vocabulary."
    )
    seq_len: int = option(
        100,
        doc="Characters per training window (truncated back-propagation through time).",
        validator=[attrs.validators.ge(1), attrs.validators.le(100_000)],
    )
    test_fraction: float = option(
        0.1,
        doc="The last this share of the file (by position) is the held-out test split.",
        validator=[attrs.validators.gt(0.0), attrs.validators.lt(1.0)],
    )


@attrs.frozen
class TimeSeriesConfig:
    path: str = option(
        "",
        doc="A CSV file with a header row. Default: the plugin's shipped synthetic hourly series "
        "(daily and weekly cycles, a trend and noise; not real data).",
    )
    column: str = option("", doc="The CSV column to forecast. Default: the last column.")
    context: int = option(
        48,
        doc="Past values the model reads per forecast.",
        validator=[attrs.validators.ge(1), attrs.validators.le(10_000)],
    )
    horizon: int = option(
        12, doc="Future values predicted per forecast.", validator=[attrs.validators.ge(1), attrs.validators.le(10_000)]
    )
    test_fraction: float = option(
        0.2,
        doc="The last this share of the series (by time) is forecast for the test split; mean and scale "
        "are fitted on the rest only.",
        validator=[attrs.validators.gt(0.0), attrs.validators.lt(1.0)],
    )
