"""The gan recipe's and models' options and declarations: plain data, no torch (registration stays light)."""

from __future__ import annotations

from typing import Any

import attrs

from dltoolkit import Scalar, option

REPORTS = (
    Scalar("loss_d", "Discriminator loss: BCE on logits, real images as 1 plus generated as 0.", group="loss"),
    Scalar("loss_g", "Generator loss (non-saturating: BCE of D(G(z)) against 1).", group="loss"),
    Scalar(
        "d_x",
        "Mean D(x): the discriminator's probability that real images are real.",
        better="none",
        group="discriminator output",
        bounds=(0.0, 1.0),
    ),
    Scalar(
        "d_g_z",
        "Mean D(G(z)): its probability that generated images are real.",
        better="none",
        group="discriminator output",
        bounds=(0.0, 1.0),
    ),
)
STAT_NAMES = tuple(s.name for s in REPORTS)


@attrs.frozen
class GanRecipeConfig:
    epochs: int = option(25, doc="Passes over the training data.", validator=attrs.validators.ge(1), resumable=True)
    batch_size: int = option(
        128, doc="Images per step (the last partial batch is dropped).", validator=attrs.validators.ge(1)
    )
    lr_g: float = option(
        2e-4, doc="Adam learning rate of the generator.", validator=attrs.validators.gt(0), resumable=True
    )
    lr_d: float = option(
        2e-4, doc="Adam learning rate of the discriminator.", validator=attrs.validators.gt(0), resumable=True
    )
    betas_g: tuple[float, float] = option((0.5, 0.999), doc="Adam betas of the generator.", resumable=True)
    betas_d: tuple[float, float] = option((0.5, 0.999), doc="Adam betas of the discriminator.", resumable=True)
    loss: str = option(
        "non-saturating",
        doc="'non-saturating' (G maximises log D(G(z)), the practical objective) or 'minimax' "
        "(G minimises log(1 - D(G(z))), Goodfellow's original saturating objective).",
        validator=attrs.validators.in_(("non-saturating", "minimax")),
    )
    precision: str = option(
        "fp32",
        doc="'fp32', 'bf16' or 'fp16' (autocast; fp16 adds a GradScaler).",
        validator=attrs.validators.in_(("fp32", "bf16", "fp16")),
    )
    channels_last: bool = option(False, doc="Use channels-last memory format for conv models and images.")
    log_every: int = option(
        50,
        doc="Log mean losses to metrics.jsonl every this many iterations.",
        validator=attrs.validators.ge(1),
        resumable=True,
    )
    num_workers: int = option(
        0, doc="DataLoader worker processes (for image-folder data).", validator=attrs.validators.ge(0), resumable=True
    )

    @betas_g.validator
    @betas_d.validator
    def _betas(self, attribute: Any, value: tuple[float, float]) -> None:
        if not all(0.0 <= b < 1.0 for b in value):
            raise ValueError(f"each beta must be in [0, 1), got {list(value)}")


# --- models ---------------------------------------------------------------------------------------


@attrs.frozen
class MlpGanConfig:
    latent_dim: int = option(64, doc="Size of the noise vector z.", validator=attrs.validators.ge(1))
    hidden_dim: int = option(
        256,
        doc="Width of the first hidden layer (G widens, D narrows by 2x a layer).",
        validator=attrs.validators.ge(1),
    )
    depth: int = option(
        2, doc="Hidden layers in each network.", validator=[attrs.validators.ge(1), attrs.validators.le(6)]
    )
    dropout: float = option(
        0.0,
        doc="Dropout after each hidden layer of the discriminator (helps sample diversity).",
        validator=[attrs.validators.ge(0.0), attrs.validators.lt(1.0)],
    )


DCGAN_SIZES = (16, 32, 64, 128)


@attrs.frozen
class DcganConfig:
    latent_dim: int = option(100, doc="Size of the noise vector z.", validator=attrs.validators.ge(1))
    base_channels: int = option(
        64, doc="Feature maps of the widest-resolution layer (the classic ngf/ndf).", validator=attrs.validators.ge(1)
    )
    image_size: int | None = option(
        None,
        doc="16, 32, 64 or 128; the depth follows it. Default: the dataset's image size.",
        validator=attrs.validators.optional(attrs.validators.in_(DCGAN_SIZES)),
    )
    channels: int | None = option(
        None,
        doc="1 or 3. Default: the dataset's channels.",
        validator=attrs.validators.optional(attrs.validators.in_((1, 3))),
    )
