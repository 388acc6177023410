"""StyleGAN2 (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN") in pure PyTorch.

The layers follow NVlabs' stylegan2-ada-pytorch (``training/networks.py``) without its custom CUDA
ops: a mapping network z -> w, a synthesis network of modulated and demodulated 3x3 convolutions
with per-pixel noise inputs and a skip generator (each resolution adds its RGB to the upsampled
image of the one before), a residual discriminator with minibatch standard deviation, and the
equalised learning rate everywhere (weights drawn N(0, 1), scaled at run time by
``lr_mult / sqrt(fan_in)``). Resampling is upfirdn2d with the [1, 3, 3, 1] filter, written with
``conv2d``. A class-conditional model embeds the one-hot class next to z in the mapping network and
projects D's features on a mapping of the class (as NVlabs' conditional networks do).

Noise inputs are fresh Gaussian noise in training and a fixed buffer in ``eval()`` mode (NVlabs'
``noise_mode='const'``), so that samples are a function of z alone.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dltoolkit import DataSpec, DltkError
from dltoolkit_gan.models import GanModel, _classes, declared_shape_problems
from dltoolkit_gan.options import STYLEGAN2_SIZES, StyleGan2Config

LRELU_GAIN = math.sqrt(2.0)


def normalize_2nd_moment(x: Tensor, eps: float = 1e-8) -> Tensor:
    """``x / sqrt(mean(x^2) + eps)`` over the features of each row (pixel norm of z)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def lrelu(x: Tensor, gain: float = 1.0) -> Tensor:
    """Leaky ReLU 0.2 times ``sqrt(2) * gain`` (NVlabs' ``bias_act`` 'lrelu' with its default gain)."""
    return F.leaky_relu(x, 0.2) * (LRELU_GAIN * gain)


# --- resampling (upfirdn2d in plain torch) ------------------------------------------------------


def blur_filter(device: torch.device | None = None) -> Tensor:
    """The 4x4 filter outer([1, 3, 3, 1]) / 64, summing to 1."""
    f = torch.tensor([1.0, 3.0, 3.0, 1.0], device=device)
    f = torch.outer(f, f)
    return f / f.sum()


def upfirdn2d(
    x: Tensor, f: Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0), gain: float = 1.0
) -> Tensor:
    """Upsample by zero insertion, pad (``pad`` = before, after, on both axes), FIR-filter each
    channel with the 2-D filter ``f`` times ``gain``, keep every ``down``-th pixel."""
    n, c, h, w = x.shape
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    weight = (f * gain).flip([0, 1]).to(x.dtype)[None, None].expand(c, 1, *f.shape)
    x = F.conv2d(x, weight, groups=c)
    return x[:, :, ::down, ::down] if down > 1 else x


def upsample2d(x: Tensor, f: Tensor) -> Tensor:
    """Double height and width: zero insertion, then the filter with gain 4."""
    return upfirdn2d(x, f, up=2, pad=(2, 1), gain=4.0)


def downsample2d(x: Tensor, f: Tensor) -> Tensor:
    """Halve height and width: the filter, then every other pixel."""
    return upfirdn2d(x, f, down=2, pad=(1, 1))


# --- equalised-learning-rate layers ----------------------------------------------------------------


class FullyConnected(nn.Module):
    """A linear layer with the equalised learning rate: weight ~ N(0, 1) / lr_mult used as
    ``weight * lr_mult / sqrt(in)``, bias ``bias * lr_mult``; optional leaky ReLU (gain sqrt 2)."""

    def __init__(self, in_features: int, out_features: int, *, activation: bool = False, lr_mult: float = 1.0,
                 bias_init: float = 0.0):  # fmt: skip
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mult)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.weight_gain = lr_mult / math.sqrt(in_features)
        self.bias_gain = lr_mult
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)
        return lrelu(x) if self.activation else x


