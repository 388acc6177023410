"""Pictures of boxes, and at each held-out evaluation of a ``detect`` run: a grid of held-out images
with the true boxes beside the predicted ones (``samples/detections_<iteration>.png``) and each
class's AP (``metrics.jsonl``, kind ``classes``, ``class_ap``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from ignite.engine import Engine, Events
from torch import Tensor

from dltoolkit import Run
from dltoolkit.files import SAMPLES
from dltoolkit.images import save_png, to_uint8
from dltoolkit_detect.metrics import RESULTS_KEY
from dltoolkit_detect.options import DetectConfig

TRUE_COLOUR = (40, 200, 60)
PREDICTED_COLOUR = (230, 40, 40)
MIN_SIDE = 160
"""Images are scaled up (nearest) to at least this side before boxes are drawn, so labels stay legible."""


def draw_boxes(
    image: Tensor, boxes: Tensor, labels: Sequence[int], names: Sequence[str], colour: tuple[int, int, int],
    scores: Sequence[float] | None = None,
) -> Tensor:  # fmt: skip
    """``image`` (uint8 ``(C, H, W)``) as RGB with ``boxes`` (x1y1x2y2 pixels) outlined in ``colour``,
    each labelled with its class name (and score); scaled up to ``MIN_SIDE`` when smaller."""
    from PIL import Image, ImageDraw

    rgb = image.expand(3, -1, -1) if image.shape[0] == 1 else image[:3]
    picture = Image.fromarray(rgb.permute(1, 2, 0).contiguous().numpy())
    scale = max(1, -(-MIN_SIDE // max(1, min(picture.size))))
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    pen = ImageDraw.Draw(picture)
    for n, (box, label) in enumerate(zip(boxes.tolist(), labels, strict=True)):
        x1, y1, x2, y2 = (v * scale for v in box)
        pen.rectangle((x1, y1, x2, y2), outline=colour, width=max(1, scale // 2))
        text = names[label] if 0 <= label < len(names) else str(label)
        if scores is not None:
            text += f" {scores[n]:.2f}"
        pen.text((x1 + 2, max(0.0, y1 - 11)), text, fill=colour)
    return torch.from_numpy(np.asarray(picture).copy()).permute(2, 0, 1)


def pair_picture(image: Tensor, truth: dict[str, Tensor], predicted: dict[str, Tensor], names: Sequence[str],
                 min_score: float) -> Tensor:  # fmt: skip
    """One held-out image twice, side by side: its true boxes (green), then the predicted ones of at
    least ``min_score`` (red, with their scores)."""
    uint8 = to_uint8(image)
    keep = predicted["scores"] >= min_score
    left = draw_boxes(uint8, truth["boxes"], truth["labels"].tolist(), names, TRUE_COLOUR)
    right = draw_boxes(uint8, predicted["boxes"][keep], predicted["labels"][keep].tolist(), names, PREDICTED_COLOUR,
                       predicted["scores"][keep].tolist())  # fmt: skip
    gap = torch.full((3, left.shape[1], 4), 255, dtype=torch.uint8)
    return torch.cat([left, gap, right], dim=2)


def grid(pictures: Sequence[Tensor], columns: int) -> Tensor:
    """Pictures (uint8 ``(3, H, W)``, sizes may differ) in a grid, white between them."""
    height = max(int(p.shape[1]) for p in pictures) + 6
    width = max(int(p.shape[2]) for p in pictures) + 6
    rows = -(-len(pictures) // columns)
    out = torch.full((3, rows * height, columns * width), 255, dtype=torch.uint8)
    for n, p in enumerate(pictures):
        r, c = divmod(n, columns)
        out[:, r * height + 3 : r * height + 3 + p.shape[1], c * width + 3 : c * width + 3 + p.shape[2]] = p
    return out


def attach_detection_report(run: Run, evaluator: Engine, config: DetectConfig) -> None:
    """Keep the first ``config.grid_images`` held-out images and their predictions; when the evaluator
    completes during training, write the grid and record each class's AP (from the ``map`` metrics'
    evaluation when one ran)."""
    kept: list[tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]] = []

    @evaluator.on(Events.ITERATION_COMPLETED)
    def _keep(engine: Engine) -> None:
        output = engine.state.output
        if len(kept) >= config.grid_images or not isinstance(output, dict) or "images" not in output:
            return
        for item in zip(output["images"], output["targets"], output["predictions"], strict=True):
            if len(kept) < config.grid_images:
                kept.append(item)

    @evaluator.on(Events.COMPLETED)
    def _report(engine: Engine) -> None:
        trainer = run.trainer
        if trainer is None:
            return
        iteration, epoch = trainer.state.iteration, trainer.state.epoch
        names = list(run.data.class_names) if run.data is not None else []
        results = getattr(engine.state, RESULTS_KEY, None)
        if results is not None:
            by_name = {
                (names[k] if k < len(names) else str(k)): (round(v, 6) if v is not None else None)
                for k, v in enumerate(results["per_class"])
            }
            run.recorder.record("classes", {"class_ap": by_name}, epoch=epoch, iteration=iteration,
                                count=results["count"])  # fmt: skip
        if kept:
            pictures = [pair_picture(i, t, p, names, config.draw_score) for i, t, p in kept]
            image = grid(pictures, columns=4)
            out = run.ensure_dir() / SAMPLES / f"detections_{iteration:08d}.png"
            save_png(image, out)
            run.add_images("detections", image, iteration, out)
