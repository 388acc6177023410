"""dltoolkit: a plugin-based deep-learning toolkit on PyTorch Ignite.

The public API for plugins and recipes: the plugin contract and what a run hands to plugins.
Plugins import from here and from the public modules below, never from ``dltoolkit._*``:

* :mod:`dltoolkit.data`: in-memory images, resumable loaders, well-known dataset files, noise
  for distributed batches;
* :mod:`dltoolkit.images`: pixel conversions, resizing, sample grids, PNG files;
* :mod:`dltoolkit.files`: atomic writes and checksums;
* :mod:`dltoolkit.sampling`: drawing images from a trained model;
* :mod:`dltoolkit.testing`: the opt-in pytest plugin for plugin tests.

docs/api.md lists every public name. Names that used to live here (``make_loader``,
``InMemoryImages``, ``image_grid``, ``sha256_file``, ...) still resolve, with a
``DeprecationWarning`` naming their new home.
"""

from __future__ import annotations

import importlib
import warnings
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from dltoolkit._component import KINDS as KINDS  # still here for older plugins, not in __all__
from dltoolkit._component import Component, Scalar, option
from dltoolkit._config import ComponentTable, RecipeFile
from dltoolkit._dataspec import DataSpec
from dltoolkit._errors import DltkError, ExitCode, RunFailed
from dltoolkit._lazy import lazy_exports
from dltoolkit._metrics import MetricConfig, SampleMetric
from dltoolkit._trained import Trained
from dltoolkit.hookspecs import hookimpl

if TYPE_CHECKING:
    from dltoolkit._run import Run

try:
    __version__ = version("dltoolkit")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "Component",
    "ComponentTable",
    "DataSpec",
    "DltkError",
    "ExitCode",
    "MetricConfig",
    "RecipeFile",
    "Run",
    "RunFailed",
    "SampleMetric",
    "Scalar",
    "Trained",
    "hookimpl",
    "option",
]

# What needs torch is imported on first use, so that `dltk --help`, `list` and `check` (and a
# plugin's registration module) never import it; the public modules too, after `import dltoolkit`.
_LAZY = {"Run": "dltoolkit._run"}
_PUBLIC_MODULES = ("data", "files", "images", "sampling", "writers")

MOVED: dict[str, str] = {
    "EpochBatchSampler": "dltoolkit.data",
    "InMemoryImages": "dltoolkit.data",
    "digits_split_indices": "dltoolkit.data",
    "load_torchvision": "dltoolkit.data",
    "make_loader": "dltoolkit.data",
    "shard_randn": "dltoolkit.data",
    "shard_randn_like": "dltoolkit.data",
    "spec_of": "dltoolkit.data",
    "image_grid": "dltoolkit.images",
    "save_png": "dltoolkit.images",
    "to_signed_unit": "dltoolkit.images",
    "to_uint8": "dltoolkit.images",
    "sha256_file": "dltoolkit.files",
    "ImageSampler": "dltoolkit.sampling",
    "ScalarMeans": "dltoolkit._scalars",
}
"""Names that were public here before, and the module that holds them now (ScalarMeans: internal)."""

_lazy_getattr, _lazy_dir = lazy_exports(__name__, _LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return _lazy_getattr(name)
    if name in _PUBLIC_MODULES:  # importing it binds it here
        return importlib.import_module(f"{__name__}.{name}")
    if name in MOVED:
        home = MOVED[name]
        where = "internal to run.fit (not public API)" if home.startswith("dltoolkit._") else f"{home}.{name}"
        # stacklevel 2: the code that looked the name up (warnings skips importlib's own frames)
        warnings.warn(f"dltoolkit.{name} moved: it is now {where}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(home), name)
    raise AttributeError(f"module 'dltoolkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*_lazy_dir(), *_PUBLIC_MODULES})
