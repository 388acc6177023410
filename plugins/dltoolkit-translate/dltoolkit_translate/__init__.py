"""dltoolkit-translate: image-to-image translation (pix2pix, CycleGAN) for dltoolkit.

Names are imported on first use (PEP 562), so that loading the plugin to register it does not
import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "CycleGanConfig": "dltoolkit_translate.options",
    "CycleGanModel": "dltoolkit_translate.models",
    "CycleGanModelConfig": "dltoolkit_translate.options",
    "ImagePool": "dltoolkit_translate.common",
    "PatchDiscriminator": "dltoolkit_translate.models",
    "PairedImages": "dltoolkit_translate.data",
    "Pix2PixConfig": "dltoolkit_translate.options",
    "Pix2PixModel": "dltoolkit_translate.models",
    "Pix2PixModelConfig": "dltoolkit_translate.options",
    "ResnetGenerator": "dltoolkit_translate.models",
    "UnetGenerator": "dltoolkit_translate.models",
    "UnpairedImages": "dltoolkit_translate.data",
    "cyclegan_offers": "dltoolkit_translate.cyclegan",
    "lr_factor": "dltoolkit_translate.common",
    "pix2pix_offers": "dltoolkit_translate.pix2pix",
    "train_cyclegan": "dltoolkit_translate.cyclegan",
    "train_pix2pix": "dltoolkit_translate.pix2pix",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'dltoolkit_translate' has no attribute {name!r}")
