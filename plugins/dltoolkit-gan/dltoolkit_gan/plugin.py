"""The dltoolkit-gan plugin: registers the ``gan`` recipe and the ``mlp-gan``, ``dcgan``, ``cgan``,
``cdcgan``, ``stylegan2`` and ``cstylegan2`` models.

Registration is light: this module holds names, options and docs, and names each factory by its
``"module:attr"`` string, imported when a run builds it; so ``dltk list``, ``plugins`` and
``check`` never load torch or Ignite.
"""

from __future__ import annotations

from dltoolkit import Component, hookimpl
from dltoolkit_gan.options import REPORTS, DcganConfig, GanRecipeConfig, MlpGanConfig, StyleGan2Config

LEGACY_EXPORT = "dltoolkit-generator/1"  # exports of dltoolkit 0.1: the generator's state dict alone
IMAGES = {"dataset": "images"}
LABELLED_IMAGES = {"dataset": ("images", "labels")}


@hookimpl
def dltk_register_recipes() -> list[Component]:
    return [
        Component(
            "gan",
            "dltoolkit_gan.recipe:train_gan",
            GanRecipeConfig,
            summary="Train a GAN: a discriminator step on every batch, a generator step every n_critic-th (Adam).",
            requires=("model", "dataset"),
            needs={"model": "gan", "dataset": "images"},
            provides=("sample", "export"),
            reports=REPORTS,
            offers="dltoolkit_gan.recipe:gan_offers",
            export_formats={LEGACY_EXPORT: "generator"},
        )
    ]


@hookimpl
def dltk_register_models() -> list[Component]:
    return [
        Component(
            "mlp-gan",
            "dltoolkit_gan.models:mlp_gan",
            MlpGanConfig,
            summary="Fully connected GAN (Goodfellow et al. 2014 style) for small images such as MNIST.",
            provides="gan",
            needs=IMAGES,
        ),
        Component(
            "dcgan",
            "dltoolkit_gan.models:dcgan",
            DcganConfig,
            summary="DCGAN (Radford et al. 2015): convolutional G and D for 16 to 128 pixel square images.",
            provides="gan",
            needs=IMAGES,
        ),
        Component(
            "cgan",
            "dltoolkit_gan.models:cgan",
            MlpGanConfig,
            summary="Class-conditional MLP GAN (Mirza & Osindero 2014): the one-hot class joins z and the image.",
            provides="gan",
            needs=LABELLED_IMAGES,
        ),
        Component(
            "cdcgan",
            "dltoolkit_gan.models:cdcgan",
            DcganConfig,
            summary="Class-conditional DCGAN: one-hot class joined to z in G, a projection discriminator "
            "(Miyato & Koyama 2018).",
            provides="gan",
            needs=LABELLED_IMAGES,
        ),
        Component(
            "stylegan2",
            "dltoolkit_gan.stylegan2:stylegan2",
            StyleGan2Config,
            summary="StyleGAN2 (Karras et al. 2020): mapping network, modulated convolutions, noise inputs, "
            "skip G, residual D; 8 to 256 pixels.",
            provides="gan",
            needs=IMAGES,
        ),
        Component(
            "cstylegan2",
            "dltoolkit_gan.stylegan2:cstylegan2",
            StyleGan2Config,
            summary="Class-conditional StyleGAN2: the class embedded next to z in the mapping network, a "
            "projection discriminator.",
            provides="gan",
            needs=LABELLED_IMAGES,
        ),
    ]
