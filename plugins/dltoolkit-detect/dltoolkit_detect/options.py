"""The options of the detection plugin's components: frozen attrs configs, importable without torch."""

from __future__ import annotations

import re
from typing import Any

import attrs

from dltoolkit import MetricConfig, Scalar, option

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step", "constant")
SPLITS = ("train", "test")
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
TORCHVISION_DETECTORS = (
    "fasterrcnn_mobilenet_v3_large_fpn",
    "ssdlite320_mobilenet_v3_large",
    "retinanet_resnet50_fpn",
)

# The scalars the recipe's step returns (declared here, so registration does not import torch).
REPORTS = (
    Scalar("loss", "Sum of the detector's losses on the training batch (what is minimised).", "lower", group="loss"),
    Scalar(
        "classification",
        "The detector's classification losses summed (objectness too, for two-stage detectors; the "
        "centre heatmap's focal loss for centernet).",
        "lower",
        group="loss",
    ),
    Scalar(
        "localization",
        "The detector's box losses summed (box regression; the sizes and offsets for centernet).",
        "lower",
        group="loss",
    ),
    Scalar("lr", "The learning rate in effect (warm-up, then the schedule).", better="none", group="learning rate"),
)
MAP = Scalar(
    "map",
    "COCO mean average precision over IoU 0.50:0.05:0.95 (all areas, 100 detections per image), held out.",
    "higher",
    group="mAP",
    bounds=(0.0, 1.0),
)
MAP50 = Scalar(
    "map50", "COCO mean average precision at IoU 0.50 (100 detections per image), held out.", "higher", group="mAP",
    bounds=(0.0, 1.0),
)  # fmt: skip


def _positive_ints(_instance: Any, _attribute: attrs.Attribute, value: tuple[int, ...]) -> None:
    if not all(isinstance(v, int) and v >= 1 for v in value):
        raise ValueError(f"every value must be an integer >= 1, got {list(value)}")


def _betas(_instance: Any, _attribute: attrs.Attribute, value: tuple[float, float]) -> None:
    if not all(0.0 <= b < 1.0 for b in value):
        raise ValueError(f"each beta must be in [0, 1), got {list(value)}")


def _sha256(_instance: Any, attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None and not SHA256.match(value):
        raise ValueError(f"must be 64 hexadecimal digits (a sha256), got {value!r}")


@attrs.frozen
class DetectConfig:
    """Options of the ``detect`` recipe (the ``[recipe]`` table)."""

    epochs: int = option(12, doc="Passes over the training data.", validator=attrs.validators.ge(1), resumable=True)
    batch_size: int = option(
        16, doc="Images per step (the last partial batch is dropped).", validator=attrs.validators.ge(1)
    )
    optimizer: str = option(
        "adamw", doc="'sgd' (with momentum) or 'adamw'.", validator=attrs.validators.in_(OPTIMIZERS)
    )
    lr: float = option(
        2e-3, doc="Peak learning rate (after warm-up).", validator=attrs.validators.gt(0), resumable=True
    )
    momentum: float = option(
        0.9, doc="SGD momentum.", validator=[attrs.validators.ge(0.0), attrs.validators.lt(1.0)], resumable=True
    )
    betas: tuple[float, float] = option((0.9, 0.999), doc="AdamW betas.", validator=_betas, resumable=True)
    weight_decay: float = option(
        1e-4, doc="Weight decay (decoupled for AdamW).", validator=attrs.validators.ge(0.0), resumable=True
    )
    schedule: str = option(
        "cosine",
        doc="Learning-rate schedule after warm-up: 'cosine' (to 0 at the last iteration), 'step' (times "
        "`gamma` after each of `milestones`) or 'constant'.",
        validator=attrs.validators.in_(SCHEDULES),
        resumable=True,
    )
    milestones: tuple[int, ...] = option(
        (), doc="Epochs after which the 'step' schedule multiplies the learning rate by `gamma`.",
        validator=_positive_ints, converter=tuple, resumable=True,
    )  # fmt: skip
    gamma: float = option(0.1, doc="Factor of the 'step' schedule.", validator=attrs.validators.gt(0.0), resumable=True)
    warmup_iterations: int = option(
        100,
        doc="Raise the learning rate linearly from 0 over this many iterations first (detectors diverge without it).",
        validator=attrs.validators.ge(0),
        resumable=True,
    )
    clip_grad_norm: float = option(
        10.0, doc="Clip the gradients' global norm to this (0: no clipping).", validator=attrs.validators.ge(0.0)
    )
    grid_images: int = option(
        16,
        doc="Held-out images drawn at each evaluation (predicted boxes beside the true ones), in "
        "samples/detections_<iteration>.png (0: none).",
        validator=[attrs.validators.ge(0), attrs.validators.le(64)],
        resumable=True,
    )
    draw_score: float = option(
        0.3,
        doc="Lowest score of a predicted box drawn in the evaluation grid and by `dltk predict --draw`.",
        validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)],
        resumable=True,
    )
    log_every: int = option(
        20, doc="Log mean losses to metrics.jsonl every this many iterations.", validator=attrs.validators.ge(1),
        resumable=True,
    )  # fmt: skip
    num_workers: int = option(0, doc="Data-loading worker processes.", validator=attrs.validators.ge(0), resumable=True)


