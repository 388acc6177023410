"""The dltoolkit-vision plugin: the ``classify`` recipe, the ``lenet``, ``resnet`` and ``torchvision``
models, and the sample metric ``classifier-fid`` (FID/KID in a trained classifier's feature space).

Registration is light: this module holds names, options and docs, and names each factory by its
``"module:attr"`` string, imported when a run builds it; so ``dltk list``, ``plugins`` and
``check`` do not load torch, torchvision or Ignite.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dltoolkit import Component, Scalar, hookimpl
from dltoolkit_vision.options import (
    REPORTS,
    ClassifierFidConfig,
    ClassifyConfig,
    LenetConfig,
    ResnetConfig,
    TorchvisionConfig,
)
from dltoolkit_vision.vit import VitConfig

VIT_SUMMARY = "Vision Transformer (Dosovitskiy et al. 2021): patches, class token or mean pooling, pre-norm blocks."

if TYPE_CHECKING:
    pass

# "class-logits": the recipe's eval_step gives (logits, labels), which the core's built-in metrics
# accuracy, top-k, loss and class-accuracy read, so `dltk check` refuses them with recipes whose
# evaluation gives something else.
PROVIDES = ("evaluate", "predict", "export", "class-logits")
# The built-in image-folder declares "images" only (its labels exist when each class has a folder),
# so needing "labels" here would make `dltk check` refuse it; the recipe checks labels once built.
DATASET_NEEDS = "images"

TORCHVISION = "dltoolkit_vision.models:torchvision_model"
CLASSIFY = "dltoolkit_vision.recipe:train_classify"


# --- hooks ------------------------------------------------------------------------------------


@hookimpl
def dltk_register_recipes() -> list[Component]:
    return [
        Component(
            "classify",
            CLASSIFY,
            ClassifyConfig,
            summary="Train an image classifier: cross-entropy, SGD or AdamW, cosine or step schedule, augmentation.",
            requires=("model", "dataset"),
            needs={"model": "classifier", "dataset": DATASET_NEEDS},
            provides=PROVIDES,
            reports=REPORTS,
            offers="dltoolkit_vision.recipe:classify_offers",
        )
    ]


@hookimpl
def dltk_register_models() -> list[Component]:
    needs = {"dataset": DATASET_NEEDS}
    return [
        Component(
            "lenet",
            "dltoolkit_vision.models:lenet",
            LenetConfig,
            summary="LeNet-5 (two 5x5 convolutions, three dense layers) for small images, 8x8 to 32x32, grey or "
            "colour.",
            provides="classifier",
            needs=needs,
        ),
        Component(
            "resnet",
            "dltoolkit_vision.models:resnet",
            ResnetConfig,
            summary="A CIFAR-style ResNet: ResNet-20 (depth 6n+2, He et al. 2016) or ResNet-18, for small images.",
            provides="classifier",
            needs=needs,
        ),
        Component(
            "torchvision",
            TORCHVISION,
            TorchvisionConfig,
            summary="Any torchvision classification model by name, new head; local starting weights for transfer "
            "learning.",
            provides="classifier",
            needs=needs,
            check="dltoolkit_vision.checks:check_torchvision",
        ),
        Component(
            "vit", "dltoolkit_vision.vit:vit", VitConfig, summary=VIT_SUMMARY, provides="classifier", needs=needs
        ),
    ]


@hookimpl
def dltk_register_metrics() -> list[Component]:
    return [
        Component(
            "classifier-fid",
            "dltoolkit_vision.classifier_fid:ClassifierFid",
            ClassifierFidConfig,
            summary="FID (and KID) of generated images in the penultimate feature space of a dltoolkit classifier run.",
            needs={"recipe": "sample"},
            reports=[
                Scalar(
                    "classifier-fid",
                    "Frechet distance of sample features to the reference's, in a classifier's penultimate layer.",
                    "lower",
                )
            ],
        ),
    ]
