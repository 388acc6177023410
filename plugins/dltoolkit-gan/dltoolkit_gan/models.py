"""GAN models: an MLP GAN and DCGAN (Radford et al. 2015) for any power-of-two size."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import attrs
from torch import Tensor, nn

from dltoolkit import DltkError
from dltoolkit_gan.options import DCGAN_SIZES, DcganConfig, MlpGanConfig


@attrs.define
class GanModel:
    """What a model component gives the ``gan`` recipe: a generator mapping noise
    ``(N, latent_dim)`` to images in [-1, 1] (tanh output) and a discriminator returning one
    logit per image (no sigmoid: the losses are computed on logits).

    The recipe reads only these three attributes, so a model plugin may return any object that
    has them (a ``types.SimpleNamespace`` will do) without importing this package; it registers
    its component with ``provides="gan"``."""

    generator: nn.Module
    discriminator: nn.Module
    latent_dim: int


# --- MLP GAN ------------------------------------------------------------------------------


class MlpGenerator(nn.Module):
    def __init__(self, latent_dim: int, widths: Sequence[int], image_shape: tuple[int, int, int]):
        super().__init__()
        self.image_shape = image_shape
        layers: list[nn.Module] = []
        size = latent_dim
        for width in widths:
            layers += [nn.Linear(size, width), nn.LeakyReLU(0.2, inplace=True)]
            size = width
        layers += [nn.Linear(size, math.prod(image_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(z.shape[0], *self.image_shape)


class MlpDiscriminator(nn.Module):
    def __init__(self, widths: Sequence[int], image_shape: tuple[int, int, int], dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        size = math.prod(image_shape)
        for width in widths:
            layers += [nn.Linear(size, width), nn.LeakyReLU(0.2, inplace=True)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            size = width
        layers.append(nn.Linear(size, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).view(-1)


def mlp_gan(config: MlpGanConfig, *, image_shape: tuple[int, int, int]) -> GanModel:
    """Fully connected GAN (Goodfellow et al. 2014 style) for small images such as MNIST."""
    widths = [config.hidden_dim * 2**i for i in range(config.depth)]
    return GanModel(
        generator=MlpGenerator(config.latent_dim, widths, image_shape),
        discriminator=MlpDiscriminator(list(reversed(widths)), image_shape, config.dropout),
        latent_dim=config.latent_dim,
    )


# --- DCGAN --------------------------------------------------------------------------------


class DcganGenerator(nn.Module):
    """Transposed convolutions from 4x4 up to ``image_size``, BatchNorm + ReLU, tanh output."""

    def __init__(self, latent_dim: int, base: int, image_size: int, channels: int):
        super().__init__()
        levels = int(math.log2(image_size)) - 2
        mults = [2 ** (levels - 1 - i) for i in range(levels)]
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, base * mults[0], 4, 1, 0, bias=False),
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

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


class DcganDiscriminator(nn.Module):
    """Strided convolutions down to 4x4, LeakyReLU 0.2, BatchNorm except on the first layer; logits."""

    def __init__(self, base: int, image_size: int, channels: int):
        super().__init__()
        levels = int(math.log2(image_size)) - 2
        mults = [2**i for i in range(levels)]
        layers: list[nn.Module] = [nn.Conv2d(channels, base, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        for a, b in itertools.pairwise(mults):
            layers += [
                nn.Conv2d(base * a, base * b, 4, 2, 1, bias=False),
                nn.BatchNorm2d(base * b),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers.append(nn.Conv2d(base * mults[-1], 1, 4, 1, 0, bias=False))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).view(-1)


def dcgan_init(module: nn.Module) -> None:
    """DCGAN initialisation: conv weights N(0, 0.02); BatchNorm weights N(1, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def dcgan(config: DcganConfig, *, image_shape: tuple[int, int, int]) -> GanModel:
    """DCGAN (Radford et al. 2015): convolutional G and D for 16 to 128 pixel square images."""
    channels, height, width = image_shape
    problems = []
    if height != width or height not in DCGAN_SIZES:
        problems.append(
            f"model: dcgan needs square images of 16, 32, 64 or 128 pixels, the dataset gives "
            f"{height}x{width}; set dataset.image_size (for example 32 or 64)"
        )
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
    if problems:
        raise DltkError(problems)
    generator = DcganGenerator(config.latent_dim, config.base_channels, height, channels)
    discriminator = DcganDiscriminator(config.base_channels, height, channels)
    generator.apply(dcgan_init)
    discriminator.apply(dcgan_init)
    return GanModel(generator=generator, discriminator=discriminator, latent_dim=config.latent_dim)
