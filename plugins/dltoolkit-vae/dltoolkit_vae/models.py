"""VAE models: an MLP VAE and a convolutional VAE (DCGAN-shaped) for any power-of-two size."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import attrs
import torch
from torch import Tensor, nn

from dltoolkit import DltkError
from dltoolkit_vae.options import CONV_SIZES, ConvVaeConfig, MlpVaeConfig


@attrs.define
class VaeModel:
    """What a model component gives the ``vae`` recipe: an encoder, a decoder and ``latent_dim``.

    * ``encoder`` maps images ``(N, C, H, W)`` in [-1, 1] to ``(mu, logvar)``, each
      ``(N, latent_dim)``: the mean and log-variance of the Gaussian q(z | x).
    * ``decoder`` maps latent vectors ``(N, latent_dim)`` to per-pixel logits ``(N, C, H, W)``
      (no output activation: the reconstruction losses are computed on logits). The image they
      stand for, in [-1, 1], is ``2 * sigmoid(logits) - 1 = tanh(logits / 2)``
      (:class:`ImageFromLogits`).

    The recipe reads only these three attributes, so a model plugin may return any object that
    has them (a ``types.SimpleNamespace`` will do) without importing this package; it registers
    its component with ``provides="vae"``."""

    encoder: nn.Module
    decoder: nn.Module
    latent_dim: int


class ImageFromLogits(nn.Module):
    """Decoder logits to images in [-1, 1]: ``tanh(logits / 2)``, which is ``2 * sigmoid(logits) - 1``."""

    def forward(self, logits: Tensor) -> Tensor:
        return torch.tanh(logits * 0.5)


# --- MLP VAE ------------------------------------------------------------------------------


class MlpEncoder(nn.Module):
    def __init__(self, widths: Sequence[int], image_shape: tuple[int, int, int], latent_dim: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        size = math.prod(image_shape)
        for width in widths:
            layers += [nn.Linear(size, width), nn.LeakyReLU(0.2, inplace=True)]
            size = width
        self.net = nn.Sequential(*layers)
        self.head = nn.Linear(size, 2 * latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.head(self.net(x)).chunk(2, dim=1)
        return mu, logvar


class MlpDecoder(nn.Module):
    def __init__(self, latent_dim: int, widths: Sequence[int], image_shape: tuple[int, int, int]):
        super().__init__()
        self.image_shape = image_shape
        layers: list[nn.Module] = []
        size = latent_dim
        for width in widths:
            layers += [nn.Linear(size, width), nn.LeakyReLU(0.2, inplace=True)]
            size = width
        layers.append(nn.Linear(size, math.prod(image_shape)))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(z.shape[0], *self.image_shape)


def mlp_vae(config: MlpVaeConfig, *, image_shape: tuple[int, int, int]) -> VaeModel:
    """Fully connected VAE (Kingma & Welling 2014) for small images such as digits and MNIST."""
    widths = [config.hidden_dim * 2**i for i in range(config.depth)]
    return VaeModel(
        encoder=MlpEncoder(list(reversed(widths)), image_shape, config.latent_dim),
        decoder=MlpDecoder(config.latent_dim, widths, image_shape),
        latent_dim=config.latent_dim,
    )


# --- convolutional VAE --------------------------------------------------------------------


class ConvEncoder(nn.Module):
    """Strided convolutions down to 4x4 (LeakyReLU 0.2, BatchNorm after the first), then a 4x4
    convolution to ``mu`` and ``logvar``."""

    def __init__(self, base: int, image_size: int, channels: int, latent_dim: int):
        super().__init__()
        levels = int(math.log2(image_size)) - 2
        mults = [2**i for i in range(levels)]
        layers: list[nn.Module] = [nn.Conv2d(channels, base, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        for a, b in itertools.pairwise(mults):
            layers += [
                nn.Conv2d(base * a, base * b, 4, 2, 1, bias=False),
                nn.BatchNorm2d(base * b),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers.append(nn.Conv2d(base * mults[-1], 2 * latent_dim, 4, 1, 0))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.net(x).flatten(1).chunk(2, dim=1)
        return mu, logvar


class ConvDecoder(nn.Module):
    """Transposed convolutions from 4x4 up to ``image_size`` (BatchNorm + ReLU); logits out."""

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
        layers.append(nn.ConvTranspose2d(base * mults[-1], channels, 4, 2, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


def conv_vae(config: ConvVaeConfig, *, image_shape: tuple[int, int, int]) -> VaeModel:
    """Convolutional VAE (DCGAN-shaped encoder and decoder) for 16 to 128 pixel square images."""
    channels, height, width = image_shape
    problems = []
    if height != width or height not in CONV_SIZES:
        problems.append(
            f"model: conv-vae needs square images of 16, 32, 64 or 128 pixels, the dataset gives "
            f"{height}x{width}; set dataset.image_size (for example 32 or 64)"
        )
    if channels not in (1, 3):
        problems.append(
            f"model: conv-vae needs 1- or 3-channel images, the dataset gives {channels}; set dataset.channels"
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
    return VaeModel(
        encoder=ConvEncoder(config.base_channels, height, channels, config.latent_dim),
        decoder=ConvDecoder(config.latent_dim, config.base_channels, height, channels),
        latent_dim=config.latent_dim,
    )
