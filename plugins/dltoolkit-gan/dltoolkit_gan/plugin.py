"""The dltoolkit-gan plugin: registers the ``gan`` recipe and the ``mlp-gan`` and ``dcgan`` models."""

from __future__ import annotations

from dltoolkit import Component, hookimpl
from dltoolkit_gan.models import DcganConfig, MlpGanConfig, dcgan, mlp_gan
from dltoolkit_gan.recipe import GanRecipeConfig, train_gan


@hookimpl
def dltk_register_recipes() -> list[Component]:
    return [Component("gan", train_gan, GanRecipeConfig, requires=("model", "dataset"))]


@hookimpl
def dltk_register_models() -> list[Component]:
    return [
        Component("mlp-gan", mlp_gan, MlpGanConfig),
        Component("dcgan", dcgan, DcganConfig),
    ]
