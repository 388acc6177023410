"""GAN models: an MLP GAN and DCGAN (Radford et al. 2015) for any power-of-two size."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dltoolkit import DataSpec, DltkError
from dltoolkit_gan.options import DCGAN_SIZES, DcganConfig, MlpGanConfig, StyleGan2Config


@attrs.define
class GanModel:
    """What a model component gives the ``gan`` recipe: a generator mapping noise
    ``(N, latent_dim)`` to images in [-1, 1] (tanh output) and a discriminator returning one
    logit per image (no sigmoid: the losses are computed on logits).

    A class-conditional model also sets ``num_classes``: its generator is then called as
    ``generator(z, labels)`` and its discriminator as ``discriminator(images, labels)``, labels
    being int64 class indices ``(N,)``; the recipe trains it on the dataset's labels, and its runs
    draw a chosen class (``dltk generate --label``).

    A self-conditioned model (``self_conditioned``, an unconditional model with ``model.clusters``)
    is built as a class-conditional one of ``num_classes`` clusters: the recipe finds the clusters
    in the training images and trains it on them instead of on labels.

    The recipe reads only these attributes, so a model plugin may return any object that
    has them (a ``types.SimpleNamespace`` will do; ``num_classes`` and ``self_conditioned`` may be
    left out) without importing this package; it registers its component with ``provides="gan"``."""

    generator: nn.Module
    discriminator: nn.Module
    latent_dim: int
    num_classes: int | None = None
    self_conditioned: bool = False


def _with_labels(x: Tensor, labels: Tensor | None, num_classes: int) -> Tensor:
    """``x`` (flattened) with the one-hot ``labels`` appended, for conditional inputs."""
    if not num_classes:
        return x
    if labels is None:
        raise TypeError("a class-conditional network needs labels")
    return torch.cat([x.flatten(1), F.one_hot(labels.long(), num_classes).to(x.dtype)], dim=1)


def minibatch_stddev(h: Tensor) -> Tensor:
    """One feature per row, the same for the whole batch: the standard deviation of each feature of
    ``h`` ``(N, F)`` across the batch, averaged over the features (Karras et al. 2018's minibatch
    standard deviation, one group). A batch of near-identical images gets a small value, which D
    learns to read as generated."""
    return h.std(dim=0, unbiased=False).mean().expand(h.shape[0], 1)


# --- MLP GAN ------------------------------------------------------------------------------


class MlpGenerator(nn.Module):
    """Linear + LeakyReLU 0.2 layers, tanh output; with ``num_classes``, the one-hot class is appended to z."""

    def __init__(self, latent_dim: int, widths: Sequence[int], image_shape: tuple[int, int, int], num_classes: int = 0):
        super().__init__()
        self.image_shape = image_shape
        self.num_classes = num_classes
        layers: list[nn.Module] = []
        size = latent_dim + num_classes
        for width in widths:
            layers += [nn.Linear(size, width), nn.LeakyReLU(0.2, inplace=True)]
            size = width
        layers += [nn.Linear(size, math.prod(image_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.net(_with_labels(z, labels, self.num_classes)).view(z.shape[0], *self.image_shape)


class MlpDiscriminator(nn.Module):
    """Linear + LeakyReLU 0.2 layers to one logit; with ``num_classes``, the one-hot class is appended
    to the flattened image (Mirza & Osindero 2014); with ``minibatch_std``, the last layer also reads
    :func:`minibatch_stddev` of the features before it."""

    def __init__(
        self,
        widths: Sequence[int],
        image_shape: tuple[int, int, int],
        dropout: float = 0.0,
        num_classes: int = 0,
        minibatch_std: bool = False,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.minibatch_std = minibatch_std
        layers: list[nn.Module] = [nn.Flatten()]
        size = math.prod(image_shape) + num_classes
        for width in widths:
            layers += [nn.Linear(size, width), nn.LeakyReLU(0.2, inplace=True)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            size = width
        layers.append(nn.Linear(size + int(minibatch_std), 1))
        self.net = nn.Sequential(*layers)  # one Sequential: checkpoint keys as before minibatch_std

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        h = _with_labels(x, labels, self.num_classes)
        for layer in itertools.islice(self.net, len(self.net) - 1):  # no new Sequential per call
            h = layer(h)
        if self.minibatch_std:
            h = torch.cat([h, minibatch_stddev(h)], dim=1)
        return self.net[-1](h).view(-1)


def mlp_gan(config: MlpGanConfig, *, image_shape: tuple[int, int, int]) -> GanModel:
    """Fully connected GAN (Goodfellow et al. 2014 style) for small images such as MNIST."""
    widths = [config.hidden_dim * 2**i for i in range(config.depth)]
    k = config.clusters or 0
    return GanModel(
        generator=MlpGenerator(config.latent_dim, widths, image_shape, num_classes=k),
        discriminator=MlpDiscriminator(
            list(reversed(widths)), image_shape, config.dropout, num_classes=k, minibatch_std=config.minibatch_std
        ),
        latent_dim=config.latent_dim,
        num_classes=k or None,
        self_conditioned=bool(k),
    )


def _classes(data: DataSpec | None, model: str, clusters: int | None = None) -> int:
    if clusters:
        raise DltkError(
            f"model.clusters: {model} is conditioned on the dataset's labels; clusters are for the "
            "unconditional models (mlp-gan, dcgan, stylegan2), which they make self-conditioned"
        )
    if data is None or not data.num_classes:
        shown = data.describe() if data is not None else "no description"
        raise DltkError(
            f"model: {model} draws class-conditionally and needs labelled images, the dataset gives {shown} "
            "without classes; use a labelled dataset or an unconditional model"
        )
    return int(data.num_classes)


def cgan(config: MlpGanConfig, *, image_shape: tuple[int, int, int], data: DataSpec | None = None) -> GanModel:
    """Class-conditional MLP GAN (Mirza & Osindero 2014): the one-hot class joins z and the image."""
    k = _classes(data, "cgan", config.clusters)
    widths = [config.hidden_dim * 2**i for i in range(config.depth)]
    return GanModel(
        generator=MlpGenerator(config.latent_dim, widths, image_shape, num_classes=k),
        discriminator=MlpDiscriminator(
            list(reversed(widths)), image_shape, config.dropout, num_classes=k, minibatch_std=config.minibatch_std
        ),
        latent_dim=config.latent_dim,
        num_classes=k,
    )


# --- DCGAN --------------------------------------------------------------------------------


class DcganGenerator(nn.Module):
    """Transposed convolutions from 4x4 up to ``image_size``, BatchNorm + ReLU, tanh output."""

    def __init__(self, latent_dim: int, base: int, image_size: int, channels: int, num_classes: int = 0):
        super().__init__()
        self.num_classes = num_classes
        levels = int(math.log2(image_size)) - 2
        mults = [2 ** (levels - 1 - i) for i in range(levels)]
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim + num_classes, base * mults[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(base * mults[0]),
            nn.ReLU(True),
        ]
        for a, b in itertools.pairwise(mults):
            layers += [
                nn.ConvTranspose2d(base * a, base * b, 4, 2, 1, bias=False),
                nn.BatchNorm2d(base * b),
                nn.ReLU(True),
            ]
        layers += [nn.ConvTranspose2d(base * mults[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        z = _with_labels(z, labels, self.num_classes)
        return self.net(z.view(z.shape[0], -1, 1, 1))


class DcganDiscriminator(nn.Module):
    """Strided convolutions down to 4x4, LeakyReLU 0.2, BatchNorm except on the first layer; logits."""

    def __init__(self, base: int, image_size: int, channels: int, norm: str = "batch"):
        super().__init__()
        levels = int(math.log2(image_size)) - 2
        mults = [2**i for i in range(levels)]
        layers: list[nn.Module] = [nn.Conv2d(channels, base, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        for a, b in itertools.pairwise(mults):
            layers += [
                nn.Conv2d(base * a, base * b, 4, 2, 1, bias=norm == "none"),
                *_norm(norm, base * b),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers.append(nn.Conv2d(base * mults[-1], 1, 4, 1, 0, bias=False))
        self.net = nn.Sequential(*layers)
        self.feature_channels = base * mults[-1]

    def features(self, x: Tensor) -> Tensor:
        """The 4x4 feature maps the last convolution reads."""
        return self.net[:-1](x)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).view(-1)


def _norm(kind: str, channels: int) -> list[nn.Module]:
    if kind == "batch":
        return [nn.BatchNorm2d(channels)]
    if kind == "layer":  # LayerNorm over each image's (C, H, W): one group
        return [nn.GroupNorm(1, channels)]
    return []


def dcgan_init(module: nn.Module) -> None:
    """DCGAN initialisation: conv weights N(0, 0.02); BatchNorm weights N(1, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def declared_shape_problems(config: DcganConfig | StyleGan2Config, image_shape: tuple[int, int, int]) -> list[str]:
    """The lines for a model's optional ``image_size``/``channels`` that disagree with the data's images."""
    channels, height, width = image_shape
    problems = []
    if config.image_size is not None and config.image_size != height:
        problems.append(
            f"model.image_size: {config.image_size} but the dataset gives {height}x{width} images; "
            f"set dataset.image_size = {config.image_size}"
        )
    if config.channels is not None and config.channels != channels:
        problems.append(
            f"model.channels: {config.channels} but the dataset gives {channels}-channel images; "
            f"set dataset.channels = {config.channels}"
        )
    return problems


def _dcgan_problems(config: DcganConfig, image_shape: tuple[int, int, int], name: str) -> None:
    _, height, width = image_shape
    problems = []
    if height != width or height not in DCGAN_SIZES:
        problems.append(
            f"model: {name} needs square images of 16, 32, 64 or 128 pixels, the dataset gives "
            f"{height}x{width}; set dataset.image_size (for example 32 or 64)"
        )
    problems += declared_shape_problems(config, image_shape)
    if problems:
        raise DltkError(problems)


def dcgan(config: DcganConfig, *, image_shape: tuple[int, int, int]) -> GanModel:
    """DCGAN (Radford et al. 2015): convolutional G and D for 16 to 128 pixel square images."""
    _dcgan_problems(config, image_shape, "dcgan")
    if config.clusters:  # self-conditioned: cdcgan's networks, on clusters the recipe finds
        return _conditional_dcgan(config, image_shape, config.clusters, self_conditioned=True)
    channels, height, _ = image_shape
    generator = DcganGenerator(config.latent_dim, config.base_channels, height, channels)
    discriminator = DcganDiscriminator(config.base_channels, height, channels, config.d_norm)
    generator.apply(dcgan_init)
    discriminator.apply(dcgan_init)
    return GanModel(generator=generator, discriminator=discriminator, latent_dim=config.latent_dim)


class ProjectionDiscriminator(nn.Module):
    """A DCGAN discriminator with a projection head (Miyato & Koyama 2018):
    ``D(x, y) = head(phi(x)) + <embed(y), sum over positions of phi(x)>``."""

    def __init__(self, base: int, image_size: int, channels: int, num_classes: int, norm: str = "batch"):
        super().__init__()
        self.body = DcganDiscriminator(base, image_size, channels, norm)
        self.embed = nn.Embedding(num_classes, self.body.feature_channels)
        nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        if labels is None:
            raise TypeError("a class-conditional network needs labels")
        h = self.body.features(x)
        unconditional = self.body.net[-1](h).view(-1)
        return unconditional + (self.embed(labels.long()) * h.sum(dim=(2, 3))).sum(dim=1)


def cdcgan(config: DcganConfig, *, image_shape: tuple[int, int, int], data: DataSpec | None = None) -> GanModel:
    """Class-conditional DCGAN: one-hot class joined to z in G, a projection discriminator (Miyato & Koyama 2018)."""
    _dcgan_problems(config, image_shape, "cdcgan")
    return _conditional_dcgan(config, image_shape, _classes(data, "cdcgan", config.clusters))


def _conditional_dcgan(
    config: DcganConfig, image_shape: tuple[int, int, int], k: int, *, self_conditioned: bool = False
) -> GanModel:
    channels, height, _ = image_shape
    generator = DcganGenerator(config.latent_dim, config.base_channels, height, channels, num_classes=k)
    discriminator = ProjectionDiscriminator(config.base_channels, height, channels, k, config.d_norm)
    generator.apply(dcgan_init)
    discriminator.body.apply(dcgan_init)
    return GanModel(generator, discriminator, config.latent_dim, k, self_conditioned)
