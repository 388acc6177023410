"""At each held-out evaluation of a ``classify`` run: the confusion matrix as a PNG and each class's accuracy.

Attached to every evaluator engine of such a run through ``dltk_engine_created(role="evaluator")``,
so it reuses the evaluation's own pass over the split.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from ignite.metrics import ConfusionMatrix
from torch import Tensor

from dltoolkit import Run
from dltoolkit.files import SAMPLES
from dltoolkit.images import save_png

CONFUSION_PREFIX = "confusion_"
STATE_KEY = "confusion_counts"
MAX_LABELLED_CLASSES = 30  # tick labels and counts are drawn up to this many classes


def draw_confusion(counts: Tensor, names: Sequence[str], title: str, out: Path) -> np.ndarray:
    """Draw the confusion matrix (rows: true class, shaded by their share; counts written when there
    are few classes) to ``out`` (PNG, written atomically); return the image as an RGB array.

    Rendered once with matplotlib's Agg canvas (no pyplot state), so it is cheap at every evaluation.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = int(counts.shape[0])
    matrix = counts.double()
    shares = (matrix / matrix.sum(dim=1, keepdim=True).clamp(min=1)).numpy()
    side = min(12.0, 3.0 + 0.4 * k)
    fig = Figure(figsize=(side * 1.1, side), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0.12, 0.1, 0.72, 0.8))
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, cax=fig.add_axes((0.87, 0.1, 0.03, 0.8)), label="share of the true class")
    if k <= MAX_LABELLED_CLASSES:
        labels = [str(n) for n in names]
        ax.set_xticks(range(k), labels, rotation=90 if max(map(len, labels)) > 3 else 0, fontsize=8)
        ax.set_yticks(range(k), labels, fontsize=8)
        for i, j in zip(*np.nonzero(counts.numpy()), strict=True):
            colour = "white" if shares[i, j] > 0.5 else "black"
            ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", color=colour, fontsize=7)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=9)
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[:, :, :3].copy()
    save_png(torch.from_numpy(rgb).permute(2, 0, 1), out)  # atomic: a temp file, fsynced, renamed
    return rgb


def _split_of(run: Run, evaluator: Engine) -> str:
    """Which split the evaluator runs over (held-out metrics score 'test' or 'train')."""
    dataloader = evaluator.state.dataloader
    dataset = getattr(dataloader, "dataset", None)
    return "test" if dataset is run.reference("test")[0] else "train"


def attach_class_report(run: Run, evaluator: Engine) -> None:
    """Count (true, predicted) pairs on ``evaluator``; when it completes, write
    ``samples/confusion_<iteration>.png`` (``confusion_train_<iteration>.png`` for metrics on the
    train split) and log each class's accuracy (``metrics.jsonl``, kind ``classes``; TensorBoard
    ``class_accuracy/<class>``)."""
    assert run.data is not None and run.data.num_classes, "the classify recipe trains on labelled data"
    ConfusionMatrix(num_classes=run.data.num_classes).attach(evaluator, STATE_KEY)  # rows: the true class

    @evaluator.on(Events.COMPLETED)
    def _report(engine: Engine) -> None:
        trainer = run.trainer
        if trainer is None:
            return
        counts: Tensor = engine.state.metrics[STATE_KEY].cpu()
        names = list(run.data.class_names) if run.data is not None else []
        names += [str(i) for i in range(len(names), int(counts.shape[0]))]
        totals = counts.sum(dim=1).tolist()  # each class's accuracy; None for a class absent from the split
        per_class = [float(counts[i, i]) / t if t > 0 else None for i, t in enumerate(totals)]
        split = _split_of(run, engine)
        iteration, epoch = trainer.state.iteration, trainer.state.epoch
        total = int(counts.sum())
        accuracy = float(torch.diagonal(counts).sum()) / max(total, 1)
        title = f"{split} split, {total} images, epoch {epoch} (iteration {iteration}): accuracy {accuracy:.4f}"
        folder = run.ensure_dir() / SAMPLES
        which = "" if split == "test" else f"{split}_"  # the test split's are confusion_<iteration>.png
        out = folder / f"{CONFUSION_PREFIX}{which}{iteration:08d}.png"
        rgb = draw_confusion(counts, names, title, out)
        run.recorder.image(f"confusion/{split}", torch.from_numpy(rgb).permute(2, 0, 1), iteration, out)
        rounded = [round(a, 6) if a is not None else None for a in per_class]
        by_name: dict[str, Any] = dict(zip(names, rounded, strict=True))
        # TensorBoard: class_accuracy/<class> (class_accuracy_<split>/... for another split)
        run.recorder.record("classes", {"class_accuracy": by_name}, epoch=epoch, iteration=iteration,
                            split=split, count=total)  # fmt: skip
