"""The dltoolkit-vision plugin: the ``classify`` recipe, the ``lenet``, ``resnet`` and ``torchvision``
models, the held-out metrics ``accuracy``, ``top_k``, ``loss`` and ``class_accuracy``, and the
sample metric ``classifier-fid`` (FID/KID in a trained classifier's feature space).

Registration is light: this module holds names, options and docs; torch, torchvision and Ignite
are imported inside the factories, so ``dltk list``, ``plugins`` and ``check`` do not load them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dltoolkit import Component, DataSpec, DltkError, Scalar, hookimpl
from dltoolkit_vision.options import (
    REPORTS,
    ClassifierFidConfig,
    ClassifyConfig,
    HeldOutConfig,
    LenetConfig,
    ResnetConfig,
    TopKConfig,
    TorchvisionConfig,
)

if TYPE_CHECKING:
    from dltoolkit import Run, Trained

# "class-logits": the recipe's eval_step gives (logits, labels), which the metrics below read, so
# `dltk check` refuses them with recipes whose evaluation gives something else.
PROVIDES = ("evaluate", "predict", "export", "class-logits")
# The built-in image-folder declares "images" only (its labels exist when each class has a folder),
# so needing "labels" here would make `dltk check` refuse it; the recipe checks labels once built.
DATASET_NEEDS = "images"

# --- the recipe ------------------------------------------------------------------------------


def classify(config: ClassifyConfig, *, run: Run) -> None:
    """Train an image classifier: cross-entropy, SGD or AdamW, cosine or step schedule, augmentation."""
    from dltoolkit_vision.recipe import train_classify

    train_classify(config, run=run)


def classify_offers(model: Any, device: Any) -> Trained:
    """What a trained classifier offers: export, held-out evaluation and predictions (class and probability)."""
    from dltoolkit_vision.recipe import classify_offers as offers

    return offers(model, device)


# --- models --------------------------------------------------------------------------------------


def _with_spec(model: Any, data: DataSpec) -> Any:
    model.spec = data  # class names and input size, for dltk predict on a rebuilt model
    return model


def lenet(config: LenetConfig, *, data: DataSpec) -> Any:
    """LeNet-5 (two 5x5 convolutions, three dense layers) for small images, 8x8 to 32x32, grey or colour."""
    from dltoolkit_vision.models import build_lenet

    return _with_spec(build_lenet(config, data), data)


def resnet(config: ResnetConfig, *, data: DataSpec) -> Any:
    """A CIFAR-style ResNet: ResNet-20 (depth 6n+2, He et al. 2016) or ResNet-18, for small images."""
    from dltoolkit_vision.models import build_resnet

    return _with_spec(build_resnet(config, data), data)


def torchvision_model(config: TorchvisionConfig, *, data: DataSpec) -> Any:
    """Any torchvision classification model by name, new head; local starting weights for transfer learning."""
    from dltoolkit_vision.models import build_torchvision

    return _with_spec(build_torchvision(config, data), data)


# --- metrics -----------------------------------------------------------------------------------


def _data_of(run: Any) -> DataSpec | None:
    data = getattr(run, "data", None)
    return data if isinstance(data, DataSpec) else None


def accuracy(config: HeldOutConfig, *, run: Any = None) -> Any:
    """Held-out accuracy: the share of samples whose most likely class is right (Ignite's Accuracy)."""
    from dltoolkit_vision import metrics

    return metrics.accuracy(config)


def top_k(config: TopKConfig, *, run: Any = None) -> Any:
    """Held-out top-k accuracy: the true class is among the k most likely (Ignite's TopKCategoricalAccuracy)."""
    from dltoolkit_vision import metrics

    data = _data_of(run)
    if data is not None and data.num_classes is not None and config.k > data.num_classes:
        raise DltkError(f"top_k.k: {config.k} is more than the {data.num_classes} classes of the data; lower it")
    return metrics.top_k(config)


def loss(config: HeldOutConfig, *, run: Any = None) -> Any:
    """Held-out cross-entropy of the predicted class probabilities (Ignite's Loss; no label smoothing)."""
    from dltoolkit_vision import metrics

    return metrics.loss(config)


def class_accuracy(config: HeldOutConfig, *, run: Any = None) -> Any:
    """Held-out mean per-class accuracy (balanced accuracy); each class's own is logged by the recipe."""
    from dltoolkit_vision import metrics

    return metrics.class_accuracy(config)


def classifier_fid(config: ClassifierFidConfig, *, run: Any) -> Any:
    """FID (and KID) of generated images in the penultimate feature space of a dltoolkit classifier run."""
    from dltoolkit_vision.classifier_fid import ClassifierFid

    return ClassifierFid(config, run)


# --- hooks ------------------------------------------------------------------------------------


@hookimpl
def dltk_register_recipes() -> list[Component]:
    return [
        Component(
            "classify",
            classify,
            ClassifyConfig,
            requires=("model", "dataset"),
            needs={"model": "classifier", "dataset": DATASET_NEEDS},
            provides=PROVIDES,
            reports=REPORTS,
            offers=classify_offers,
        )
    ]


@hookimpl
def dltk_register_models() -> list[Component]:
    needs = {"dataset": DATASET_NEEDS}
    return [
        Component("lenet", lenet, LenetConfig, provides="classifier", needs=needs),
        Component("resnet", resnet, ResnetConfig, provides="classifier", needs=needs),
        Component(
            "torchvision",
            torchvision_model,
            TorchvisionConfig,
            provides="classifier",
            needs=needs,
            check="dltoolkit_vision.checks:check_torchvision",
        ),
    ]


@hookimpl
def dltk_register_metrics() -> list[Component]:
    needs = {"recipe": ("evaluate", "class-logits")}
    return [
        Component(
            "accuracy",
            accuracy,
            HeldOutConfig,
            needs=needs,
            reports=[Scalar("accuracy", "Held-out top-1 accuracy.", "higher", bounds=(0.0, 1.0))],
        ),
        Component(
            "top_k",
            top_k,
            TopKConfig,
            needs=needs,
            reports=[Scalar("top_k", "Held-out top-k accuracy (k: metrics option).", "higher", bounds=(0.0, 1.0))],
        ),
        Component(
            "loss",
            loss,
            HeldOutConfig,
            needs=needs,
            reports=[Scalar("loss", "Held-out cross-entropy per image, in nats.", "lower")],
        ),
        Component(
            "class_accuracy",
            class_accuracy,
            HeldOutConfig,
            needs=needs,
            reports=[
                Scalar("class_accuracy", "Held-out mean of the per-class accuracies.", "higher", bounds=(0.0, 1.0))
            ],
        ),
        Component(
            "classifier-fid",
            classifier_fid,
            ClassifierFidConfig,
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
