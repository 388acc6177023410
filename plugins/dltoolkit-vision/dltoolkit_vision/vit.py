"""``vit``: a Vision Transformer (Dosovitskiy et al. 2021) for the ``classify`` recipe.

The image is cut into square patches, each embedded linearly (a convolution whose kernel and stride
are the patch size), plus a learned position; a class token joins them (or the patches are averaged
at the end); pre-norm Transformer blocks (``torch.nn.TransformerEncoderLayer`` with ``norm_first``:
its self-attention runs through ``scaled_dot_product_attention``, flash or memory-efficient kernels
on GPUs) and a final norm lead to the class layer. Any image size the patch size divides fits, grey
or colour; like every classifier it maps images ``(N, C, H, W)`` in [-1, 1] to logits ``(N, K)``.

This module holds the options and the factory without importing torch (registration stays light);
the network is defined when a run first builds one.
"""

from __future__ import annotations

import functools
from typing import Any

import attrs

from dltoolkit import DataSpec, DltkError, option


def _divides_width(instance: Any, _attribute: attrs.Attribute, value: int) -> None:
    if instance.width % value:
        raise ValueError(f"{value} heads do not divide model.width = {instance.width} (each head gets width / heads)")


@attrs.frozen
class VitConfig:
    """Options of the ``vit`` model."""

    patch_size: int = option(
        4,
        doc="Side of the square patches, which must divide the image's height and width (2 for 8x8 digits, "
        "4 for 32x32).",
        validator=attrs.validators.ge(1),
    )
    width: int = option(128, doc="Width of the patch vectors (the model dimension).", validator=attrs.validators.ge(1))
    layers: int = option(6, doc="Transformer blocks.", validator=[attrs.validators.ge(1), attrs.validators.le(96)])
    heads: int = option(
        4, doc="Attention heads per block; must divide width.", validator=[attrs.validators.ge(1), _divides_width]
    )
    mlp_ratio: int = option(
        2, doc="Hidden width of each block's MLP, as a multiple of width.", validator=attrs.validators.ge(1)
    )
    dropout: float = option(
        0.0,
        doc="Dropout of attention and MLP outputs (0: none).",
        validator=[attrs.validators.ge(0.0), attrs.validators.lt(1.0)],
    )
    pooling: str = option(
        "cls",
        doc="'cls': a learned class token's output feeds the head; 'mean': the patches' outputs, averaged.",
        validator=attrs.validators.in_(("cls", "mean")),
    )


@functools.cache
def network_class() -> type:
    """The ``VisionTransformer`` module class (defined on first use, so that importing this module
    imports no torch)."""
    import torch
    from torch import Tensor, nn

    class VisionTransformer(nn.Module):
        """Patch embedding, position, class token, pre-norm blocks, final norm, class layer."""

        def __init__(self, config: VitConfig, image_shape: tuple[int, int, int], num_classes: int):
            super().__init__()
            channels, height, width = image_shape
            self.pooling = config.pooling
            self.patches = nn.Conv2d(channels, config.width, config.patch_size, stride=config.patch_size)
            count = (height // config.patch_size) * (width // config.patch_size)
            tokens = count + (1 if config.pooling == "cls" else 0)
            self.cls_token = nn.Parameter(torch.zeros(1, 1, config.width)) if config.pooling == "cls" else None
            self.position = nn.Parameter(torch.randn(1, tokens, config.width) * 0.02)
            layer = nn.TransformerEncoderLayer(
                config.width,
                config.heads,
                dim_feedforward=config.mlp_ratio * config.width,
                dropout=config.dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            self.blocks = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(config.width)
            self.head = nn.Linear(config.width, num_classes)
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    nn.init.trunc_normal_(module.weight, std=0.02)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)

        def forward(self, images: Tensor) -> Tensor:
            x = self.patches(images).flatten(2).transpose(1, 2)  # (N, patches, width)
            if self.cls_token is not None:
                x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], 1)
            x = self.norm(self.blocks(x + self.position))
            return self.head(x[:, 0] if self.cls_token is not None else x.mean(1))

    return VisionTransformer


def vit(config: VitConfig, *, data: DataSpec) -> Any:
    """A Vision Transformer classifier for images whose height and width the patch size divides."""
    if not data.num_classes:
        raise DltkError(f"model.name: the model 'vit' classifies, but the data ({data.describe()}) has no labels")
    shape = tuple(data.shape)
    if len(shape) != 3:
        raise DltkError(f"model.name: 'vit' takes images (channels x height x width), got {data.describe()}")
    channels, height, width = shape
    if height % config.patch_size or width % config.patch_size:
        raise DltkError(
            f"model.patch_size: {config.patch_size} does not divide the {height}x{width} images; "
            "choose a divisor of both sides"
        )
    model = network_class()(config, (channels, height, width), int(data.num_classes))
    model.spec = data
    return model