@attrs.frozen
class CenterNetConfig:
    """Options of the ``centernet`` model."""

    width: int = option(48, doc="Channels of the feature map (stride 4).", validator=attrs.validators.ge(4))
    blocks: int = option(
        3, doc="Residual blocks at stride 4 (each widens the receptive field by 16 pixels).",
        validator=attrs.validators.ge(1),
    )  # fmt: skip
    max_detections: int = option(
        100, doc="Most boxes kept per image (the highest scores).", validator=attrs.validators.ge(1)
    )
    score_threshold: float = option(
        0.01, doc="Lowest score of a box kept.", validator=[attrs.validators.ge(0.0), attrs.validators.lt(1.0)]
    )


@attrs.frozen
class TorchvisionDetectorConfig:
    """Options of the torchvision detectors (one Config for the three; the model's name picks the builder)."""

    weights_path: str | None = option(
        None,
        doc="Starting weights of the whole detector (a state dict; COCO-trained weights are fine: the "
        "class-specific layers whose shape differs are left as built). Never downloaded.",
    )
    weights_sha256: str | None = option(
        None, doc="The sha256 `weights_path` must have (required with it).", validator=_sha256
    )
    backbone_weights_path: str | None = option(
        None,
        doc="Starting weights of the backbone alone (an ImageNet classifier's state dict: "
        "mobilenet_v3_large or resnet50). With either weights file the backbone's batch norm is frozen, "
        "as torchvision does for trained backbones.",
    )
    backbone_weights_sha256: str | None = option(
        None, doc="The sha256 `backbone_weights_path` must have (required with it).", validator=_sha256
    )
    min_size: int = option(
        0,
        doc="Shorter side images are resized to inside the detector (0: torchvision's default, 800 or 320 "
        "for ssdlite320).",
        validator=attrs.validators.ge(0),
    )
    max_size: int = option(
        0, doc="Longest side after resizing (0: torchvision's default).", validator=attrs.validators.ge(0)
    )
    score_threshold: float = option(
        0.01, doc="Lowest score of a box kept.", validator=[attrs.validators.ge(0.0), attrs.validators.lt(1.0)]
    )
    max_detections: int = option(100, doc="Most boxes kept per image.", validator=attrs.validators.ge(1))


@attrs.frozen
class DigitBoxesConfig:
    """Options of the ``digit-boxes`` dataset."""

    train_images: int = option(
        2000, doc="Canvases in the train split (digits from the digits' train split).", validator=attrs.validators.ge(1)
    )
    test_images: int = option(
        300, doc="Canvases in the test split (digits from the digits' test split only).",
        validator=attrs.validators.ge(1),
    )  # fmt: skip
    canvas: int = option(64, doc="Side of the square canvas, in pixels.", validator=attrs.validators.ge(16))
    min_digits: int = option(1, doc="Fewest digits on a canvas.", validator=attrs.validators.ge(1))
    max_digits: int = option(4, doc="Most digits on a canvas.", validator=attrs.validators.ge(1))
    min_size: int = option(12, doc="Smallest side of a pasted digit, in pixels.", validator=attrs.validators.ge(4))
    max_size: int = option(24, doc="Largest side of a pasted digit, in pixels.", validator=attrs.validators.ge(4))
    seed: int = option(0, doc="Seed of the positions, sizes and digits drawn.", validator=attrs.validators.ge(0))

    @max_size.validator
    def _sizes(self, _attribute: attrs.Attribute, value: int) -> None:
        if value < self.min_size:
            raise ValueError(f"must be >= min_size ({self.min_size}), got {value}")
        if value > self.canvas:
            raise ValueError(f"must be <= canvas ({self.canvas}), got {value}")

    @max_digits.validator
    def _counts(self, _attribute: attrs.Attribute, value: int) -> None:
        if value < self.min_digits:
            raise ValueError(f"must be >= min_digits ({self.min_digits}), got {value}")


@attrs.frozen
class CocoFolderConfig:
    """Options of the ``coco-folder`` dataset."""

    root: str = option(
        doc="A folder with train/ and test/ sub-folders of images, and annotations/instances_train.json "
        "and annotations/instances_test.json (COCO format)."
    )
    max_size: int = option(
        1333,
        doc="Images larger than this on their longer side are refused (pixels).",
        validator=attrs.validators.ge(16),
    )


@attrs.frozen
class VocFolderConfig:
    """Options of the ``voc-folder`` dataset."""

    root: str = option(
        doc="A Pascal VOC folder: JPEGImages/, Annotations/ (one XML per image) and ImageSets/Main/train.txt "
        "and test.txt (image ids, one a line)."
    )
    classes: tuple[str, ...] = option(
        (),
        doc="The class names, in order (empty: the 20 Pascal VOC classes).",
        converter=tuple,
    )
    skip_difficult: bool = option(True, doc="Leave out objects marked difficult.")


@attrs.frozen(kw_only=True)
class MapConfig(MetricConfig):
    """Options of the ``map`` and ``map50`` metrics (the core's ``every``, ``split`` and ``batch_size``)."""

    batch_size: int = option(16, doc="Images per evaluation batch.", validator=attrs.validators.ge(1))
