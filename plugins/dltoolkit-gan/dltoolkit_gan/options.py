"""The gan recipe's and models' options and declarations: plain data, no torch (registration stays light)."""

from __future__ import annotations

from typing import Any

import attrs

from dltoolkit import Scalar, option

REPORTS = (
    Scalar(
        "loss_d",
        "Discriminator (critic) loss of recipe.loss, on its logits or scores; with 'wasserstein-gp' it "
        "includes the gradient penalty.",
        group="loss",
    ),
    Scalar(
        "loss_g",
        "Generator loss of recipe.loss on this iteration's generated batch (also logged on critic-only "
        "iterations when recipe.n_critic > 1).",
        group="loss",
    ),
    Scalar(
        "d_x",
        "Mean D(x) on real images: the probability sigmoid(logit) for 'non-saturating' and 'minimax'; "
        "the raw score for 'hinge', 'least-squares' and 'wasserstein-gp' (d_x - d_g_z estimates the "
        "Wasserstein distance).",
        better="none",
        group="discriminator output",
    ),
    Scalar(
        "d_g_z",
        "Mean D(G(z)) on generated images, in the same units as d_x.",
        better="none",
        group="discriminator output",
    ),
)
STAT_NAMES = tuple(s.name for s in REPORTS)


LOSSES = {
    "non-saturating": "G maximises log D(G(z)), the practical form of the GAN game (Goodfellow et al. 2014)",
    "minimax": "G minimises log(1 - D(G(z))), the original saturating game (Goodfellow et al. 2014)",
    "hinge": "D: relu(1 - D(x)) + relu(1 + D(G(z))), G: -D(G(z)) (Lim & Ye 2017; Miyato et al. 2018)",
    "least-squares": "LSGAN, D: (D(x) - 1)^2 / 2 + D(G(z))^2 / 2, G: (D(G(z)) - 1)^2 / 2 (Mao et al. 2017)",
    "wasserstein-gp": "WGAN-GP, a critic without sigmoid, D(G(z)) - D(x) + gp_weight * (|grad D(x_hat)| - 1)^2, "
    "G: -D(G(z)) (Gulrajani et al. 2017)",
}
"""Each ``recipe.loss`` with its one-line definition and paper (the losses are in ``losses.py``)."""

WGAN_GP = "wasserstein-gp"
R1_LOSSES = ("non-saturating", "minimax")
"""Losses on logits, the logistic GAN for which R1 was analysed (Mescheder et al. 2018) and StyleGAN2 uses."""
R1_INTERVAL = 16
PATH_LENGTH_WEIGHT = 2.0
PATH_LENGTH_INTERVAL = 4
PATH_LENGTH_DECAY = 0.01
ADA_INTERVAL = 4
DIFFAUGMENT = ("color", "translation", "cutout")
RADFORD_BETAS = (0.5, 0.999)
GULRAJANI_BETAS = (0.0, 0.9)
WGAN_GP_WEIGHT = 10.0
WGAN_GP_N_CRITIC = 5
CLUSTER_SIDE = 16
"""Images are average-pooled to at most this many pixels a side before they are clustered."""
CLUSTERS_DOC = (
    "Self-conditioning (Liu et al. 2020, 'Diverse image generation via self-conditioned GANs'): G and D "
    "are conditioned on this many clusters of the training images instead of on labels, which the gan "
    f"recipe finds by k-means (k-means++ start, seeded by the recipe's seed) on the images average-pooled "
    f"to at most {CLUSTER_SIDE}x{CLUSTER_SIDE}; each generated batch takes the clusters of the real one, "
    "and samples draw each cluster with its share of the training images, so no label is used anywhere and "
    "the data's proportions are kept. Fewer in-between shapes and missing modes on data with distinct "
    "modes (digits); any dataset, labelled or not. The shares are in checkpoints and exports (module "
    "'clusters'); dltk generate --label 'cluster 3' draws one cluster. For the unconditional models "
    "(mlp-gan, dcgan, stylegan2); the class-conditional ones refuse it. Default: off (0 also turns it "
    "off, e.g. model.clusters=0 on the command line)."
)
"""The ``clusters`` option of the unconditional models."""


def _loss_doc() -> str:
    return "The GAN objective: " + "; ".join(f"'{name}': {text}" for name, text in LOSSES.items()) + "."


