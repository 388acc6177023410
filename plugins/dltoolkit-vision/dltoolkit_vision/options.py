"""The options of the vision plugin's components: frozen attrs configs, importable without torch."""

from __future__ import annotations

import re
from typing import Any

import attrs

from dltoolkit import Scalar, option

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step", "constant")
PRECISIONS = ("fp32", "bf16", "fp16")
SPLITS = ("train", "test")
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")

# The scalars the recipe's step returns (declared here, so registration does not import torch).
REPORTS = (
    Scalar(
        "loss",
        "Cross-entropy of the training batches (label-smoothed when recipe.label_smoothing is set).",
        "lower",
        group="loss",
        formerly=("train_loss",),
    ),
    Scalar(
        "accuracy",
        "Share of the (augmented) training images classified right, in training mode.",
        "higher",
        group="accuracy",
        bounds=(0.0, 1.0),
        formerly=("train_accuracy",),
    ),
    Scalar("lr", "The learning rate in effect (warm-up, then the schedule).", better="none", group="learning rate"),
)


def _positive_ints(_instance: Any, attribute: attrs.Attribute, value: tuple[int, ...]) -> None:
    if not all(isinstance(v, int) and v >= 1 for v in value):
        raise ValueError(f"every value must be an integer >= 1, got {list(value)}")


def _increasing(_instance: Any, _attribute: attrs.Attribute, value: tuple[int, ...]) -> None:
    if list(value) != sorted(set(value)):
        raise ValueError(f"must be increasing epochs, got {list(value)}")


def _betas(_instance: Any, _attribute: attrs.Attribute, value: tuple[float, float]) -> None:
    if not all(0.0 <= b < 1.0 for b in value):
        raise ValueError(f"each beta must be in [0, 1), got {list(value)}")


@attrs.frozen
class ClassifyConfig:
    """Options of the ``classify`` recipe (the ``[recipe]`` table)."""

    epochs: int = option(30, doc="Passes over the training data.", validator=attrs.validators.ge(1), resumable=True)
    batch_size: int = option(
        128, doc="Images per step (the last partial batch is dropped).", validator=attrs.validators.ge(1)
    )
    optimizer: str = option(
        "sgd",
        doc="'sgd' (with momentum, Nesterov) or 'adamw'.",
        validator=attrs.validators.in_(OPTIMIZERS),
    )
    lr: float = option(0.1, doc="Peak learning rate (after warm-up).", validator=attrs.validators.gt(0), resumable=True)
    momentum: float = option(
        0.9,
        doc="SGD momentum (Nesterov).",
        validator=[attrs.validators.ge(0.0), attrs.validators.lt(1.0)],
        resumable=True,
    )
    betas: tuple[float, float] = option((0.9, 0.999), doc="AdamW betas.", validator=_betas, resumable=True)
    weight_decay: float = option(
        5e-4, doc="Weight decay (decoupled for AdamW).", validator=attrs.validators.ge(0.0), resumable=True
    )
    schedule: str = option(
        "cosine",
        doc="Learning-rate schedule over the iterations after warm-up: 'cosine' (down to 0 at the last "
        "iteration), 'step' (times `gamma` at each of `milestones`) or 'constant'.",
        validator=attrs.validators.in_(SCHEDULES),
        resumable=True,
    )
    milestones: tuple[int, ...] = option(
        (),
        doc="Epochs after which the 'step' schedule multiplies the learning rate by `gamma`.",
        validator=[_positive_ints, _increasing],
        converter=tuple,
        resumable=True,
    )
    gamma: float = option(0.1, doc="Factor of the 'step' schedule.", validator=attrs.validators.gt(0.0), resumable=True)
    warmup_epochs: int = option(
        0,
        doc="Raise the learning rate linearly from 0 over this many epochs first.",
        validator=attrs.validators.ge(0),
        resumable=True,
    )
    label_smoothing: float = option(
        0.0,
        doc="Label smoothing of the training cross-entropy (0: none; held-out `loss` never smooths).",
        validator=[attrs.validators.ge(0.0), attrs.validators.lt(1.0)],
    )
    crop_padding: int = option(
        0,
        doc="Augment with random crops of the image padded by this many pixels (black) on each side "
        "(0: no crop). 4 is standard for 32x32 CIFAR-10, 2 for 28x28 digits.",
        validator=attrs.validators.ge(0),
    )
    horizontal_flip: bool = option(
        False, doc="Augment with random horizontal flips (natural images and clothes; never digits or text)."
    )
    precision: str = option(
        "fp32",
        doc="'fp32', 'bf16' or 'fp16' (autocast; fp16 adds a GradScaler).",
        validator=attrs.validators.in_(PRECISIONS),
    )
    channels_last: bool = option(False, doc="Use channels-last memory format for the model and images.")
    confusion_matrix: bool = option(
        True,
        doc="At each held-out evaluation, write samples/confusion_<iteration>.png and each class's "
        "accuracy (metrics.jsonl, kind 'classes'; TensorBoard class_accuracy/<class>).",
        resumable=True,
    )
    log_every: int = option(
        50,
        doc="Log mean training loss and accuracy to metrics.jsonl every this many iterations.",
        validator=attrs.validators.ge(1),
        resumable=True,
    )
    num_workers: int = option(
        0, doc="DataLoader worker processes (for image-folder data).", validator=attrs.validators.ge(0), resumable=True
    )


