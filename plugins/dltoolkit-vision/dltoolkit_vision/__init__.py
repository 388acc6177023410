"""dltoolkit-vision: image classification and transfer learning for dltoolkit.

The ``classify`` recipe, the ``lenet``, ``resnet`` and ``torchvision`` models and the sample
metric ``classifier-fid`` (its held-out metrics ``accuracy``, ``top-k``, ``loss`` and
``class-accuracy`` are the core's, for any recipe that provides ``"class-logits"``), registered by
:mod:`dltoolkit_vision.plugin`. Importing this package does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

# the public names other plugins may use (imported on first use: this package stays light)
_WHERE = {
    "Classifier": "dltoolkit_vision.classifier_fid",
    "frechet_distance": "dltoolkit_vision.classifier_fid",
    "load_classifier": "dltoolkit_vision.classifier_fid",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'dltoolkit_vision' has no attribute {name!r}")
