"""The dltoolkit-gan plugin: registers the ``gan`` recipe and the ``mlp-gan``, ``dcgan``, ``cgan`` and
``cdcgan`` models.

Registration is light: this module holds names, options and declarations; torch and Ignite are
imported inside the factories, so ``dltk list``, ``plugins`` and ``check`` never load them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dltoolkit import Component, hookimpl
from dltoolkit_gan.options import REPORTS, DcganConfig, GanRecipeConfig, MlpGanConfig

if TYPE_CHECKING:
    from dltoolkit import DataSpec, Run, Trained

LEGACY_EXPORT = "dltoolkit-generator/1"  # exports of dltoolkit 0.1: the generator's state dict alone


def gan(config: GanRecipeConfig, *, run: Run) -> None:
    """Train a GAN: a discriminator step on every batch, a generator step every n_critic-th (Adam)."""
    from dltoolkit_gan.recipe import train_gan

    train_gan(config, run=run)


def gan_offers(model: Any, device: Any, config: GanRecipeConfig | None = None, data: DataSpec | None = None) -> Trained:
    """What a trained GAN offers: its generator (the moving average with recipe.ema_decay; exported,
    loaded) and a sampler drawing from it (a chosen class, for class-conditional models)."""
    from dltoolkit_gan.recipe import gan_offers as offers

    return offers(model, device, config=config, data=data)


def mlp_gan(config: MlpGanConfig, *, image_shape: tuple[int, int, int]) -> Any:
    """Fully connected GAN (Goodfellow et al. 2014 style) for small images such as MNIST."""
    from dltoolkit_gan.models import mlp_gan as build

    return build(config, image_shape=image_shape)


def dcgan(config: DcganConfig, *, image_shape: tuple[int, int, int]) -> Any:
    """DCGAN (Radford et al. 2015): convolutional G and D for 16 to 128 pixel square images."""
    from dltoolkit_gan.models import dcgan as build

    return build(config, image_shape=image_shape)


def cgan(config: MlpGanConfig, *, image_shape: tuple[int, int, int], data: DataSpec) -> Any:
    """Class-conditional MLP GAN (Mirza & Osindero 2014): the one-hot class joins z and the image."""
    from dltoolkit_gan.models import cgan as build

    return build(config, image_shape=image_shape, data=data)


def cdcgan(config: DcganConfig, *, image_shape: tuple[int, int, int], data: DataSpec) -> Any:
    """Class-conditional DCGAN: one-hot class joined to z in G, a projection discriminator (Miyato & Koyama 2018)."""
    from dltoolkit_gan.models import cdcgan as build

    return build(config, image_shape=image_shape, data=data)


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
        Component("cgan", cgan, MlpGanConfig, provides="gan", needs={"dataset": ("images", "labels")}),
        Component("cdcgan", cdcgan, DcganConfig, provides="gan", needs={"dataset": ("images", "labels")}),
    ]
