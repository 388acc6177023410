"""A third-party plugin: one GAN model, registered through the ``dltoolkit`` entry point."""

from __future__ import annotations

import math

import attrs
from torch import nn

import dltoolkit
from dltoolkit_gan import GanModel


@attrs.frozen
class TinyGanConfig:
    latent_dim: int = dltoolkit.option(16, doc="Size of the noise vector.", validator=attrs.validators.ge(1))
    width: int = dltoolkit.option(32, doc="Hidden width of both networks.", validator=attrs.validators.ge(1))


def tiny_gan(config: TinyGanConfig, *, image_shape: tuple[int, int, int]) -> GanModel:
    """A one-hidden-layer GAN, the smallest model the gan recipe can train."""
    pixels = math.prod(image_shape)
    generator = nn.Sequential(
        nn.Linear(config.latent_dim, config.width),
        nn.ReLU(),
        nn.Linear(config.width, pixels),
        nn.Tanh(),
        nn.Unflatten(1, image_shape),
    )
    discriminator = nn.Sequential(
        nn.Flatten(),
        nn.Linear(pixels, config.width),
        nn.LeakyReLU(0.2),
        nn.Linear(config.width, 1),
        nn.Flatten(0),
    )
    return GanModel(generator=generator, discriminator=discriminator, latent_dim=config.latent_dim)


@dltoolkit.hookimpl
def dltk_register_models() -> list[dltoolkit.Component]:
    return [dltoolkit.Component("tiny-gan", tiny_gan, TinyGanConfig)]
