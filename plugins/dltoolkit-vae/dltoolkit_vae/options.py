"""The vae recipe's, models' and metric's options and declarations: plain data, no torch
(registration stays light)."""

from __future__ import annotations

import attrs

from dltoolkit import Scalar, option

REPORTS = (
    Scalar(
        "loss",
        "Training objective per image: reconstruction + beta * KL (the negative ELBO when beta is 1).",
        "lower",
        group="loss",
    ),
    Scalar("reconstruction", "Reconstruction loss per image, summed over pixels.", "lower", group="loss"),
    Scalar(
        "kl",
        "KL divergence of q(z|x) from the N(0, I) prior, per image, in nats (near 0: the latent is unused).",
        better="none",
        group="KL",
    ),
    Scalar(
        "beta",
        "The KL weight in effect (rises from 0 over recipe.kl_warmup_epochs).",
        better="none",
        group="KL weight",
    ),
)
STAT_NAMES = tuple(s.name for s in REPORTS)
ELBO = Scalar("negative-elbo", "Negative ELBO per image on the held-out split, in nats.", "lower", formerly=["elbo"])
RECONSTRUCTIONS = ("bce", "mse")
PRIORS = ("normal", "mixture")
COVARIANCES = ("full", "diagonal")
DEFAULT_COMPONENTS = 20
DEFAULT_COVARIANCE = "full"
CONV_SIZES = (16, 32, 64, 128)

_positive = attrs.validators.ge(1)


# --- the recipe -----------------------------------------------------------------------------


@attrs.frozen
class VaeRecipeConfig:
    epochs: int = option(25, doc="Passes over the training data.", validator=_positive, resumable=True)
    batch_size: int = option(128, doc="Images per step (the last partial batch is dropped).", validator=_positive)
    lr: float = option(1e-3, doc="Adam learning rate.", validator=attrs.validators.gt(0), resumable=True)
    beta: float = option(
        1.0, doc="Weight of the KL term (1: the ELBO; more: a beta-VAE).", validator=attrs.validators.ge(0.0)
    )
    kl_warmup_epochs: int = option(
        0,
        doc="Raise the KL weight linearly from 0 to beta over this many epochs (0: beta from the start).",
        validator=attrs.validators.ge(0),
    )
    reconstruction: str = option(
        "bce",
        doc="'bce' (Bernoulli decoder: BCE on logits against images mapped to [0, 1]) or 'mse' (squared "
        "error of the decoded image in [-1, 1]); summed over pixels.",
        validator=attrs.validators.in_(RECONSTRUCTIONS),
    )
    images_every: int = option(
        1,
        doc="Write the reconstruction grid and the interpolation strip every this many epochs (and at the end).",
        validator=_positive,
        resumable=True,
    )
    log_every: int = option(
        50, doc="Log mean losses to metrics.jsonl every this many iterations.", validator=_positive, resumable=True
    )
    num_workers: int = option(
        0, doc="DataLoader worker processes (for image-folder data).", validator=attrs.validators.ge(0), resumable=True
    )
    prior: str = option(
        "normal",
        doc="Where samples draw their codes from: 'normal' (N(0, I), the prior trained against) or 'mixture' (a "
        "Gaussian mixture fitted by EM to the training images' codes after training, as in Ghosh et al. 2020; "
        "refitted for every checkpoint and carried by it and by exports).",
        validator=attrs.validators.in_(PRIORS),
    )
    prior_components: int | None = option(
        None,
        doc=f"Components of the 'mixture' prior (default {DEFAULT_COMPONENTS}).",
        validator=attrs.validators.optional(_positive),
    )
    prior_covariance: str | None = option(
        None,
        doc=f"Covariance of each component of the 'mixture' prior: 'full' or 'diagonal' (default "
        f"'{DEFAULT_COVARIANCE}').",
        validator=attrs.validators.optional(attrs.validators.in_(COVARIANCES)),
    )

    @property
    def components(self) -> int:
        """The mixture prior's components, its default filled in."""
        return self.prior_components if self.prior_components is not None else DEFAULT_COMPONENTS

    @property
    def covariance(self) -> str:
        """The mixture prior's covariance, its default filled in."""
        return self.prior_covariance if self.prior_covariance is not None else DEFAULT_COVARIANCE


def check_recipe(config: VaeRecipeConfig, *, where: str) -> list[str]:
    """The mixture prior's options apply only to ``prior = "mixture"``."""
    if config.prior == "mixture":
        return []
    return [
        f"{where}.{name}: applies to the mixture prior, and {where}.prior is '{config.prior}'; set "
        f'{where}.prior = "mixture" or remove {where}.{name}'
        for name in ("prior_components", "prior_covariance")
        if getattr(config, name) is not None
    ]


# --- models ---------------------------------------------------------------------------------


@attrs.frozen
class MlpVaeConfig:
    latent_dim: int = option(16, doc="Size of the latent vector z.", validator=_positive)
    hidden_dim: int = option(
        256,
        doc="Width of the hidden layer next to z (the decoder widens, the encoder narrows by 2x a layer).",
        validator=_positive,
    )
    depth: int = option(
        2, doc="Hidden layers in each network.", validator=[attrs.validators.ge(1), attrs.validators.le(6)]
    )


@attrs.frozen
class ConvVaeConfig:
    latent_dim: int = option(128, doc="Size of the latent vector z.", validator=_positive)
    base_channels: int = option(
        64, doc="Feature maps of the widest-resolution layer (as DCGAN's ngf/ndf).", validator=_positive
    )
    image_size: int | None = option(
        None,
        doc="16, 32, 64 or 128; the depth follows it. Default: the dataset's image size.",
        validator=attrs.validators.optional(attrs.validators.in_(CONV_SIZES)),
    )
    channels: int | None = option(
        None,
        doc="1 or 3. Default: the dataset's channels.",
        validator=attrs.validators.optional(attrs.validators.in_((1, 3))),
    )
