"""Built-in held-out metrics of class predictions: ``accuracy``, ``top-k``, ``loss`` and
``class-accuracy``, for any recipe whose runs provide ``"class-logits"`` (its ``eval_step`` gives
``(logits, labels)``: the image classifier of dltoolkit-vision, the sequence classifier of
dltoolkit-sequence, a third party's). Registration imports nothing heavy; the Ignite metrics are in
:mod:`dltoolkit.builtin.class_metrics`.
"""

from __future__ import annotations

import attrs

from dltoolkit import Component, MetricConfig, Scalar, hookimpl, option

CLASS_LOGITS = "class-logits"
"""The tag of a recipe whose ``eval_step`` gives ``(logits, labels)``: logits ``(N, K)``, labels ``(N,)``."""

FACTORIES = "dltoolkit.builtin.class_metrics"


@attrs.frozen
class TopKConfig(MetricConfig):
    """Options of ``top-k``."""

    k: int = option(
        5, doc="A prediction counts when the true class is among the k most likely.", validator=attrs.validators.ge(1)
    )


def _held_out(
    name: str, attr: str, summary: str, config: type, scalar: Scalar, formerly: tuple[str, ...] = ()
) -> Component:
    needs = {"recipe": ("evaluate", CLASS_LOGITS)}
    return Component(
        name, f"{FACTORIES}:{attr}", config, summary=summary, needs=needs, reports=[scalar], formerly=formerly
    )


@hookimpl
def dltk_register_metrics() -> list[Component]:
    return [
        _held_out(
            "accuracy",
            "accuracy",
            "Held-out accuracy: the share of samples whose most likely class is right (Ignite's Accuracy).",
            MetricConfig,
            Scalar("accuracy", "Held-out top-1 accuracy.", "higher", bounds=(0.0, 1.0)),
            formerly=("seq-accuracy",),  # dltoolkit-sequence's own copy, before this one
        ),
        _held_out(
            "top-k",
            "top_k",
            "Held-out top-k accuracy: the true class is among the k most likely (Ignite's TopKCategoricalAccuracy).",
            TopKConfig,
            Scalar(
                "top-k",
                "Held-out top-k accuracy (k: metrics option).",
                "higher",
                bounds=(0.0, 1.0),
                formerly=("top_k",),
            ),
            formerly=("top_k",),
        ),
        _held_out(
            "loss",
            "loss",
            "Held-out cross-entropy of the predicted class probabilities (Ignite's Loss; no label smoothing).",
            MetricConfig,
            Scalar("loss", "Held-out cross-entropy per sample, in nats.", "lower"),
        ),
        _held_out(
            "class-accuracy",
            "class_accuracy",
            "Held-out mean per-class accuracy (balanced accuracy).",
            MetricConfig,
            Scalar(
                "class-accuracy",
                "Held-out mean of the per-class accuracies.",
                "higher",
                bounds=(0.0, 1.0),
                formerly=("class_accuracy",),
            ),
            formerly=("class_accuracy",),
        ),
    ]
