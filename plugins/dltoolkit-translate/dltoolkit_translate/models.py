"""The networks of pix2pix and CycleGAN, after junyanz/pytorch-CycleGAN-and-pix2pix (``networks.py``).

* :class:`UnetGenerator`: an encoder-decoder with skip connections between mirrored layers,
  downsampling by 2 (4x4 convolutions, stride 2) down to 1x1, so square images of a power of
  two; its channels double from ``ngf`` up to ``8 * ngf`` (pix2pix's ``unet_256`` is 256 pixels).
* :class:`ResnetGenerator`: 7x7 convolution, two stride-2 downsamplings, ``blocks`` residual
  blocks, two upsamplings, 7x7 convolution (Johnson et al. 2016; CycleGAN's ``resnet_9blocks``).
* :class:`PatchDiscriminator`: ``d_layers`` stride-2 4x4 convolutions, then two stride-1 ones,
  giving one logit per patch (3 layers: 70x70 patches).

Weights start N(0, 0.02) (dltoolkit-gan's ``dcgan_init``, the reference's ``init_type='normal'``).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import attrs
import torch
from torch import Tensor, nn

from dltoolkit import DataSpec, DltkError
from dltoolkit_gan import dcgan_init
from dltoolkit_translate.options import CycleGanModelConfig, Pix2PixModelConfig

UNET_SIZES = (16, 32, 64, 128, 256)


def norm_layer(norm: str) -> Any:
    """The reference's normalisations: BatchNorm (affine, running statistics) or InstanceNorm (not affine)."""
    if norm == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)


