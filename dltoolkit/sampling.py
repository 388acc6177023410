"""Drawing from a trained model, for recipes whose finished runs draw samples, and for metrics.

* :class:`ImageSampler`: images from a module that maps noise ``(N, noise_dim)`` to images in
  [-1, 1] (the decoding half of a generative model): seeded noise that never disturbs the training random
  stream, eval mode without gradients, constant memory for any number of images
  (``batches(n, seed=..., batch_size=...)``). A recipe's ``Trained`` passes one as its ``sampler``;
  the ``samples`` and ``progress-gif`` callbacks and the sample-scoring metrics draw through it.

Importing this module imports no torch; each name is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dltoolkit._lazy import lazy_exports

if TYPE_CHECKING:
    from dltoolkit._sampling import ImageSampler

__all__ = ["ImageSampler"]

__getattr__, __dir__ = lazy_exports(__name__, {"ImageSampler": "dltoolkit._sampling"})
