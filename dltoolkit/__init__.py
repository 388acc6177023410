"""dltoolkit: a plugin-based deep-learning toolkit on PyTorch Ignite.

The public API for plugins and recipes. Plugins import from here, never from ``dltoolkit._*``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from dltoolkit._checkpoint import sha256_file
from dltoolkit._component import KINDS, Component, Scalar, option
from dltoolkit._config import ComponentTable, RecipeFile
from dltoolkit._data import (
    EpochBatchSampler,
    InMemoryImages,
    make_loader,
    to_signed_unit,
    to_uint8,
)
from dltoolkit._dataspec import DataSpec, spec_of
from dltoolkit._errors import DltkError, ExitCode, RunFailed
from dltoolkit._images import image_grid, save_png
from dltoolkit._run import Run
from dltoolkit._sampling import ImageSampler
from dltoolkit._scalars import ScalarMeans
from dltoolkit._trained import Trained
from dltoolkit.hookspecs import hookimpl

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
    "hookimpl",
    "image_grid",
    "make_loader",
    "option",
    "save_png",
    "sha256_file",
    "spec_of",
    "to_signed_unit",
    "to_uint8",
]
