"""What a finished run offers: its inference modules, rebuilt without data or training-only parts."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
      prompt, a forecast, translations of input files). ``options`` holds the flags given:
      ``grid``, ``label``, ``input`` (the ``--input`` file or folder, a :class:`~pathlib.Path`:
      a recipe that generates from inputs, such as a translator, takes it) and the options
      plugins add through :func:`~dltoolkit.hookspecs.dltk_add_options` (``prompt``,
      ``temperature``...). A flag given that the signature does not take is refused in one line
      (take ``**options`` to refuse them yourself); the same seed must give the same output.
      Without it, ``dltk generate`` writes PNGs from ``sampler``.
    * ``predict``: ``predict(path, dataset) -> rows`` for ``dltk predict`` (classifiers,
      forecasters, translators). It is given either ``path`` (the ``--input`` file or folder;
      ``dataset`` is None) or ``dataset`` (``--input train|test``: that split of the run's
      recorded dataset; ``path`` is None), and yields one mapping per prediction (``{"input":
      ..., "label": ..., "probability": ...}``), which the core writes as CSV rows (the default).
      A predict that also takes ``out`` writes files (translated images, drawn boxes): given
      ``--out DIR`` (a folder, not a ``.csv`` file), it is called with ``out=`` a fresh folder
      whose files the core moves into ``DIR``; the rows it yields then go to
      ``DIR/predictions.csv`` (none: no CSV). Without ``--out DIR`` it gets ``out=None``.
      Plugin options of ``dltk predict`` are passed by name, as for ``generate``. Bad input is
      a ``DltkError``.
    * ``preview``: ``preview(num, seed) -> draw``, fixed inputs chosen once (the same ``num``
      held-out inputs of a translator, say), where ``draw()`` gives the images to show for them
      with the weights of the moment (a float tensor ``(N, C, H, W)`` in [-1, 1]; a translator
      may put input, translation and target side by side in each). The ``samples`` and
      ``progress-gif`` callbacks draw it every few epochs. Without it, a ``sampler``'s fixed
      noise batch is the preview (see :meth:`fixed_preview`).
    * ``evaluator_handlers``: functions called as ``handler(engine, run)`` on each Ignite
      evaluator engine the run creates to score this model's predictions, before it runs:
      the recipe's own reports on its evaluations (a confusion matrix), with no global hook.

    A recipe builds one for its running model (so callbacks and metrics see the weights being
    trained) and passes it to :meth:`Run.fit`; ``dltk generate``, ``export`` and ``eval`` get
    another from the same ``offers`` function with the weights of a checkpoint or an export.
    """

    modules: Mapping[str, Any]
    sampler: Any = None
    eval_step: Callable[[Any], Any] | None = None
    predict: Callable[[Any, Any], Any] | None = None
    generate: Callable[..., Any] | None = None
    preview: Callable[[int, int], Callable[[], Any]] | None = None
    evaluator_handlers: Sequence[Callable[[Any, Any], None]] = ()

    def capabilities(self) -> list[str]:
        """What it can do, by name: ``sample``, ``preview``, ``evaluate``, ``predict``, ``export``."""
        found = []
        if self.sampler is not None or self.generate is not None:
            found.append("sample")
        if self.preview is not None or self.sampler is not None:
            found.append("preview")
        if self.eval_step is not None:
            found.append("evaluate")
        if self.predict is not None:
            found.append("predict")
        if self.modules:
            found.append("export")
        return found

    def fixed_preview(self, num: int, seed: int, nrow: int) -> tuple[Callable[[], Any], int] | None:
        """``(draw, images per grid row)`` for a preview of about ``num`` images, or None if it offers none.

        ``preview`` when given; else the ``sampler``'s fixed noise batch of ``num`` (a
        class-conditional sampler: ``num // classes`` of each class, one row per class, the same
        noise down each column).
        """
        if self.preview is not None:
            return self.preview(num, seed), nrow
        sampler = self.sampler
        if sampler is None:
            return None
        classes = getattr(sampler, "classes", None) or ()
        if classes:
            import torch

            nrow = max(1, num // len(classes))
            noise = torch.cat([sampler.noise(nrow, seed, label=c) for c in range(len(classes))])
        else:
            noise = sampler.noise(num, seed)
        return (lambda: sampler.generate(noise)), nrow
