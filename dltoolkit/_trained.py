"""What a finished run offers: its inference modules, rebuilt without data or training-only parts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs


@attrs.define
class Trained:
    """What a recipe's trained model can do, returned by its component's ``offers(model, device)``.

    * ``modules``: the inference parts by name (``{"decoder": net}``, ``{"model": net}``). They
      are what ``dltk export`` writes and what is loaded from a checkpoint, whose entries of the
      same names hold their state dicts; training-only parts (a critic, optimisers) are
      left out.
    * ``sampler``: draws images from noise (an :class:`~dltoolkit.sampling.ImageSampler`, or anything
      with ``noise(n, seed)``, ``generate(z)`` and ``batches(n, seed=, batch_size=)``):
      ``dltk generate``, the ``samples`` callback and metrics that score samples use it. A
      class-conditional sampler also has ``classes`` (the class names in index order) and takes
      ``label=`` (a class index) in ``noise`` and ``batches``; without a label it spreads its
      images over the classes. ``dltk generate --label`` is refused for samplers without
      ``classes``, and sample grids of those with them show one row per class.
    * ``eval_step``: ``eval_step(batch) -> output`` on a held-out batch, run by an Ignite
      evaluator engine whose metrics read ``output`` (for classifiers ``(logits, labels)``, the
      form Ignite's ``Accuracy`` and ``Loss`` take). Metrics that score predictions use it.
    * ``generate``: ``generate(out, num=, seed=, **options) -> list of paths written`` for
      ``dltk generate`` when a family's samples are not images drawn from noise (text from a
      ``prompt``, a forecast). ``options`` holds the flags given (``prompt``, ``num_chars``,
      ``temperature``, ``grid``); the same seed must give the same output. Without it,
      ``dltk generate`` writes PNGs from ``sampler``.
    * ``predict``: ``predict(path, dataset) -> rows`` for ``dltk predict`` (classifiers,
      forecasters). It is given either ``path`` (the ``--input`` file or folder; ``dataset`` is
      None) or ``dataset`` (``--input train|test``: that split of the run's recorded dataset;
      ``path`` is None), and yields one mapping per prediction (``{"input": ..., "label": ...,
      "probability": ...}``), which the core writes as CSV rows. Bad input is a ``DltkError``.

    A recipe builds one for its running model (so callbacks and metrics see the weights being
    trained) and passes it to :meth:`Run.fit`; ``dltk generate``, ``export`` and ``eval`` get
    another from the same ``offers`` function with the weights of a checkpoint or an export.
    """

    modules: Mapping[str, Any]
    sampler: Any = None
    eval_step: Callable[[Any], Any] | None = None
    predict: Callable[[Any, Any], Any] | None = None
    generate: Callable[..., Any] | None = None

    def capabilities(self) -> list[str]:
        """What it can do, by name: ``sample``, ``evaluate``, ``predict``, ``export``."""
        found = []
        if self.sampler is not None or self.generate is not None:
            found.append("sample")
        if self.eval_step is not None:
            found.append("evaluate")
        if self.predict is not None:
            found.append("predict")
        if self.modules:
            found.append("export")
        return found
