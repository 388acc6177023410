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
    Scalar("lr", "The learning rate in effect (warm-up, then the schedule).", better="none", group="learning rate"),
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


OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "cosine")
WINDOWS = ("consecutive", "random")
PRECISIONS = ("fp32", "bf16")


def _betas(_instance: object, _attribute: attrs.Attribute, value: tuple[float, float]) -> None:
    if len(value) != 2 or not all(0.0 <= b < 1.0 for b in value):
        raise ValueError(f"expected two betas, each in [0, 1), got {list(value)}")


def _divides_batch(instance: LanguageModelConfig, _attribute: attrs.Attribute, value: int) -> None:
    if instance.batch_size % value:
        raise ValueError(
            f"{value} does not divide recipe.batch_size = {instance.batch_size} (each step splits its batch "
            "into this many equal micro-batches)"
        )


@attrs.frozen
class LanguageModelConfig:
    epochs: int = _epochs(20, "windows")
    batch_size: int = _batch_size(32, "Windows")
    lr: float = option(
        2e-3, doc="Peak learning rate (after warm-up).", validator=attrs.validators.gt(0), resumable=True
    )
    clip_grad_norm: float = _clip_grad_norm()
    log_every: int = _log_every()
    optimizer: str = option(
        "adam",
        doc="'adam', or 'adamw' (decoupled weight decay, Loshchilov & Hutter 2019).",
        validator=attrs.validators.in_(OPTIMIZERS),
    )
    weight_decay: float = option(
        0.0,
        doc="Weight decay of the matrices only (linear, attention and recurrent weights); never of norms, biases "
        "or embeddings (nor of a head tied to the embedding). Decoupled with 'adamw', L2 with 'adam'.",
        validator=attrs.validators.ge(0.0),
        resumable=True,
    )
    betas: tuple[float, float] = option(
        (0.9, 0.999), doc="Adam's betas (nanoGPT uses 0.9, 0.99 for small data).", validator=_betas, resumable=True
    )
    warmup_steps: int = option(
        0,
        doc="Raise the learning rate linearly from lr / warmup_steps to lr over this many steps first.",
        validator=attrs.validators.ge(0),
        resumable=True,
    )
    schedule: str = option(
        "constant",
        doc="The learning rate after warm-up: 'constant', or 'cosine' (half a cosine from lr down to min_lr at "
        "the last step).",
        validator=attrs.validators.in_(SCHEDULES),
        resumable=True,
    )
    min_lr: float = option(
        0.0, doc="The floor the cosine schedule decays to.", validator=attrs.validators.ge(0.0), resumable=True
    )
    accumulate: int = option(
        1,
        doc="Split each batch into this many micro-batches whose gradients add up before one step: the same "
        "step with less memory (gradient accumulation). Must divide batch_size.",
        validator=[_positive, _divides_batch],
    )
    windows: str = option(
        "consecutive",
        doc="'consecutive': the dataset's windows, shuffled each epoch; 'random': each step draws batch_size "
        "windows of dataset.seq_len characters at random offsets of the training text (as nanoGPT), from the "
        "seed and the step (a resumed run draws the same).",
        validator=attrs.validators.in_(WINDOWS),
    )
    steps_per_epoch: int = option(
        0,
        doc="With windows = 'random': steps per epoch (0: as many as the consecutive windows make).",
        validator=attrs.validators.ge(0),
    )
    precision: str = option(
        "fp32",
        doc="'fp32', or 'bf16': the forward pass under bfloat16 autocast (for GPUs; the loss in float32).",
        validator=attrs.validators.in_(PRECISIONS),
    )


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


def _divides_width(instance: object, _attribute: attrs.Attribute, value: int) -> None:
    width = instance.width
    if width % value:
        raise ValueError(f"{value} heads do not divide model.width = {width} (each head gets width / heads)")


def _layers() -> int:
    return option(4, doc="Transformer blocks.", validator=[attrs.validators.ge(1), attrs.validators.le(96)])


def _width() -> int:
    return option(128, doc="Width of the token vectors (the model dimension).", validator=_positive)


def _heads() -> int:
    return option(4, doc="Attention heads per block; must divide width.", validator=[_positive, _divides_width])


@attrs.frozen
class GptConfig:
    layers: int = _layers()
    heads: int = _heads()
    width: int = _width()
    context: int = option(
        256,
        doc="Most tokens the model attends to (its learned positions); dataset.seq_len may not exceed it. "
        "Generation beyond it keeps the last half of the context and goes on.",
        validator=[attrs.validators.ge(2), attrs.validators.le(100_000)],
    )
    dropout: float = option(
        0.1, doc="Dropout of embeddings, attention and MLP outputs (0: none).", validator=_unit_fraction
    )
    bias: bool = option(
        False, doc="Biases in the linear layers and layer norms (GPT-2 has them; nanoGPT's default not)."
    )


@attrs.frozen
class EncoderConfig:
    layers: int = option(2, doc="Transformer blocks.", validator=[attrs.validators.ge(1), attrs.validators.le(96)])
    heads: int = _heads()
    width: int = option(64, doc="Width of the step vectors (the model dimension).", validator=_positive)
    dropout: float = option(0.1, doc="Dropout of attention and MLP outputs (0: none).", validator=_unit_fraction)
    pooling: str = option(
        "mean",
        doc="How the steps become one vector for the head: 'mean' over steps, or 'last' step.",
        validator=attrs.validators.in_(("mean", "last")),
    )


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
