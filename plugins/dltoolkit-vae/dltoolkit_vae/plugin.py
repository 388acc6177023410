"""The dltoolkit-vae plugin: registers the ``vae`` recipe, the ``mlp-vae`` and ``conv-vae`` models and
the ``elbo`` metric.

Registration is light: this module holds names, options and docs, and names each factory by its
``"module:attr"`` string, imported when a run builds it; so ``dltk list``, ``plugins`` and
``check`` never load torch or Ignite.
"""

from __future__ import annotations

from dltoolkit import Component, MetricConfig, hookimpl
from dltoolkit_vae.options import ELBO, REPORTS, ConvVaeConfig, MlpVaeConfig, VaeRecipeConfig

# "elbo": its eval_step gives the per-image terms of the ELBO, which the `elbo` metric averages
# (so `dltk check` refuses that metric with recipes whose eval_step gives something else).
PROVIDES = ("sample", "evaluate", "export", "elbo")


@hookimpl
def dltk_register_recipes() -> list[Component]:
    return [
        Component(
            "vae",
            "dltoolkit_vae.recipe:train_vae",
            VaeRecipeConfig,
            summary="Train a VAE: minimise reconstruction + beta * KL (the negative ELBO) with Adam, one z per image.",
            requires=("model", "dataset"),
            needs={"model": "vae", "dataset": "images"},
            provides=PROVIDES,
            reports=REPORTS,
            offers="dltoolkit_vae.recipe:vae_offers",
            check="dltoolkit_vae.options:check_recipe",
        )
    ]


@hookimpl
def dltk_register_models() -> list[Component]:
    return [
        Component(
            "mlp-vae",
            "dltoolkit_vae.models:mlp_vae",
            MlpVaeConfig,
            summary="Fully connected VAE (Kingma & Welling 2014) for small images such as digits and MNIST.",
            provides="vae",
            needs={"dataset": "images"},
        ),
        Component(
            "conv-vae",
            "dltoolkit_vae.models:conv_vae",
            ConvVaeConfig,
            summary="Convolutional VAE (DCGAN-shaped encoder and decoder) for 16 to 128 pixel square images.",
            provides="vae",
            needs={"dataset": "images"},
        ),
    ]


@hookimpl
def dltk_register_metrics() -> list[Component]:
    return [
        Component(
            "negative-elbo",
            "dltoolkit_vae.metrics:elbo",
            MetricConfig,
            summary="Negative ELBO per held-out image, one z each: Bernoulli decoder (BCE) + KL, in nats; lower is "
            "better.",
            needs={"recipe": ("evaluate", "elbo")},
            reports=[ELBO],
            formerly=["elbo"],  # its name before it said what it is
        )
    ]