class Conv2dLayer(nn.Module):
    """A convolution with the equalised learning rate (``weight / sqrt(in * k * k)``), optional
    leaky ReLU times ``gain``, and ``down=2``: the filter before a stride-2 convolution."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, *, bias: bool = True,
                 activation: bool = True, down: int = 1):  # fmt: skip
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel * kernel)
        self.activation = activation
        self.down = down
        self.kernel = kernel
        self.register_buffer("resample_filter", blur_filter(), persistent=False)

    def forward(self, x: Tensor, gain: float = 1.0) -> Tensor:
        w = self.weight * self.weight_gain
        if self.down > 1 and self.kernel == 1:
            x = F.conv2d(downsample2d(x, self.resample_filter), w)
        elif self.down > 1:  # filter with padding so that the stride-2 convolution halves the size
            p = (4 - 2) + (self.kernel - 1)
            x = F.conv2d(upfirdn2d(x, self.resample_filter, pad=((p + 1) // 2, p // 2)), w, stride=2)
        else:
            x = F.conv2d(x, w, padding=self.kernel // 2)
        if self.bias is not None:
            x = x + self.bias.view(1, -1, 1, 1)
        return lrelu(x, gain) if self.activation else x * gain


def modulated_conv2d(x: Tensor, weight: Tensor, styles: Tensor, *, demodulate: bool = True, padding: int = 0,
                     eps: float = 1e-8, fused: bool = False) -> Tensor:  # fmt: skip
    """StyleGAN2's modulated convolution (its Eq. 1-3): each image ``i`` gets the weights
    ``w'[i, o, c] = s[i, c] * w[o, c]``, then, with ``demodulate``,
    ``w''[i, o, c] = w'[i, o, c] / sqrt(sum over c, k of w'[i, o, c, k]^2 + eps)``.
    ``x`` ``(N, C, H, W)``, ``weight`` ``(O, C, k, k)``, ``styles`` ``(N, C)``.

    ``fused``: one grouped convolution with the per-image weights; else (NVlabs' choice in
    training, much faster on a CPU) the same as ``conv(x * s) * d``: the input scaled by the
    styles, one shared convolution, the output scaled by the demodulation coefficients ``d``
    (computed as a matrix product of the squares, without the per-image weights)."""
    n, c, h, w = x.shape
    out = weight.shape[0]
    if not fused:
        x = F.conv2d(x * styles.reshape(n, c, 1, 1).to(x.dtype), weight.to(x.dtype), padding=padding)
        if demodulate:
            # sum over c, k of (s[c] w[o, c, k])^2 = sum over c of s[c]^2 * (sum over k of w[o, c, k]^2)
            coefs = (styles.square() @ weight.square().sum(dim=(2, 3)).t() + eps).rsqrt()
            x = x * coefs.reshape(n, out, 1, 1).to(x.dtype)
        return x
    wts = weight.unsqueeze(0) * styles.reshape(n, 1, c, 1, 1)
    if demodulate:
        wts = wts * (wts.square().sum(dim=(2, 3, 4)) + eps).rsqrt().reshape(n, out, 1, 1, 1)
    x = F.conv2d(x.reshape(1, n * c, h, w), wts.reshape(n * out, c, *weight.shape[2:]), padding=padding, groups=n)
    return x.reshape(n, out, *x.shape[2:])


class SynthesisLayer(nn.Module):
    """A modulated, demodulated 3x3 convolution (upsampling first with ``up=2``), per-pixel noise
    times a learned strength (0 at first), bias, leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, *, up: int = 1):
        super().__init__()
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.register_buffer("resample_filter", blur_filter(), persistent=False)
        self.up = up
        self.resolution = resolution

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        if self.up > 1:
            x = upsample2d(x, self.resample_filter)
        x = modulated_conv2d(x, self.weight, self.affine(w), padding=1)
        if self.training:
            noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device, dtype=x.dtype)
        else:
            noise = self.noise_const.to(x.dtype)
        x = x + noise * self.noise_strength
        return lrelu(x + self.bias.view(1, -1, 1, 1))


