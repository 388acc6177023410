"""COCO mean average precision: the ``map`` (IoU 0.50:0.95) and ``map50`` (IoU 0.50) metrics.

Computed by faster-coco-eval (a C++ port of the reference ``COCOeval``, with the same protocol:
101-point interpolated precision, 100 detections per image, all areas, greedy matching by score)
over the predictions and true boxes of every held-out image, so the values are the reference
evaluation's. :func:`coco_evaluate` is the one computation; the Ignite metric only collects.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from ignite.engine import Engine
from ignite.metrics import Metric
from ignite.metrics.metric import reinit__is_reduced
from torch import Tensor

from dltoolkit import DltkError
from dltoolkit_detect.options import MapConfig

RESULTS_KEY = "coco_results"
"""``engine.state.<RESULTS_KEY>``: the last full COCO evaluation of an evaluator engine (per-class AP)."""


def coco_ground_truth(targets: Sequence[dict[str, Tensor]], num_classes: int) -> dict[str, Any]:
    """The true boxes as a COCO ``instances`` dict: image ids 1..N, category ids 1..K (label + 1)."""
    annotations = []
    for image_id, t in enumerate(targets, start=1):
        for box, label in zip(t["boxes"].tolist(), t["labels"].tolist(), strict=True):
            x1, y1, x2, y2 = box
            w, h = x2 - x1, y2 - y1
            annotations.append(
                {"id": len(annotations) + 1, "image_id": image_id, "category_id": int(label) + 1,
                 "bbox": [x1, y1, w, h], "area": w * h, "iscrowd": 0}
            )  # fmt: skip
    return {
        "images": [{"id": i} for i in range(1, len(targets) + 1)],
        "annotations": annotations,
        "categories": [{"id": k + 1, "name": str(k)} for k in range(num_classes)],
    }


def coco_detections(predictions: Sequence[dict[str, Tensor]]) -> list[dict[str, Any]]:
    """The predicted boxes as COCO results (``image_id``, ``category_id``, ``bbox`` x, y, w, h, ``score``)."""
    rows = []
    for image_id, p in enumerate(predictions, start=1):
        for box, label, score in zip(p["boxes"].tolist(), p["labels"].tolist(), p["scores"].tolist(), strict=True):
            x1, y1, x2, y2 = box
            rows.append(
                {"image_id": image_id, "category_id": int(label) + 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                 "score": float(score)}
            )  # fmt: skip
    return rows


def per_class_ap(precision: np.ndarray, num_classes: int, has_truth: Sequence[bool]) -> list[float | None]:
    """Each class's AP@[.5:.95] from ``COCOeval.eval["precision"]`` (IoU, recall, class, area, max
    detections): the mean over IoUs and recall points of the 'all' area at 100 detections, as
    detectron2 reports it; None for a class with no true box."""
    values: list[float | None] = []
    for k in range(num_classes):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        values.append(float(p.mean()) if has_truth[k] and p.size else (0.0 if has_truth[k] else None))
    return values


def coco_evaluate(
    predictions: Sequence[dict[str, Tensor]], targets: Sequence[dict[str, Tensor]], num_classes: int
) -> dict[str, Any]:
    """The COCO box evaluation of ``predictions`` against ``targets`` (one dict each per image, labels
    0..K-1, boxes x1y1x2y2 in pixels): ``map`` (AP@[.5:.95]), ``map50``, ``map75`` and ``per_class``
    (each class's AP@[.5:.95], None for a class without true boxes). No true box at all: all 0."""
    from faster_coco_eval import COCO, COCOeval_faster

    truth = coco_ground_truth(targets, num_classes)
    has_truth = [False] * num_classes
    for a in truth["annotations"]:
        has_truth[a["category_id"] - 1] = True
    detections = coco_detections(predictions)
    if not truth["annotations"] or not detections:
        return {"map": 0.0, "map50": 0.0, "map75": 0.0, "per_class": [0.0 if h else None for h in has_truth]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(truth)
        evaluation = COCOeval_faster(gt, gt.loadRes(detections), iouType="bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = [max(float(s), 0.0) for s in evaluation.stats[:3]]
    precision = np.asarray(evaluation.eval["precision"])
    return {
        "map": stats[0],
        "map50": stats[1],
        "map75": stats[2],
        "per_class": per_class_ap(precision, num_classes, has_truth),
    }


def _cpu(d: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().cpu() for k, v in d.items() if k in ("boxes", "labels", "scores")}


class CocoMap(Metric):
    """COCO mAP of a detector's held-out predictions. It reads the ``detect`` recipe's ``eval_step``
    output, ``{"predictions": [...], "targets": [...]}`` (one dict per image), keeps them all and
    evaluates them once at the end; ``key`` picks ``"map"`` or ``"map50"``. The whole evaluation
    (per-class AP too) is left on the engine as ``engine.state.coco_results``."""

    def __init__(self, key: str, num_classes: int | None = None):
        self.key = key
        self.num_classes = num_classes
        super().__init__(output_transform=lambda output: (output,), device="cpu")  # a mapping stays whole

    @reinit__is_reduced
    def reset(self) -> None:
        self._predictions: list[dict[str, Tensor]] = []
        self._targets: list[dict[str, Tensor]] = []

    @reinit__is_reduced
    def update(self, output: Any) -> None:
        output = output[0]
        if not isinstance(output, dict) or "predictions" not in output or "targets" not in output:
            raise DltkError(
                "metrics: map and map50 read an eval_step giving {'predictions', 'targets'} (the detect recipe's)"
            )
        self._predictions.extend(_cpu(p) for p in output["predictions"])
        self._targets.extend(_cpu(t) for t in output["targets"])

    def gathered(self) -> tuple[list[dict[str, Tensor]], list[dict[str, Tensor]]]:
        """Every process's predictions and targets (the held-out split is shared among processes)."""
        import ignite.distributed as idist

        if idist.get_world_size() == 1:
            return self._predictions, self._targets
        parts = idist.all_gather((self._predictions, self._targets))
        return [p for part in parts for p in part[0]], [t for part in parts for t in part[1]]

    def results(self) -> dict[str, Any]:
        predictions, targets = self.gathered()
        classes = self.num_classes
        if classes is None:
            labels = [int(t["labels"].max()) for t in targets if len(t["labels"])]
            labels += [int(p["labels"].max()) for p in predictions if len(p["labels"])]
            classes = max(labels, default=-1) + 1
        return {**coco_evaluate(predictions, targets, classes), "count": len(targets)}

    def compute(self) -> float:
        self._last = self.results()
        return float(self._last[self.key])

    def completed(self, engine: Engine, name: str) -> None:
        super().completed(engine, name)
        setattr(engine.state, RESULTS_KEY, self._last)


def _classes(run: Any) -> int | None:
    data = getattr(run, "data", None)
    return int(data.num_classes) if data is not None and data.num_classes else None


def coco_map(config: MapConfig, run: Any = None) -> CocoMap:
    """COCO mAP@[.5:.95] of the held-out boxes (faster-coco-eval, the reference protocol)."""
    return CocoMap("map", _classes(run))


def coco_map50(config: MapConfig, run: Any = None) -> CocoMap:
    """COCO mAP@.5 of the held-out boxes (faster-coco-eval, the reference protocol)."""
    return CocoMap("map50", _classes(run))
