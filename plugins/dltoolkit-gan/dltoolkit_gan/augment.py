"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

The same random, differentiable transformations are applied to real and generated images
whenever the discriminator sees them (in its own step and in the generator's), so that D cannot
memorise a small training set while G still gets gradients through the augmentation. The three
policies follow the paper's reference code: ``color`` (brightness, saturation, contrast),
``translation`` (shift by up to 1/8 of the image size, zero padding) and ``cutout`` (zero a square
of half the image size). Randomness comes from torch's global RNG on the images' device, which
every checkpoint records, so augmented runs resume bit-exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def _rand(x: Tensor) -> Tensor:
    return torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device)


def color(x: Tensor) -> Tensor:
    """Random brightness (+-0.5), saturation (x0 to x2) and contrast (x0.5 to x1.5) per image."""
    x = x + (_rand(x) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_rand(x) * 2.0) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(x) + 0.5) + mean


def translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Shift each image by up to ``ratio`` of its height and width; what comes in is zero."""
    n, _, h, w = x.shape
    shift_h, shift_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-shift_h, shift_h + 1, size=(n, 1, 1), device=x.device)
    dx = torch.randint(-shift_w, shift_w + 1, size=(n, 1, 1), device=x.device)
    grid_n, grid_y, grid_x = torch.meshgrid(
        torch.arange(n, device=x.device),
        torch.arange(h, device=x.device),
        torch.arange(w, device=x.device),
        indexing="ij",
    )
    grid_y = torch.clamp(grid_y + dy + 1, 0, h + 1)
    grid_x = torch.clamp(grid_x + dx + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])
    return padded.permute(0, 2, 3, 1).contiguous()[grid_n, grid_y, grid_x].permute(0, 3, 1, 2)


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Zero one square of ``ratio`` of the image size per image, at a random place (it may be clipped)."""
    n, _, h, w = x.shape
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    off_y = torch.randint(0, h + (1 - size_h % 2), size=(n, 1, 1), device=x.device)
    off_x = torch.randint(0, w + (1 - size_w % 2), size=(n, 1, 1), device=x.device)
    grid_n, grid_y, grid_x = torch.meshgrid(
        torch.arange(n, device=x.device),
        torch.arange(size_h, device=x.device),
        torch.arange(size_w, device=x.device),
        indexing="ij",
    )
    grid_y = torch.clamp(grid_y + off_y - size_h // 2, min=0, max=h - 1)
    grid_x = torch.clamp(grid_x + off_x - size_w // 2, min=0, max=w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype, device=x.device)
    mask[grid_n, grid_y, grid_x] = 0
    return x * mask.unsqueeze(1)


POLICIES = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: Tensor, policies: Sequence[str]) -> Tensor:
    """``x`` (``(N, C, H, W)``) through each policy in order; ``x`` itself when there are none."""
    for name in policies:
        x = POLICIES[name](x)
    return x
