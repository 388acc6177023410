"""dltoolkit-vae: the VAE recipe, models and held-out ELBO metric for dltoolkit.

Names are imported on first use (PEP 562), so that loading the plugin to register it does not
import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "REPORTS": "dltoolkit_vae.options",
    "ConvVaeConfig": "dltoolkit_vae.options",
    "MlpVaeConfig": "dltoolkit_vae.options",
    "VaeRecipeConfig": "dltoolkit_vae.options",
    "ImageFromLogits": "dltoolkit_vae.models",
    "VaeModel": "dltoolkit_vae.models",
    "conv_vae": "dltoolkit_vae.models",
    "mlp_vae": "dltoolkit_vae.models",
    "elbo": "dltoolkit_vae.metrics",
    "Mixture": "dltoolkit_vae.prior",
    "MixturePrior": "dltoolkit_vae.prior",
    "PriorFitter": "dltoolkit_vae.prior",
    "fit_mixture": "dltoolkit_vae.prior",
    "make_prior": "dltoolkit_vae.recipe",
    "trained_vae": "dltoolkit_vae.recipe",
    "MeanPerImage": "dltoolkit_vae.metrics",
    "VaeImages": "dltoolkit_vae.recipe",
    "elbo_terms": "dltoolkit_vae.recipe",
    "kl_divergence": "dltoolkit_vae.recipe",
    "kl_weight": "dltoolkit_vae.recipe",
    "make_eval_step": "dltoolkit_vae.recipe",
    "make_vae_step": "dltoolkit_vae.recipe",
    "reconstruction_loss": "dltoolkit_vae.recipe",
    "reparameterize": "dltoolkit_vae.recipe",
    "train_vae": "dltoolkit_vae.recipe",
    "vae_offers": "dltoolkit_vae.recipe",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'dltoolkit_vae' has no attribute {name!r}")
