"""The dltoolkit-vae plugin: registers the ``vae`` recipe, the ``mlp-vae`` and ``conv-vae`` models and
the ``elbo`` metric.

Registration is light: this module holds names, options and declarations; torch and Ignite are
imported inside the factories, so ``dltk list``, ``plugins`` and ``check`` never load them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dltoolkit import Component, hookimpl
from dltoolkit_vae.options import ELBO, REPORTS, ConvVaeConfig, ElboConfig, MlpVaeConfig, VaeRecipeConfig

if TYPE_CHECKING:
    from dltoolkit import Run, Trained

# "elbo": its eval_step gives the per-image terms of the ELBO, which the `elbo` metric averages
# (so `dltk check` refuses that metric with recipes whose eval_step gives something else).
PROVIDES = ("sample", "evaluate", "export", "elbo")


def vae(config: VaeRecipeConfig, *, run: Run) -> None:
    """Train a VAE: minimise reconstruction + beta * KL (the negative ELBO) with Adam, one z per image."""
    from dltoolkit_vae.recipe import train_vae

    train_vae(config, run=run)


def vae_offers(model: Any, device: Any) -> Trained:
    """What a trained VAE offers: encoder and decoder (exported, loaded), a sampler decoding N(0, I)
    noise to images, and an ``eval_step`` for the held-out ELBO."""
    from dltoolkit_vae.recipe import vae_offers as offers

    return offers(model, device)


def mlp_vae(config: MlpVaeConfig, *, image_shape: tuple[int, int, int]) -> Any:
    """Fully connected VAE (Kingma & Welling 2014) for small images such as digits and MNIST."""
    from dltoolkit_vae.models import mlp_vae as build

    return build(config, image_shape=image_shape)


def conv_vae(config: ConvVaeConfig, *, image_shape: tuple[int, int, int]) -> Any:
    """Convolutional VAE (DCGAN-shaped encoder and decoder) for 16 to 128 pixel square images."""
    from dltoolkit_vae.models import conv_vae as build

    return build(config, image_shape=image_shape)


def elbo(config: ElboConfig, *, run: Any = None) -> Any:
    """Negative ELBO per held-out image (BCE reconstruction + KL, in nats): lower is better."""
    from dltoolkit_vae.metrics import Elbo

    return Elbo(config)


@hookimpl
def dltk_register_recipes() -> list[Component]:
    return [
        Component(
            "vae",
            vae,
            VaeRecipeConfig,
            requires=("model", "dataset"),
            needs={"model": "vae", "dataset": "images"},
            provides=PROVIDES,
            reports=REPORTS,
            offers=vae_offers,
        )
    ]


@hookimpl
def dltk_register_models() -> list[Component]:
    return [
        Component("mlp-vae", mlp_vae, MlpVaeConfig, provides="vae", needs={"dataset": "images"}),
        Component("conv-vae", conv_vae, ConvVaeConfig, provides="vae", needs={"dataset": "images"}),
    ]


@hookimpl
def dltk_register_metrics() -> list[Component]:
    return [Component("elbo", elbo, ElboConfig, needs={"recipe": ("evaluate", "elbo")}, reports=[ELBO])]
