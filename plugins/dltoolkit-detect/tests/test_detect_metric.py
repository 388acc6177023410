"""The ``map`` / ``map50`` metrics agree with the reference COCO evaluation (pycocotools) to 1e-4 on
fixed predictions, per class too, and behave on edge cases (no detections, absent classes)."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
from ignite.engine import Engine

from dltoolkit_detect.metrics import RESULTS_KEY, CocoMap, coco_detections, coco_evaluate, coco_ground_truth

CLASSES = 4


def fixed_set(seed: int = 0, images: int = 30) -> tuple[list[dict], list[dict]]:
    """True boxes, and predictions near them (jittered, some with the wrong class, some missed, some
    spurious), with distinct scores: a set where every IoU threshold matters."""
    rng = np.random.default_rng(seed)
    targets, predictions = [], []
    for _ in range(images):
        n = int(rng.integers(0, 5))
        xy = rng.uniform(0, 80, size=(n, 2))
        wh = rng.uniform(8, 40, size=(n, 2))
        boxes = np.concatenate([xy, xy + wh], 1)
        labels = rng.integers(0, CLASSES - 1, size=n)  # the last class never has a true box
        targets.append(
            {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(labels)}
        )
        kept = rng.random(n) > 0.15
        jitter = rng.normal(0, 3.0, size=(n, 4))
        p_boxes = (boxes + jitter)[kept]
        p_labels = np.where(rng.random(n) < 0.1, rng.integers(0, CLASSES, size=n), labels)[kept]
        extra = int(rng.integers(0, 3))
        e_xy = rng.uniform(0, 80, size=(extra, 2))
        p_boxes = np.concatenate([p_boxes, np.concatenate([e_xy, e_xy + 20], 1)])
        p_labels = np.concatenate([p_labels, rng.integers(0, CLASSES, size=extra)])
        scores = rng.uniform(0.05, 1.0, size=len(p_labels))
        predictions.append({
            "boxes": torch.tensor(p_boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(p_labels, dtype=torch.int64),
            "scores": torch.tensor(scores, dtype=torch.float32),
        })  # fmt: skip
    return predictions, targets


def reference(predictions: list[dict], targets: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """pycocotools' COCOeval (bbox) on the same boxes: its stats and precision array."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = coco_ground_truth(targets, CLASSES)
        gt.createIndex()
        dt = gt.loadRes(coco_detections(predictions))
        evaluation = COCOeval(gt, dt, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return np.asarray(evaluation.stats), np.asarray(evaluation.eval["precision"])


@pytest.mark.parametrize("seed", [0, 1])
def test_map_agrees_with_pycocotools(seed: int) -> None:
    predictions, targets = fixed_set(seed)
    ours = coco_evaluate(predictions, targets, CLASSES)
    stats, precision = reference(predictions, targets)
    assert 0.1 < ours["map"] < ours["map50"] < 0.95  # a set where the score is neither trivial nor perfect
    assert ours["map"] == pytest.approx(stats[0], abs=1e-4)
    assert ours["map50"] == pytest.approx(stats[1], abs=1e-4)
    assert ours["map75"] == pytest.approx(stats[2], abs=1e-4)
    for k in range(CLASSES - 1):
        p = precision[:, :, k, 0, -1]
        assert ours["per_class"][k] == pytest.approx(float(p[p > -1].mean()), abs=1e-4)
    assert ours["per_class"][CLASSES - 1] is None  # no true box of that class


def test_ignite_metric_collects_batches_and_leaves_the_whole_evaluation() -> None:
    """The Ignite metric over an evaluator gives what coco_evaluate gives on everything at once."""
    predictions, targets = fixed_set(2)
    batches = [(predictions[i : i + 7], targets[i : i + 7]) for i in range(0, len(targets), 7)]
    engine = Engine(lambda _e, b: {"predictions": b[0], "targets": b[1]})
    CocoMap("map", CLASSES).attach(engine, "map")
    CocoMap("map50", CLASSES).attach(engine, "map50")
    state = engine.run(batches)
    whole = coco_evaluate(predictions, targets, CLASSES)
    assert state.metrics["map"] == pytest.approx(whole["map"], abs=1e-12)
    assert state.metrics["map50"] == pytest.approx(whole["map50"], abs=1e-12)
    assert getattr(state, RESULTS_KEY)["per_class"] == whole["per_class"]
    assert getattr(state, RESULTS_KEY)["count"] == len(targets)


def test_no_detections_scores_zero() -> None:
    _predictions, targets = fixed_set(0, images=4)
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64), "scores": torch.zeros(0)}] * 4
    result = coco_evaluate(empty, targets, CLASSES)
    assert result["map"] == 0.0 and result["map50"] == 0.0


def test_perfect_predictions_score_one() -> None:
    _predictions, targets = fixed_set(3, images=10)
    perfect = [{**t, "scores": torch.ones(len(t["labels"]))} for t in targets]
    result = coco_evaluate(perfect, targets, CLASSES)
    assert result["map"] == pytest.approx(1.0) and result["map50"] == pytest.approx(1.0)


def test_with_several_processes_every_process_s_images_are_scored_together(monkeypatch):
    """Each process holds its share of the held-out split: the metric gathers them all before scoring."""
    import ignite.distributed as idist

    predictions, targets = fixed_set(4)
    half = len(targets) // 2
    mine = CocoMap("map50", CLASSES)
    mine.reset()
    mine.update(({"predictions": predictions[:half], "targets": targets[:half]},))
    other = (predictions[half:], targets[half:])
    monkeypatch.setattr(idist, "get_world_size", lambda: 2)
    monkeypatch.setattr(idist, "all_gather", lambda mine_: [mine_, other])
    assert mine.compute() == pytest.approx(coco_evaluate(predictions, targets, CLASSES)["map50"], abs=1e-12)
