"""Data helpers for dataset and recipe plugins: in-memory images, resumable loaders, well-known files.

* :class:`InMemoryImages`: images held as one uint8 tensor, served as floats in [-1, 1] and cut
  into batches from memory (the fast choice for images that fit in memory; sets ``spec``).
* :func:`make_loader`: a loader whose order is fixed by ``(seed, epoch)``, resumable mid-epoch and
  split among processes (``batch_size`` is the global batch); :class:`EpochBatchSampler` is its
  sampler.
* :func:`spec_of`: the :class:`~dltoolkit.DataSpec` of a dataset (its ``spec``, or images from an
  ``image_shape``).
* :func:`shard_randn`, :func:`shard_randn_like`: per-sample noise for this process's part of the
  global batch, so N processes see the same noise as one.
* :func:`load_torchvision`: a ``torchvision.datasets`` class with its failures (missing files,
  wrong content, failed download) as one-line :class:`~dltoolkit.DltkError` messages.
* :func:`digits_split_indices`: the fixed train/test split of scikit-learn's bundled digits, the
  one the built-in ``digits`` dataset uses.
* :func:`check_images_fit`: refuse, in one line, an in-memory dataset that would not fit in memory
  once resized; :func:`check_memory`: refuse, in one line, any allocation of a given size that the
  memory available cannot hold (a text file's arrays, say).

Importing this module imports no torch; each name is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dltoolkit._lazy import lazy_exports

if TYPE_CHECKING:
    from dltoolkit._data import EpochBatchSampler, InMemoryImages, make_loader
    from dltoolkit._datasources import digits_split_indices, load_torchvision
    from dltoolkit._dataspec import spec_of
    from dltoolkit._distributed import shard_randn, shard_randn_like
    from dltoolkit._limits import check_images_fit, check_memory

__all__ = [
    "EpochBatchSampler",
    "InMemoryImages",
    "check_images_fit",
    "check_memory",
    "digits_split_indices",
    "load_torchvision",
    "make_loader",
    "shard_randn",
    "shard_randn_like",
    "spec_of",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "EpochBatchSampler": "dltoolkit._data",
        "InMemoryImages": "dltoolkit._data",
        "make_loader": "dltoolkit._data",
        "check_images_fit": "dltoolkit._limits",
        "check_memory": "dltoolkit._limits",
        "digits_split_indices": "dltoolkit._datasources",
        "load_torchvision": "dltoolkit._datasources",
        "spec_of": "dltoolkit._dataspec",
        "shard_randn": "dltoolkit._distributed",
        "shard_randn_like": "dltoolkit._distributed",
    },
)