class UnetBlock(nn.Module):
    """One level of the U-Net: down, the inner levels, up; its input is concatenated to its output
    (except at the outermost level, which returns the image)."""

    def __init__(
        self,
        outer: int,
        inner: int,
        *,
        in_channels: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: Any = nn.BatchNorm2d,
        dropout: bool = False,
        out_channels: int | None = None,
    ):
        super().__init__()
        self.outermost = outermost
        bias = getattr(norm, "func", norm) is nn.InstanceNorm2d  # the reference: conv biases only under InstanceNorm
        in_channels = outer if in_channels is None else in_channels
        down_conv = nn.Conv2d(in_channels, inner, kernel_size=4, stride=2, padding=1, bias=bias)
        if outermost:
            up = nn.ConvTranspose2d(inner * 2, out_channels or outer, kernel_size=4, stride=2, padding=1)
            layers = [down_conv, submodule, nn.ReLU(True), up, nn.Tanh()]
        elif innermost:
            up = nn.ConvTranspose2d(inner, outer, kernel_size=4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down_conv, nn.ReLU(True), up, norm(outer)]
        else:
            up = nn.ConvTranspose2d(inner * 2, outer, kernel_size=4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down_conv, norm(inner), submodule, nn.ReLU(True), up, norm(outer)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*[layer for layer in layers if layer is not None])

    def forward(self, x: Tensor) -> Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """The U-Net of pix2pix for square images of ``size`` = 2^k pixels (k downsamplings to 1x1).

    Level ``i`` (0 outermost) has ``ngf * min(2^i, 8)`` filters; the levels of ``8 * ngf`` filters
    below the first such and above the innermost use dropout when ``dropout`` (for 256 pixels:
    the reference's three dropout blocks)."""

    def __init__(
        self, in_channels: int, out_channels: int, size: int, ngf: int = 64, norm: str = "batch", dropout=True
    ):
        super().__init__()
        depth = int(math.log2(size))
        layer = norm_layer(norm)
        widths = [ngf * min(2**i, 8) for i in range(depth)]
        block: nn.Module = UnetBlock(widths[-2], widths[-1], innermost=True, norm=layer)
        for i in range(depth - 2, 0, -1):
            drop = dropout and widths[i - 1] == widths[i] == 8 * ngf
            block = UnetBlock(widths[i - 1], widths[i], submodule=block, norm=layer, dropout=drop)
        self.model = UnetBlock(
            widths[0],
            widths[0],
            in_channels=in_channels,
            out_channels=out_channels,
            submodule=block,
            outermost=True,
            norm=layer,
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class ResnetBlock(nn.Module):
    """x + (reflection pad, 3x3 conv, norm, ReLU, [dropout], reflection pad, 3x3 conv, norm)(x)."""

    def __init__(self, dim: int, norm: Any, dropout: bool, bias: bool):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm(dim), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm(dim)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


class ResnetGenerator(nn.Module):
    """CycleGAN's generator: c7s1-ngf, d2ngf, d4ngf, ``blocks`` x R4ngf, u2ngf, ungf, c7s1-out, tanh."""

    def __init__(
        self, in_channels: int, out_channels: int, ngf: int = 64, blocks: int = 9, norm: str = "instance", dropout=False
    ):
        super().__init__()
        layer = norm_layer(norm)
        bias = norm == "instance"
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7, bias=bias),
            layer(ngf),
            nn.ReLU(True),
        ]
        for i in range(2):
            mult = 2**i
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias), layer(ngf * mult * 2)]
            layers.append(nn.ReLU(True))
        layers += [ResnetBlock(ngf * 4, layer, dropout, bias) for _ in range(blocks)]
        for i in range(2):
            mult = 2 ** (2 - i)
            layers += [
                nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                layer(ngf * mult // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


def patch_output_size(size: int, d_layers: int) -> int:
    """The side of a PatchGAN's output map for ``size``-pixel inputs."""
    for _ in range(d_layers):
        size = (size + 2 - 4) // 2 + 1
    for _ in range(2):
        size = size + 2 - 4 + 1
    return size


class PatchDiscriminator(nn.Module):
    """The PatchGAN (NLayerDiscriminator): one logit per overlapping patch of the input."""

    def __init__(self, in_channels: int, ndf: int = 64, d_layers: int = 3, norm: str = "batch"):
        super().__init__()
        layer = norm_layer(norm)
        bias = norm == "instance"
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, d_layers):
            previous, mult = mult, min(2**n, 8)
            layers += [
                nn.Conv2d(ndf * previous, ndf * mult, 4, stride=2, padding=1, bias=bias),
                layer(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        previous, mult = mult, min(2**d_layers, 8)
        layers += [
            nn.Conv2d(ndf * previous, ndf * mult, 4, stride=1, padding=1, bias=bias),
            layer(ndf * mult),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


@attrs.define
class Pix2PixModel:
    """What a ``pix2pix-gan`` model gives the ``pix2pix`` recipe (tag ``"pix2pix"``).

    * ``generator`` maps inputs ``(N, C_a, H, W)`` in [-1, 1] to translations ``(N, C_b, H, W)`` in [-1, 1].
    * ``discriminator`` maps an input and an image stacked on channels, ``(N, C_a + C_b, H, W)``,
      to logits ``(N, 1, h, w)``, one per patch (a conditional discriminator).
    """

    generator: nn.Module
    discriminator: nn.Module


@attrs.define
class CycleGanModel:
    """What a ``cycle-gan`` model gives the ``cyclegan`` recipe (tag ``"cyclegan"``).

    * ``generator_ab`` maps domain A images ``(N, C_a, H, W)`` to domain B ``(N, C_b, H, W)``, all in
      [-1, 1]; ``generator_ba`` the other way.
    * ``discriminator_a`` and ``discriminator_b`` map images of their domain to patch logits ``(N, 1, h, w)``.
    """

    generator_ab: nn.Module
    generator_ba: nn.Module
    discriminator_a: nn.Module
    discriminator_b: nn.Module


def _shapes(data: DataSpec) -> tuple[int, int, int]:
    """``(input channels, output channels, size)`` of translation data."""
    channels, height, _ = (int(s) for s in data.shape)
    return int(data.extra.get("input_channels", channels)), channels, height


def _problems(config: Any, data: DataSpec, name: str) -> None:
    if data.kind not in ("image-pairs", "image-domains") or len(data.shape) != 3:
        raise DltkError(f"model: {name} translates images; the dataset gives {data.describe()}")
    _, height, width = (int(s) for s in data.shape)
    problems = []
    if config.generator == "unet" and (height != width or height not in UNET_SIZES):
        problems.append(
            f"model.generator: the 'unet' generator needs square images of 16, 32, 64, 128 or 256 pixels, the "
            f'dataset gives {height}x{width}; set the dataset\'s crop_size or use generator = "resnet"'
        )
    if config.generator == "resnet" and (height % 4 or width % 4 or min(height, width) < 8):
        problems.append(
            f"model.generator: the 'resnet' generator needs sides divisible by 4 (at least 8), the dataset gives "
            f"{height}x{width}"
        )
    if patch_output_size(min(height, width), config.d_layers) < 1:
        fits = max((n for n in range(1, 8) if patch_output_size(min(height, width), n) >= 1), default=0)
        problems.append(
            f"model.d_layers: {config.d_layers} strided layers leave no patch of {height}x{width} images; "
            + (f"use at most {fits}" if fits else "use larger images")
        )
    if problems:
        raise DltkError(problems)


def make_generator(config: Any, in_channels: int, out_channels: int, size: int) -> nn.Module:
    """The generator ``config.generator`` names, initialised N(0, 0.02)."""
    if config.generator == "unet":
        net: nn.Module = UnetGenerator(in_channels, out_channels, size, config.ngf, config.norm, config.dropout)
    else:
        net = ResnetGenerator(in_channels, out_channels, config.ngf, config.blocks, config.norm, config.dropout)
    net.apply(dcgan_init)
    return net


def make_discriminator(config: Any, in_channels: int) -> nn.Module:
    net = PatchDiscriminator(in_channels, config.ndf, config.d_layers, config.norm)
    net.apply(dcgan_init)
    return net


def pix2pix_gan(config: Pix2PixModelConfig, *, data: DataSpec) -> Pix2PixModel:
    """pix2pix's networks (Isola et al. 2017): a U-Net (or ResNet) generator and a conditional PatchGAN."""
    _problems(config, data, "pix2pix-gan")
    a, b, size = _shapes(data)
    return Pix2PixModel(make_generator(config, a, b, size), make_discriminator(config, a + b))


def cycle_gan(config: CycleGanModelConfig, *, data: DataSpec) -> CycleGanModel:
    """CycleGAN's networks (Zhu et al. 2017): two ResNet (or U-Net) generators and two PatchGANs."""
    _problems(config, data, "cycle-gan")
    a, b, size = _shapes(data)
    return CycleGanModel(
        make_generator(config, a, b, size),
        make_generator(config, b, a, size),
        make_discriminator(config, a),
        make_discriminator(config, b),
    )
