"""dltoolkit-gan: GAN recipes and models for dltoolkit.

Names are imported on first use (PEP 562), so that loading the plugin to register it does not
import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "DcganConfig": "dltoolkit_gan.options",
    "GanRecipeConfig": "dltoolkit_gan.options",
    "MlpGanConfig": "dltoolkit_gan.options",
    "REPORTS": "dltoolkit_gan.options",
    "GanModel": "dltoolkit_gan.models",
    "ClassConditionalSampler": "dltoolkit_gan.recipe",
    "ClusterSampler": "dltoolkit_gan.recipe",
    "ClusterShares": "dltoolkit_gan.clusters",
    "kmeans": "dltoolkit_gan.clusters",
    "LOSSES": "dltoolkit_gan.options",
    "apply_spectral_norm": "dltoolkit_gan.recipe",
    "cdcgan": "dltoolkit_gan.models",
    "cgan": "dltoolkit_gan.models",
    "diff_augment": "dltoolkit_gan.augment",
    "discriminator_loss": "dltoolkit_gan.losses",
    "generator_loss": "dltoolkit_gan.losses",
    "gradient_penalty": "dltoolkit_gan.losses",
    "dcgan": "dltoolkit_gan.models",
    "dcgan_init": "dltoolkit_gan.models",
    "mlp_gan": "dltoolkit_gan.models",
    "StyleGan2Config": "dltoolkit_gan.options",
    "stylegan2": "dltoolkit_gan.stylegan2",
    "cstylegan2": "dltoolkit_gan.stylegan2",
    "r1_penalty": "dltoolkit_gan.regularisers",
    "path_length_penalty": "dltoolkit_gan.regularisers",
    "gan_offers": "dltoolkit_gan.recipe",
    "make_gan_step": "dltoolkit_gan.recipe",
    "train_gan": "dltoolkit_gan.recipe",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'dltoolkit_gan' has no attribute {name!r}")