def _clusters_ok(value: int | None) -> None:
    if value and not 2 <= value <= 1000:
        raise ValueError(f"must be from 2 to 1000 clusters, or 0 for none, got {value}")


def _betas_ok(value: tuple[float, float] | None) -> None:
    if value is not None and not all(0.0 <= b < 1.0 for b in value):
        raise ValueError(f"each beta must be in [0, 1), got {list(value)}")


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
    betas_g: tuple[float, float] | None = option(
        None,
        doc="Adam betas of the generator. Default: the loss's own, [0.0, 0.9] for 'wasserstein-gp' "
        "(Gulrajani et al.), else [0.5, 0.999] (Radford et al.).",
        resumable=True,
    )
    betas_d: tuple[float, float] | None = option(
        None, doc="Adam betas of the discriminator. Default: the loss's own, as for betas_g.", resumable=True
    )
    loss: str = option(
        "non-saturating",
        doc=_loss_doc(),
        validator=attrs.validators.in_(tuple(LOSSES)),
    )
    gp_weight: float | None = option(
        None,
        doc=f"Gradient-penalty weight lambda of 'wasserstein-gp' (default {WGAN_GP_WEIGHT:g}, the paper's); "
        "the penalty is taken at random points between real and generated images. Other losses refuse it.",
        validator=attrs.validators.optional(attrs.validators.ge(0.0)),
    )
    n_critic: int | None = option(
        None,
        doc=f"Discriminator (critic) steps per generator step: the generator steps on every n_critic-th "
        f"iteration. Default: {WGAN_GP_N_CRITIC} for 'wasserstein-gp' (the paper's), else 1.",
        validator=attrs.validators.optional([attrs.validators.ge(1), attrs.validators.le(100)]),
    )
    spectral_norm: bool = option(
        False,
        doc="Spectral normalisation of every linear, convolution and embedding layer of the discriminator "
        "(Miyato et al. 2018), through torch.nn.utils.parametrizations.spectral_norm.",
    )
    ema_decay: float | None = option(
        None,
        doc="Keep an exponential moving average of the generator's weights with this decay per generator "
        "step (for example 0.999; Yazici et al. 2019), ramped up as min(ema_decay, (1 + t) / (10 + t)) over "
        "the first t steps; samples, evaluation, dltk generate and dltk export then use the averaged "
        "generator. Default: off (0 also turns it off, e.g. recipe.ema_decay=0 on the command line).",
        validator=attrs.validators.optional([attrs.validators.ge(0.0), attrs.validators.lt(1.0)]),
    )
    diffaugment: tuple[str, ...] = option(
        (),
        doc="Differentiable augmentation of the real and generated images the discriminator sees, in "
        "both steps (Zhao et al. 2020): any of 'color', 'translation' (up to 1/8 of the size), 'cutout' "
        "(a square of half the size). Helps on small datasets. Default: none.",
    )
    ada_target: float | None = option(
        None,
        doc="Adaptive augmentation, ADA-style (Karras et al. 2020, 'Training generative adversarial networks "
        "with limited data'): each recipe.diffaugment policy (all three when none is named) is applied to "
        "each image D sees with a probability p, raised when D overfits and lowered when it does not: every "
        f"{ADA_INTERVAL} iterations p moves by batch_size * {ADA_INTERVAL} / (ada_kimg * 1000) towards "
        "keeping r_t = E[sign(D(x_real))] at this target (the paper's 0.6). p starts at 0 and is kept in "
        "checkpoints (regularisers.augment_p). Default: off (recipe.diffaugment alone augments every image).",
        validator=attrs.validators.optional([attrs.validators.gt(0.0), attrs.validators.lt(1.0)]),
    )
    ada_kimg: float = option(
        500.0,
        doc="How fast ADA's p may move: from 0 to 1 in this many thousand real images at the most "
        "(NVlabs' 500; short runs on small data want far less, e.g. 20).",
        validator=attrs.validators.gt(0.0),
    )
    r1_gamma: float | None = option(
        None,
        doc="R1 regularisation (Mescheder et al. 2018): the discriminator's loss adds "
        "r1_gamma / 2 * |grad_x D(x)|^2 on real images, computed lazily every r1_interval-th iteration "
        "in a step of its own and weighted by r1_interval (Karras et al. 2020, StyleGAN2); its Adam "
        "learning rate and betas are then scaled by c = r1_interval / (r1_interval + 1) as lr * c and "
        "beta ** c, as NVlabs do. Only for the logistic losses 'non-saturating' and 'minimax'. "
        "Typical gamma: 10 at 256x256 (FFHQ), 0.01 on CIFAR-10. Default: off.",
        validator=attrs.validators.optional(attrs.validators.ge(0.0)),
    )
    r1_interval: int = option(
        R1_INTERVAL,
        doc="Iterations between two lazy R1 steps (1: every iteration, not lazy).",
        validator=[attrs.validators.ge(1), attrs.validators.le(1000)],
    )
    path_length: bool = option(
        False,
        doc=f"Path-length regularisation of a StyleGAN2 generator (Karras et al. 2020): every "
        f"{PATH_LENGTH_INTERVAL}th generator step, a step of its own on half a batch penalises "
        f"{PATH_LENGTH_WEIGHT:g} * (|J_w^T y| - a)^2, J_w the Jacobian of the image in the styles w, y "
        f"Gaussian noise over the pixels scaled by 1/sqrt(height * width), a a moving mean of the "
        f"lengths (decay {PATH_LENGTH_DECAY}, kept in checkpoints), weighted by the interval; the "
        "generator's Adam learning rate and betas are scaled lazily as for r1_gamma. Needs a model with "
        "a mapping network (stylegan2, cstylegan2).",
    )
    style_mixing: float = option(
        0.0,
        doc="Style mixing probability (Karras et al. 2019): with this probability a training batch's "
        "styles switch, at one random layer, to those of a second noise batch. NVlabs: 0.9, 0 on "
        "CIFAR-10. Needs a model with a mapping network (stylegan2, cstylegan2).",
        validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)],
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
    def _betas(self, attribute: Any, value: tuple[float, float] | None) -> None:
        _betas_ok(value)

    @gp_weight.validator
    def _gp_only_for_wgan(self, attribute: Any, value: float | None) -> None:
        if value is not None and self.loss != WGAN_GP:
            raise ValueError(
                f"only the 'wasserstein-gp' loss has a gradient penalty (recipe.loss is '{self.loss}'); "
                'remove gp_weight or set recipe.loss = "wasserstein-gp"'
            )

    @r1_gamma.validator
    def _r1_only_for_logistic(self, attribute: Any, value: float | None) -> None:
        if value is not None and self.loss not in R1_LOSSES:
            raise ValueError(
                f"R1 regularises the logistic GAN losses 'non-saturating' and 'minimax' (recipe.loss is "
                f"'{self.loss}'{', which has its own gp_weight' if self.loss == WGAN_GP else ''}); remove "
                'r1_gamma or set recipe.loss = "non-saturating"'
            )

    @precision.validator
    def _no_fp16_penalty(self, attribute: Any, value: str) -> None:
        if value == "fp16" and (self.r1_gamma or self.path_length):
            raise ValueError(
                "'fp16' cannot be used with recipe.r1_gamma or recipe.path_length (their penalties "
                "differentiate through gradients a GradScaler scales); use 'bf16' or 'fp32'"
            )
        if value == "fp16" and self.loss == WGAN_GP:
            raise ValueError(
                "'fp16' cannot be used with the 'wasserstein-gp' loss (its gradient penalty differentiates "
                "through gradients a GradScaler scales); use 'bf16' or 'fp32'"
            )

    @diffaugment.validator
    def _policies(self, attribute: Any, value: tuple[str, ...]) -> None:
        unknown = [p for p in value if p not in DIFFAUGMENT]
        if unknown:
            raise ValueError(f"unknown augmentation {unknown[0]!r}: choose from 'color', 'translation', 'cutout'")
        if len(set(value)) != len(value):
            raise ValueError(f"each augmentation at most once, got {list(value)}")

    @property
    def adam_betas(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """``(betas_g, betas_d)`` in effect: the options, else the loss's defaults."""
        default = GULRAJANI_BETAS if self.loss == WGAN_GP else RADFORD_BETAS
        return (tuple(self.betas_g or default), tuple(self.betas_d or default))  # type: ignore[return-value]

    @property
    def critic_steps(self) -> int:
        """Discriminator steps per generator step in effect."""
        if self.n_critic is not None:
            return self.n_critic
        return WGAN_GP_N_CRITIC if self.loss == WGAN_GP else 1

    @property
    def augment_policies(self) -> tuple[str, ...]:
        """The augmentation policies in effect: recipe.diffaugment, or all three under ADA when none is named."""
        if self.ada_target is not None and not self.diffaugment:
            return DIFFAUGMENT
        return self.diffaugment

    @property
    def penalty_weight(self) -> float:
        """The gradient-penalty weight in effect (0 for losses without one)."""
        if self.loss != WGAN_GP:
            return 0.0
        return WGAN_GP_WEIGHT if self.gp_weight is None else self.gp_weight


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
    minibatch_std: bool = option(
        False,
        doc="Give the discriminator's last layer one more input, the standard deviation of its features "
        "across the batch averaged over the features (Karras et al. 2018), so that it can tell a batch "
        "of too-similar images from a real one: fewer missing or rare modes. The statistic is over each "
        "process's share of the batch.",
    )
    clusters: int | None = option(None, doc=CLUSTERS_DOC, validator=lambda _s, _a, v: _clusters_ok(v))


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
    d_norm: str = option(
        "batch",
        doc="Normalisation in the discriminator's inner layers: 'batch' (BatchNorm, as Radford et al.), "
        "'layer' (LayerNorm over each image's features, as Gulrajani et al. advise for 'wasserstein-gp', "
        "whose per-image gradient penalty BatchNorm would mix across the batch) or 'none' (e.g. with "
        "recipe.spectral_norm).",
        validator=attrs.validators.in_(("batch", "layer", "none")),
    )
    clusters: int | None = option(None, doc=CLUSTERS_DOC, validator=lambda _s, _a, v: _clusters_ok(v))


STYLEGAN2_SIZES = (8, 16, 32, 64, 128, 256)


@attrs.frozen
class StyleGan2Config:
    latent_dim: int = option(512, doc="Size of the noise vector z.", validator=attrs.validators.ge(1))
    w_dim: int | None = option(
        None,
        doc="Size of the intermediate latent (style) vector w. Default: latent_dim.",
        validator=attrs.validators.optional(attrs.validators.ge(1)),
    )
    mapping_layers: int = option(
        8,
        doc="Fully connected layers of the mapping network z -> w (8 in the paper; 2 in NVlabs' CIFAR-10 "
        "setting and for small data).",
        validator=[attrs.validators.ge(1), attrs.validators.le(32)],
    )
    mapping_lr_mult: float = option(
        0.01,
        doc="Learning-rate multiplier of the mapping network (equalised learning rate; the paper's 0.01).",
        validator=attrs.validators.gt(0.0),
    )
    channel_base: int = option(
        16384,
        doc="Feature maps at resolution r are min(channel_base // r, channel_max) in G and D (NVlabs: 32768 "
        "with fmaps=1, as on CIFAR-10; 16384 with fmaps=0.5).",
        validator=attrs.validators.ge(1),
    )
    channel_max: int = option(512, doc="The most feature maps of any layer.", validator=attrs.validators.ge(1))
    mbstd_group: int = option(
        4,
        doc="Minibatch standard deviation group size of the discriminator (NVlabs: 4, 32 on CIFAR-10); a "
        "batch that it does not divide uses the largest group size below it that does.",
        validator=attrs.validators.ge(1),
    )
    d_architecture: str = option(
        "resnet",
        doc="'resnet': residual discriminator blocks (the StyleGAN2 default); 'orig': plain ones, as NVlabs' "
        "CIFAR-10 setting.",
        validator=attrs.validators.in_(("resnet", "orig")),
    )
    image_size: int | None = option(
        None,
        doc="8, 16, 32, 64, 128 or 256; the depth follows it. Default: the dataset's image size.",
        validator=attrs.validators.optional(attrs.validators.in_(STYLEGAN2_SIZES)),
    )
    channels: int | None = option(
        None,
        doc="1 or 3. Default: the dataset's channels.",
        validator=attrs.validators.optional(attrs.validators.in_((1, 3))),
    )
    clusters: int | None = option(None, doc=CLUSTERS_DOC, validator=lambda _s, _a, v: _clusters_ok(v))
