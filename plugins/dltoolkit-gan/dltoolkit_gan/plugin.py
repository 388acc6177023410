"""The dltoolkit-gan plugin: registers the ``gan`` recipe and the ``mlp-gan`` and ``dcgan`` models.

Registration is light: this module holds names, options and declarations; torch and Ignite are
imported inside the factories, so ``dltk list``, ``plugins`` and ``check`` never load them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dltoolkit import Component, hookimpl
from dltoolkit_gan.options import REPORTS, DcganConfig, GanRecipeConfig, MlpGanConfig

if TYPE_CHECKING:
    from dltoolkit import Run, Trained

LEGACY_EXPORT = "dltoolkit-generator/1"  # exports of dltoolkit 0.1: the generator's state dict alone


def gan(config: GanRecipeConfig, *, run: Run) -> None:
    """Train a GAN: each iteration a discriminator step then a generator step (Adam, BCE on logits)."""
    from dltoolkit_gan.recipe import train_gan

    train_gan(config, run=run)


def gan_offers(model: Any, device: Any) -> Trained:
    """What a trained GAN offers: its generator (exported, loaded) and a sampler drawing from it."""
    from dltoolkit_gan.recipe import gan_offers as offers

    return offers(model, device)


def mlp_gan(config: MlpGanConfig, *, image_shape: tuple[int, int, int]) -> Any:
    """Fully connected GAN (Goodfellow et al. 2014 style) for small images such as MNIST."""
    from dltoolkit_gan.models import mlp_gan as build

    return build(config, image_shape=image_shape)


def dcgan(config: DcganConfig, *, image_shape: tuple[int, int, int]) -> Any:
    """DCGAN (Radford et al. 2015): convolutional G and D for 16 to 128 pixel square images."""
    from dltoolkit_gan.models import dcgan as build

    return build(config, image_shape=image_shape)


@hookimpl
def dltk_register_recipes() -> list[Component]:
    return [
        Component(
            "gan",
            gan,
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
