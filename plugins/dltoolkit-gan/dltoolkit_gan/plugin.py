"""The dltoolkit-gan plugin: registers the ``gan`` recipe and the ``mlp-gan`` and ``dcgan`` models."""

from __future__ import annotations

from dltoolkit import Component, hookimpl
from dltoolkit_gan.models import DcganConfig, MlpGanConfig, dcgan, mlp_gan
from dltoolkit_gan.recipe import REPORTS, GanRecipeConfig, gan_offers, train_gan

LEGACY_EXPORT = "dltoolkit-generator/1"  # exports of dltoolkit 0.1: the generator's state dict alone


@hookimpl
def dltk_register_recipes() -> list[Component]:
    return [
        Component(
            "gan",
            train_gan,
            GanRecipeConfig,
            requires=("model", "dataset"),
            needs={"model": "gan", "dataset": "images"},
            provides=("sample", "export"),
            reports=REPORTS,
            offers=gan_offers,
            export_formats={LEGACY_EXPORT: "generator"},
        )
    ]


@hookimpl
def dltk_register_models() -> list[Component]:
    return [
        Component("mlp-gan", mlp_gan, MlpGanConfig, provides="gan", needs={"dataset": "images"}),
        Component("dcgan", dcgan, DcganConfig, provides="gan", needs={"dataset": "images"}),
    ]