# --- models --------------------------------------------------------------------------------------


@attrs.frozen
class LenetConfig:
    """Options of the ``lenet`` model."""

    channels: tuple[int, int] = option(
        (6, 16), doc="Output channels of the two 5x5 convolutions.", validator=_positive_ints
    )
    hidden: tuple[int, int] = option((120, 84), doc="Widths of the two hidden dense layers.", validator=_positive_ints)
    batch_norm: bool = option(False, doc="Batch normalisation after each convolution.")
    dropout: float = option(
        0.0,
        doc="Dropout before each dense layer after the first.",
        validator=[attrs.validators.ge(0.0), attrs.validators.lt(1.0)],
    )


def _resnet_depth(_instance: Any, _attribute: attrs.Attribute, value: int) -> None:
    if value != 18 and (value < 8 or (value - 2) % 6 != 0):
        raise ValueError(f"must be 6n+2 (8, 14, 20, 32, 44, 56, 110: CIFAR ResNets) or 18 (ResNet-18), got {value}")


@attrs.frozen
class ResnetConfig:
    """Options of the ``resnet`` model."""

    depth: int = option(
        20,
        doc="6n+2 for He et al.'s CIFAR ResNets (20, 32, 44, 56, 110: three stages, parameter-free "
        "shortcuts) or 18 for ResNet-18 (four stages, 3x3 stem for small images).",
        validator=_resnet_depth,
    )
    width: int | None = option(
        None,
        doc="Channels of the first stage, doubled at each later stage (default 16; 64 for depth 18).",
        validator=attrs.validators.optional(attrs.validators.ge(1)),
    )


def _sha256(_instance: Any, _attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None and not SHA256.match(value):
        raise ValueError(f"must be 64 hexadecimal digits, got {value!r}")


def _needs_weights(instance: Any, _attribute: attrs.Attribute, value: bool) -> None:
    if value and instance.weights_path is None:
        raise ValueError("needs model.weights_path: a frozen backbone of random weights learns nothing")


@attrs.frozen
class TorchvisionConfig:
    """Options of the ``torchvision`` model."""

    arch: str = option(
        "resnet18",
        doc="A classification model torchvision ships, by name (resnet18, mobilenet_v3_small, "
        "efficientnet_b0, ...); its head is replaced for the dataset's classes.",
    )
    weights_path: str | None = option(
        None,
        doc="A local .pth state dict to start from (transfer learning; nothing is downloaded). "
        "Default: random initial weights.",
    )
    weights_sha256: str | None = option(
        None,
        doc="sha256 of `weights_path`, checked before training. Needed unless the file is torchvision's own "
        "(whose name carries its hash prefix, as torch.hub checks it).",
        validator=_sha256,
    )
    freeze_backbone: bool = option(
        False,
        doc="Train the new head only: the backbone's weights (and batch-norm statistics) stay as loaded.",
        validator=_needs_weights,
    )
    imagenet_normalize: bool = option(
        True,
        doc="Map images from [-1, 1] to the ImageNet mean and std torchvision's weights expect "
        "(grey images are repeated to 3 channels either way).",
    )


# --- metrics ---------------------------------------------------------------------------------------


@attrs.frozen
class ClassifierFidConfig:
    """Options of ``classifier-fid``."""

    classifier: str = option(
        doc="A run directory of the classify recipe (its best checkpoint, else its newest) or one of its "
        "checkpoint files: the classifier whose penultimate features are compared."
    )
    every: int = option(
        5, doc="Evaluate every this many epochs (and after the last).", validator=attrs.validators.ge(1)
    )
    num_samples: int = option(2000, doc="Generated images scored.", validator=attrs.validators.ge(2))
    reference: str = option(
        "test",
        doc="Split of the recipe's dataset to compare with: 'train' or 'test'.",
        validator=attrs.validators.in_(SPLITS),
    )
    reference_samples: int | None = option(
        None,
        doc="Reference images used (a fixed random subset); default: the whole split.",
        validator=attrs.validators.optional(attrs.validators.ge(2)),
    )
    batch_size: int = option(256, doc="Images per feature-extraction batch.", validator=attrs.validators.ge(1))
    seed: int | None = option(None, doc="Noise seed of the generated samples (default: the recipe's seed).")
