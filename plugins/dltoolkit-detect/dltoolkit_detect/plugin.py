"""The dltoolkit-detect plugin: the ``detect`` recipe, the torchvision detectors and ``centernet``, the
``coco-folder``, ``voc-folder`` and ``digit-boxes`` datasets, the ``map`` and ``map50`` metrics and
``dltk predict --draw DIR``.

Registration is light: this module holds names, options and docs, and names each factory by its
``"module:attr"`` string, imported when a run builds it; so ``dltk list``, ``plugins`` and
``check`` do not load torch, torchvision or Ignite.
"""

from __future__ import annotations

import argparse

from dltoolkit import Component, hookimpl
from dltoolkit_detect.options import (
    MAP,
    MAP50,
    REPORTS,
    TORCHVISION_DETECTORS,
    CenterNetConfig,
    CocoFolderConfig,
    DetectConfig,
    DigitBoxesConfig,
    MapConfig,
    TorchvisionDetectorConfig,
    VocFolderConfig,
)

# "boxes": its eval_step gives {"predictions", "targets"} per image, which the map metrics read.
PROVIDES = ("evaluate", "predict", "export", "boxes")
DATA = ("boxes", "labels")
"""What the detection datasets provide and what the recipe and its models need of a dataset."""


@hookimpl
def dltk_register_recipes() -> list[Component]:
    return [
        Component(
            "detect",
            "dltoolkit_detect.recipe:train_detect",
            DetectConfig,
            summary="Train an object detector: the model's losses summed, SGD or AdamW with warm-up, COCO mAP held "
            "out.",
            requires=("model", "dataset"),
            needs={"model": "detector", "dataset": DATA},
            provides=PROVIDES,
            reports=REPORTS,
            offers="dltoolkit_detect.recipe:detect_offers",
        )
    ]


@hookimpl
def dltk_register_models() -> list[Component]:
    needs = {"dataset": DATA}
    torchvision = [
        Component(
            arch,
            f"dltoolkit_detect.tv_models:{arch}",
            TorchvisionDetectorConfig,
            summary=f"torchvision's {arch}, num_classes from the data; starting weights from local files only.",
            provides="detector",
            needs=needs,
            check="dltoolkit_detect.checks:check_detector",
        )
        for arch in TORCHVISION_DETECTORS
    ]
    return [
        Component(
            "centernet",
            "dltoolkit_detect.centernet:centernet",
            CenterNetConfig,
            summary="A small anchor-free detector (CenterNet-style, stride 4) that trains from scratch on a CPU in "
            "minutes.",
            provides="detector",
            needs=needs,
        ),
        *torchvision,
    ]


@hookimpl
def dltk_register_datasets() -> list[Component]:
    return [
        Component(
            "digit-boxes",
            "dltoolkit_detect.digit_boxes:digit_boxes",
            DigitBoxesConfig,
            summary="Digits pasted at seeded positions and sizes on a canvas, with their boxes and labels (offline).",
            provides=DATA,
        ),
        Component(
            "coco-folder",
            "dltoolkit_detect.coco:coco_folder",
            CocoFolderConfig,
            summary="Images with boxes from a COCO-format folder (train/, test/, annotations/instances_*.json).",
            provides=DATA,
        ),
        Component(
            "voc-folder",
            "dltoolkit_detect.voc:voc_folder",
            VocFolderConfig,
            summary="Images with boxes from a Pascal VOC folder (JPEGImages/, Annotations/*.xml, ImageSets/Main).",
            provides=DATA,
        ),
    ]


@hookimpl
def dltk_register_metrics() -> list[Component]:
    needs = {"recipe": ("evaluate", "boxes")}
    return [
        Component(
            "map",
            "dltoolkit_detect.metrics:coco_map",
            MapConfig,
            summary="COCO mAP@[.5:.95] of held-out boxes (faster-coco-eval, the reference protocol); each class's "
            "AP too.",
            needs=needs,
            reports=[MAP],
        ),
        Component(
            "map50",
            "dltoolkit_detect.metrics:coco_map50",
            MapConfig,
            summary="COCO mAP@.5 of held-out boxes (faster-coco-eval, the reference protocol).",
            needs=needs,
            reports=[MAP50],
        ),
    ]


@hookimpl
def dltk_add_options(command: str, parser: argparse._ArgumentGroup) -> None:
    """``--draw DIR`` for ``dltk predict``: detectors write each image with its boxes there."""
    if command == "predict":
        parser.add_argument("--draw", metavar="DIR", help="write each image with its predicted boxes here (detectors)")