class ToRGB(nn.Module):
    """A modulated 1x1 convolution to the image channels, not demodulated, plus bias; linear."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int):
        super().__init__()
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        x = modulated_conv2d(x, self.weight, self.affine(w) * self.weight_gain, demodulate=False)
        return x + self.bias.view(1, -1, 1, 1)


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    """Feature maps at ``resolution``: ``min(channel_base // resolution, channel_max)`` (at least 1)."""
    return max(1, min(channel_base // resolution, channel_max))


# --- generator ------------------------------------------------------------------------------------


class MappingNetwork(nn.Module):
    """z (and the class) -> w: normalise z (and the class embedding) to unit second moment, then
    ``layers`` fully connected layers with leaky ReLU at ``lr_mult`` (0.01) the learning rate;
    ``w`` is broadcast to ``num_ws`` rows, one per style input."""

    def __init__(self, z_dim: int, w_dim: int, num_ws: int | None, layers: int, lr_mult: float, num_classes: int = 0):
        super().__init__()
        self.z_dim, self.num_ws, self.num_classes = z_dim, num_ws, num_classes
        self.embed = FullyConnected(num_classes, w_dim) if num_classes else None
        features = [z_dim + (w_dim if num_classes else 0)] + [w_dim] * layers
        self.net = nn.Sequential(
            *(FullyConnected(a, b, activation=True, lr_mult=lr_mult) for a, b in itertools.pairwise(features))
        )

    def forward(self, z: Tensor | None, labels: Tensor | None = None) -> Tensor:
        parts = []
        if self.z_dim:
            assert z is not None
            parts.append(normalize_2nd_moment(z.float()))
        if self.embed is not None:
            if labels is None:
                raise TypeError("a class-conditional network needs labels")
            one_hot = F.one_hot(labels.long(), self.num_classes).to(self.embed.weight.dtype)
            parts.append(normalize_2nd_moment(self.embed(one_hot)))
        w = self.net(torch.cat(parts, dim=1))
        return w if self.num_ws is None else w.unsqueeze(1).expand(-1, self.num_ws, -1)


class SynthesisBlock(nn.Module):
    """One resolution of the skip generator: (the learned 4x4 constant, or) an upsampling
    synthesis layer and a plain one, and ToRGB added to the upsampled image so far."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, image_channels: int):
        super().__init__()
        self.first = resolution == 4
        if self.first:
            self.const = nn.Parameter(torch.randn(out_channels, 4, 4))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution)
        self.torgb = ToRGB(out_channels, image_channels, w_dim)
        self.num_conv = 1 if self.first else 2
        self.register_buffer("resample_filter", blur_filter(), persistent=False)

    def forward(self, x: Tensor | None, img: Tensor | None, ws: Tensor) -> tuple[Tensor, Tensor]:
        """``ws``: ``(N, num_conv + 1, w_dim)``, the styles of the convolutions then of ToRGB."""
        if self.first:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
            x = self.conv1(x, ws[:, 0])
        else:
            assert x is not None
            x = self.conv1(self.conv0(x, ws[:, 0]), ws[:, 1])
        rgb = self.torgb(x, ws[:, self.num_conv])
        img = rgb if img is None else upsample2d(img, self.resample_filter) + rgb
        return x, img


class SynthesisNetwork(nn.Module):
    """w (one row per style input) -> image, from 4x4 up to ``resolution`` (skip architecture)."""

    def __init__(self, w_dim: int, resolution: int, image_channels: int, channel_base: int, channel_max: int):
        super().__init__()
        resolutions = [2**i for i in range(2, int(math.log2(resolution)) + 1)]
        self.blocks = nn.ModuleList()
        for res in resolutions:
            in_ch = channels_at(res // 2, channel_base, channel_max) if res > 4 else 0
            out_ch = channels_at(res, channel_base, channel_max)
            self.blocks.append(SynthesisBlock(in_ch, out_ch, w_dim, res, image_channels))
        self.num_ws = sum(b.num_conv for b in self.blocks) + 1

    def forward(self, ws: Tensor) -> Tensor:
        x = img = None
        index = 0
        for block in self.blocks:  # ToRGB shares its style with the next block's first convolution
            x, img = block(x, img, ws[:, index : index + block.num_conv + 1])
            index += block.num_conv
        assert img is not None
        return img


class StyleGan2Generator(nn.Module):
    """``generator(z, labels=None) -> images``: the mapping network, then the synthesis network.

    The output is not squashed (no tanh, as NVlabs'): it is trained towards images in [-1, 1],
    and clamped to [-1, 1] in ``eval()`` mode (samples, metrics, ``dltk generate``).
    ``style_mixing`` (a probability, training only) switches the batch's styles at one random
    layer to those of a second noise batch (Karras et al. 2019);
    ``return_ws`` also returns the styles ``(N, num_ws, w_dim)`` (path-length regularisation
    differentiates the images in them)."""

    def __init__(self, config: StyleGan2Config, resolution: int, image_channels: int, num_classes: int = 0):
        super().__init__()
        w_dim = config.w_dim or config.latent_dim
        self.latent_dim, self.num_classes = config.latent_dim, num_classes
        self.synthesis = SynthesisNetwork(w_dim, resolution, image_channels, config.channel_base, config.channel_max)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            config.latent_dim, w_dim, self.num_ws, config.mapping_layers, config.mapping_lr_mult, num_classes
        )

    def forward(self, z: Tensor, labels: Tensor | None = None, *, style_mixing: float = 0.0,
                return_ws: bool = False) -> Tensor | tuple[Tensor, Tensor]:  # fmt: skip
        ws = self.mapping(z, labels)
        if style_mixing > 0:
            ws = mix_styles(ws, self.mapping(torch.randn_like(z), labels), draw_cutoff(self.num_ws, style_mixing, z))
        img = self.synthesis(ws)
        if not self.training:  # samples, evaluation, dltk generate: in the data's range, as written
            img = img.clamp(-1.0, 1.0)
        return (img, ws) if return_ws else img


def draw_cutoff(num_ws: int, probability: float, like: Tensor) -> int:
    """NVlabs' style-mixing draw: a layer ``cutoff`` uniform in ``[1, num_ws)`` with ``probability``,
    else ``num_ws`` (no mixing); from torch's global RNG, so a resumed run draws the same."""
    cutoff = torch.randint(1, num_ws, (), device=like.device) if num_ws > 1 else torch.tensor(num_ws)
    mixed = torch.rand((), device=like.device) < probability
    return int(cutoff) if bool(mixed) else num_ws


def mix_styles(ws: Tensor, other: Tensor, cutoff: int) -> Tensor:
    """The styles ``ws`` for the inputs before ``cutoff``, ``other``'s from ``cutoff`` on."""
    return torch.cat([ws[:, :cutoff], other[:, cutoff:]], dim=1)


# --- discriminator --------------------------------------------------------------------------------


def minibatch_stddev_maps(x: Tensor, group_size: int) -> Tensor:
    """``x`` with one more feature map: in each group of ``group_size`` images (the largest divisor
    of the batch not above it), the standard deviation of every feature at every position across
    the group, averaged over features and positions (Karras et al. 2018; NVlabs' one channel)."""
    n, c, h, w = x.shape
    g = min(group_size, n)
    while n % g:
        g -= 1
    y = x.reshape(g, -1, 1, c, h, w)
    y = y - y.mean(dim=0)
    y = (y.square().mean(dim=0) + 1e-8).sqrt()
    y = y.mean(dim=(2, 3, 4)).reshape(-1, 1, 1, 1)
    y = y.repeat(g, 1, h, w)
    return torch.cat([x, y], dim=1)


class DiscriminatorBlock(nn.Module):
    """One resolution of the discriminator: (FromRGB in the first,) a 3x3 convolution, a 3x3 one
    that halves the size, and with ``residual`` a 1x1 downsampling skip; both paths times sqrt(1/2)."""

    def __init__(self, in_channels: int, out_channels: int, image_channels: int, first: bool, residual: bool):
        super().__init__()
        self.fromrgb = Conv2dLayer(image_channels, in_channels, 1) if first else None
        self.conv0 = Conv2dLayer(in_channels, in_channels, 3)
        self.conv1 = Conv2dLayer(in_channels, out_channels, 3, down=2)
        self.skip = (
            Conv2dLayer(in_channels, out_channels, 1, bias=False, activation=False, down=2) if residual else None
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.fromrgb is not None:
            x = self.fromrgb(x)
        if self.skip is None:
            return self.conv1(self.conv0(x))
        gain = math.sqrt(0.5)
        return self.skip(x, gain=gain) + self.conv1(self.conv0(x), gain=gain)


class StyleGan2Discriminator(nn.Module):
    """Residual (or plain) blocks down to 4x4, then minibatch standard deviation, a 3x3
    convolution, a fully connected layer and the output: one score per image, or, class-conditional,
    the projection of the features on a mapping of the class, scaled by ``1 / sqrt(dim)``."""

    def __init__(self, config: StyleGan2Config, resolution: int, image_channels: int, num_classes: int = 0):
        super().__init__()
        base, top = config.channel_base, config.channel_max
        resolutions = [2**i for i in range(int(math.log2(resolution)), 2, -1)]
        self.blocks = nn.ModuleList(
            DiscriminatorBlock(
                channels_at(res, base, top), channels_at(res // 2, base, top), image_channels,
                first=i == 0, residual=config.d_architecture == "resnet",
            )
            for i, res in enumerate(resolutions)
        )  # fmt: skip
        c4 = channels_at(4, base, top)
        self.mbstd_group = config.mbstd_group
        self.conv = Conv2dLayer(c4 + 1, c4, 3)
        self.fc = FullyConnected(c4 * 16, c4, activation=True)
        self.num_classes = num_classes
        self.out = FullyConnected(c4, c4 if num_classes else 1)
        self.mapping = (
            MappingNetwork(0, c4, None, config.mapping_layers, config.mapping_lr_mult, num_classes)
            if num_classes
            else None
        )

    def forward(self, img: Tensor, labels: Tensor | None = None) -> Tensor:
        x = img
        for block in self.blocks:
            x = block(x)
        x = self.conv(minibatch_stddev_maps(x, self.mbstd_group))
        x = self.out(self.fc(x.flatten(1)))
        if self.mapping is None:
            return x.view(-1)
        cmap = self.mapping(None, labels)
        return (x * cmap).sum(dim=1) / math.sqrt(cmap.shape[1])


# --- factories ------------------------------------------------------------------------------------


def _stylegan2_problems(config: StyleGan2Config, image_shape: tuple[int, int, int], name: str) -> None:
    channels, height, width = image_shape
    problems = []
    if height != width or height not in STYLEGAN2_SIZES:
        problems.append(
            f"model: {name} needs square images of a power-of-two size from 8 to 256 pixels, the dataset "
            f"gives {height}x{width}; set dataset.image_size (for example 32 or 64)"
        )
    if channels not in (1, 3):
        problems.append(f"model: {name} draws 1- or 3-channel images, the dataset gives {channels} channels")
    problems += declared_shape_problems(config, image_shape)
    if problems:
        raise DltkError(problems)


def stylegan2(config: StyleGan2Config, *, image_shape: tuple[int, int, int]) -> GanModel:
    """StyleGAN2 (Karras et al. 2020): mapping network, modulated convolutions, skip G, residual D."""
    _stylegan2_problems(config, image_shape, "stylegan2")
    channels, size, _ = image_shape
    k = config.clusters or 0  # self-conditioned: cstylegan2's networks, on clusters the recipe finds
    return GanModel(
        generator=StyleGan2Generator(config, size, channels, num_classes=k),
        discriminator=StyleGan2Discriminator(config, size, channels, num_classes=k),
        latent_dim=config.latent_dim,
        num_classes=k or None,
        self_conditioned=bool(k),
    )


def cstylegan2(config: StyleGan2Config, *, image_shape: tuple[int, int, int], data: DataSpec | None = None) -> GanModel:
    """Class-conditional StyleGAN2: the class embedded next to z in the mapping network, a projection D."""
    _stylegan2_problems(config, image_shape, "cstylegan2")
    k = _classes(data, "cstylegan2", config.clusters)
    channels, size, _ = image_shape
    return GanModel(
        generator=StyleGan2Generator(config, size, channels, num_classes=k),
        discriminator=StyleGan2Discriminator(config, size, channels, num_classes=k),
        latent_dim=config.latent_dim,
        num_classes=k,
    )
