"""dltoolkit: a plugin-based deep-learning toolkit on PyTorch Ignite.

The public API for plugins and recipes. Plugins import from here, never from ``dltoolkit._*``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from dltoolkit._component import KINDS, Component, Scalar, option
from dltoolkit._config import ComponentTable, RecipeFile
from dltoolkit._dataspec import DataSpec, spec_of
from dltoolkit._errors import DltkError, ExitCode, RunFailed
from dltoolkit._trained import Trained
from dltoolkit.hookspecs import hookimpl

if TYPE_CHECKING:
    from dltoolkit._checkpoint import sha256_file
    from dltoolkit._data import EpochBatchSampler, InMemoryImages, make_loader, to_signed_unit, to_uint8
    from dltoolkit._distributed import shard_randn, shard_randn_like
    from dltoolkit._imageio import check_images, image_files, read_image
    from dltoolkit._images import image_grid, save_png
    from dltoolkit._limits import check_memory
    from dltoolkit._run import Run
    from dltoolkit._sampling import ImageSampler
    from dltoolkit._scalars import ScalarMeans
    from dltoolkit.builtin.datasets import digits_split_indices, load_torchvision

# What needs torch is imported on first use, so that `dltk --help`, `list` and `check` (and a
# plugin's registration module) never import it.
_LAZY = {
    "sha256_file": "dltoolkit._checkpoint",
    "digits_split_indices": "dltoolkit.builtin.datasets",
    "load_torchvision": "dltoolkit.builtin.datasets",
    "EpochBatchSampler": "dltoolkit._data",
    "InMemoryImages": "dltoolkit._data",
    "make_loader": "dltoolkit._data",
    "to_signed_unit": "dltoolkit._data",
    "to_uint8": "dltoolkit._data",
    "image_grid": "dltoolkit._images",
    "save_png": "dltoolkit._images",
    "read_image": "dltoolkit._imageio",
    "check_images": "dltoolkit._imageio",
    "check_memory": "dltoolkit._limits",
    "image_files": "dltoolkit._imageio",
    "Run": "dltoolkit._run",
    "ImageSampler": "dltoolkit._sampling",
    "ScalarMeans": "dltoolkit._scalars",
    "shard_randn": "dltoolkit._distributed",
    "shard_randn_like": "dltoolkit._distributed",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dltoolkit' has no attribute {name!r}")


try:
    __version__ = version("dltoolkit")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "KINDS",
    "Component",
    "ComponentTable",
    "DataSpec",
    "DltkError",
    "EpochBatchSampler",
    "ExitCode",
    "ImageSampler",
    "InMemoryImages",
    "RecipeFile",
    "Run",
    "RunFailed",
    "Scalar",
    "ScalarMeans",
    "Trained",
    "__version__",
    "check_images",
    "check_memory",
    "digits_split_indices",
    "hookimpl",
    "image_files",
    "image_grid",
    "load_torchvision",
    "make_loader",
    "option",
    "read_image",
    "save_png",
    "sha256_file",
    "shard_randn",
    "shard_randn_like",
    "spec_of",
    "to_signed_unit",
    "to_uint8",
]
