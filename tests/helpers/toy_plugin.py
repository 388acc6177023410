"""A tiny plugin written for the core's tests, so that they need none of the first-party plugins.

It registers the recipe ``toy`` and the model ``toy-mlp``: two small MLPs trained against each
other on images (a discriminator step, then a generator step, on every batch), on the core's own
datasets (``digits``, ``image-folder``, ...). It is as small as a recipe can be while still using
everything the core offers a recipe: options of each kind (numbers, a choice, a pair with its own
validator, a flag; some resumable), declared scalars, checkpointed state of two models and two
optimisers, a sampler (``samples``, ``progress-gif``, ``dltk generate``), export, and distributed
training through ``ignite.distributed``.

Registration is light (no torch); the training code is in :mod:`toy_train`. The core's tests see
it as an installed plugin, ``dltoolkit-toy``: tests/conftest.py puts tests/helpers/toy-site (its
``*.dist-info``) on ``sys.path`` and ``PYTHONPATH``, so that ``dltk`` processes see it too.
"""

from __future__ import annotations

from typing import Any

import attrs

from dltoolkit import Component, Scalar, hookimpl, option

REPORTS = (
    Scalar("loss_d", "The discriminator's logistic loss on real and generated images.", group="loss"),
    Scalar("loss_g", "The generator's non-saturating loss on this iteration's generated batch.", group="loss"),
    Scalar("d_x", "Mean D(x) on real images (a probability).", better="none", group="discriminator output"),
    Scalar("d_g_z", "Mean D(G(z)) on generated images (a probability).", better="none", group="discriminator output"),
)
LOSSES = ("non-saturating", "hinge")

TINY_RECIPE = """
seed = 1

[run]
dir = "{runs}"
device = "cpu"

[recipe]
name = "toy"
epochs = 2
batch_size = 32
log_every = 5

[model]
name = "toy-mlp"
latent_dim = 8
hidden_dim = 16
depth = 1

[dataset]
name = "digits"

[[callbacks]]
name = "samples"

[checkpoint]
every = 1
keep = 2
"""
"""A tiny recipe file of the toy (digits, 44 iterations an epoch); ``{runs}``: the runs folder."""


def _betas(instance: Any, attribute: Any, value: tuple[float, float]) -> None:
    if not all(0.0 <= b < 1.0 for b in value):
        raise ValueError(f"each beta must be in [0, 1), got {list(value)}")


@attrs.frozen
class ToyRecipeConfig:
    epochs: int = option(2, doc="Passes over the training data.", validator=attrs.validators.ge(1), resumable=True)
    batch_size: int = option(
        32, doc="Images per step (the last partial batch is dropped).", validator=attrs.validators.ge(1)
    )
    lr_g: float = option(2e-4, doc="Adam learning rate of G.", validator=attrs.validators.gt(0), resumable=True)
    lr_d: float = option(2e-4, doc="Adam learning rate of D.", validator=attrs.validators.gt(0), resumable=True)
    betas_g: tuple[float, float] = option((0.5, 0.999), doc="Adam betas of G.", validator=_betas, resumable=True)
    betas_d: tuple[float, float] = option((0.5, 0.999), doc="Adam betas of D.", validator=_betas, resumable=True)
    loss: str = option("non-saturating", doc="The objective.", validator=attrs.validators.in_(LOSSES))
    precision: str = option(
        "fp32", doc="'fp32' or 'bf16' (autocast).", validator=attrs.validators.in_(("fp32", "bf16"))
    )
    channels_last: bool = option(False, doc="A flag the toy accepts and ignores (a boolean option).")
    log_every: int = option(
        50, doc="Log mean scalars every this many iterations.", validator=attrs.validators.ge(1), resumable=True
    )


@attrs.frozen
class ToyMlpConfig:
    latent_dim: int = option(8, doc="Size of the noise vector z.", validator=attrs.validators.ge(1))
    hidden_dim: int = option(32, doc="Width of the hidden layers.", validator=attrs.validators.ge(1))
    depth: int = option(
        1, doc="Hidden layers in each network.", validator=[attrs.validators.ge(1), attrs.validators.le(4)]
    )
    dropout: float = option(0.0, doc="Dropout in D.", validator=[attrs.validators.ge(0.0), attrs.validators.lt(1.0)])


def toy(config: ToyRecipeConfig, *, run: Any) -> None:
    """Train the toy pair: a discriminator step, then a generator step, on every batch (Adam)."""
    from toy_train import train

    train(config, run=run)


def toy_offers(model: Any, device: Any, config: Any = None, data: Any = None) -> Any:
    """What a trained toy offers: its generator (exported, loaded) and a sampler drawing from it."""
    from toy_train import offers

    return offers(model, device)


def toy_mlp(config: ToyMlpConfig, *, image_shape: tuple[int, int, int]) -> Any:
    """Two MLPs: G maps noise to images in [-1, 1], D maps an image to one logit."""
    from toy_train import build_model

    return build_model(config, image_shape)


@hookimpl
def dltk_register_recipes() -> list[Component]:
    return [
        Component(
            "toy",
            toy,
            ToyRecipeConfig,
            requires=("model", "dataset"),
            needs={"model": "toy", "dataset": "images"},
            provides=("sample", "export"),
            reports=REPORTS,
            offers=toy_offers,
        )
    ]


@hookimpl
def dltk_register_models() -> list[Component]:
    return [Component("toy-mlp", toy_mlp, ToyMlpConfig, provides="toy", needs={"dataset": "images"})]
