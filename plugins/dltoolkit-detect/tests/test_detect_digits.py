"""The ``detect`` recipe end to end on ``digit-boxes`` with ``centernet``: held-out mAP logged, the
evaluation grid, ``dltk predict`` rows whose reference COCO mAP is the logged one, ``--draw``,
export, and ``dltk check`` pairing detectors with ``detect`` only."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import pytest
import torch

from dltoolkit.testing import run_cli

TINY = """
seed = 2

[run]
device = "cpu"
threads = 1

[recipe]
name = "detect"
epochs = 4
batch_size = 16
lr = 5e-3
warmup_iterations = 10
log_every = 4
grid_images = 4

[model]
name = "centernet"
width = 32
blocks = 1

[dataset]
name = "digit-boxes"
train_images = 320
test_images = 24
max_digits = 3

[[metrics]]
name = "map50"

[[metrics]]
name = "map"
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("detect")
    (folder / "tiny.toml").write_text(TINY)
    result = run_cli("run", folder / "tiny.toml", "--run-dir", folder / "run")
    assert result.exit_code == 0, result.err
    return folder / "run"


def records(run: Path, kind: str) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def reference_map(csv_path: Path, split: str = "test") -> tuple[float, float]:
    """mAP@[.5:.95] and mAP@.5 of the CSV's boxes by pycocotools, against the split's true boxes."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from dltoolkit_detect.digit_boxes import digit_boxes
    from dltoolkit_detect.metrics import coco_ground_truth
    from dltoolkit_detect.options import DigitBoxesConfig

    data = digit_boxes(DigitBoxesConfig(train_images=320, test_images=24, max_digits=3), split)
    ids = {name: n + 1 for n, name in enumerate(data.files)}
    rows = list(csv.DictReader(csv_path.open()))
    detections = [
        {"image_id": ids[r["file"]], "category_id": int(r["label"]) + 1, "score": float(r["score"]),
         "bbox": [float(r["x1"]), float(r["y1"]), float(r["x2"]) - float(r["x1"]), float(r["y2"]) - float(r["y1"])]}
        for r in rows
    ]  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = coco_ground_truth(data.targets, 10)
        gt.createIndex()
        evaluation = COCOeval(gt, gt.loadRes(detections), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return float(evaluation.stats[0]), float(evaluation.stats[1])


@pytest.mark.slow
def test_a_run_logs_map_each_class_ap_and_draws_the_grid(trained):
    evaluations = records(trained, "eval")
    assert [r["epoch"] for r in evaluations] == [1, 2, 3, 4]
    assert evaluations[-1]["map50"] > evaluations[0]["map50"]
    assert 0.0 < evaluations[-1]["map"] <= evaluations[-1]["map50"] <= 1.0
    classes = records(trained, "classes")[-1]
    assert set(classes["class_ap"]) == {str(d) for d in range(10)} and classes["count"] == 24
    steps = records(trained, "step")
    assert {"loss", "classification", "localization", "lr"} <= set(steps[0])
    assert (trained / "samples" / "detections_00000080.png").is_file()


@pytest.mark.slow
def test_predicted_rows_score_the_logged_map_by_the_reference_evaluation(trained, dltk, tmp_path):
    out = tmp_path / "boxes.csv"
    result = dltk("predict", trained, "--input", "test", "--out", out, "--draw", tmp_path / "drawn")
    assert result.exit_code == 0, result.err
    header = out.read_text().splitlines()[0]
    assert header == "file,label,score,x1,y1,x2,y2"
    logged = records(trained, "eval")[-1]
    full, at_50 = reference_map(out)
    assert at_50 == pytest.approx(logged["map50"], abs=1e-3)
    assert full == pytest.approx(logged["map"], abs=1e-3)
    drawn = sorted(p.name for p in (tmp_path / "drawn").iterdir())
    assert len(drawn) == 24 and drawn[0] == "test-00000.png"


@pytest.mark.slow
def test_predict_on_image_files_from_the_export_gives_the_run_s_boxes(trained, dltk, tmp_path):
    from dltoolkit.images import save_png
    from dltoolkit_detect.digit_boxes import digit_boxes
    from dltoolkit_detect.options import DigitBoxesConfig

    data = digit_boxes(DigitBoxesConfig(train_images=320, test_images=24, max_digits=3), "test")
    folder = tmp_path / "pngs"
    folder.mkdir()
    for n in range(3):
        save_png(data.uint8_image(n), folder / data.files[n])
    assert dltk("export", trained, "--out", tmp_path / "d.safetensors").exit_code == 0
    from_run, from_export = tmp_path / "run.csv", tmp_path / "export.csv"
    assert dltk("predict", trained, "--input", folder, "--out", from_run).exit_code == 0
    result = dltk("predict", tmp_path / "d.safetensors", "--input", folder, "--out", from_export)
    assert result.exit_code == 0, result.err
    rows = from_run.read_text().splitlines()
    assert rows == from_export.read_text().splitlines() and len(rows) > 3
    split = dltk("predict", trained, "--input", "test", "--out", tmp_path / "split.csv")
    assert split.exit_code == 0
    # the same image in a batch of 16 (the split) or of 3 (the files): the same boxes, to float rounding
    lines = (tmp_path / "split.csv").read_text().splitlines()[1:]
    first = [[float(v) for v in r.split(",")[1:]] for r in lines if r.startswith("test-00000")]
    alone = [[float(v) for v in r.split(",")[1:]] for r in rows[1:] if "test-00000" in r.split(",", 1)[0]]
    assert len(first) == len(alone) > 0
    assert torch.allclose(torch.tensor(first), torch.tensor(alone), atol=1e-3)


@pytest.mark.slow
def test_dltk_eval_scores_the_run_as_it_logged(trained, dltk):
    result = dltk("eval", trained, "--metrics", "map50")
    assert result.exit_code == 0, result.err
    value = float(result.out.split("map50", 1)[1].split()[0])
    assert value == pytest.approx(records(trained, "eval")[-1]["map50"], abs=1e-3)


def test_check_pairs_detectors_with_detect_only(dltk, tmp_path):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY)
    assert dltk("check", recipe).exit_code == 0
    lines = dltk("check", recipe, 'model={name="lenet"}').err_lines
    assert lines[0] == (
        f"{recipe}: model.name: model 'lenet' provides 'classifier', but the recipe 'detect' needs a model that "
        "provides 'detector' (models that do: centernet, fasterrcnn_mobilenet_v3_large_fpn, retinanet_resnet50_fpn, "
        "ssdlite320_mobilenet_v3_large)"
    )
    lines = dltk("check", recipe, 'model={name="mlp-gan"}').err_lines
    assert lines[0].startswith(f"{recipe}: model.name: model 'mlp-gan' provides 'gan', but the recipe 'detect' needs")
    result = dltk("check", recipe, 'dataset={name="digits"}')
    assert result.exit_code == 2
    assert result.err_lines[0] == (
        f"{recipe}: dataset.name: dataset 'digits' provides 'images' + 'labels', but the recipe 'detect' needs a "
        "dataset that provides 'boxes' + 'labels' (datasets that do: coco-folder, digit-boxes, voc-folder)"
    )
    result = dltk("check", recipe, 'recipe={name="classify"}', "metrics=[]")
    assert result.exit_code == 2
    assert f"{recipe}: model.name: model 'centernet' provides 'detector', but the recipe 'classify' needs" in result.err


def test_digit_boxes_are_seeded_inside_the_canvas_and_from_each_split_s_digits(monkeypatch):
    import numpy as np

    from dltoolkit_detect import digit_boxes as module
    from dltoolkit_detect.options import DigitBoxesConfig

    config = DigitBoxesConfig(train_images=20, test_images=20, canvas=48, min_size=10, max_size=16)
    a, b = module.digit_boxes(config, "test"), module.digit_boxes(config, "test")
    assert all(torch.equal(x, y) for x, y in zip(a.images, b.images, strict=True))
    assert a.spec.kind == "boxes" and a.spec.shape == (3, 48, 48) and a.spec.num_classes == 10
    for t in a.targets:
        boxes = t["boxes"]
        assert 1 <= len(boxes) <= 4 and (boxes >= 0).all() and (boxes <= 48).all()
        assert ((boxes[:, 2] - boxes[:, 0]) >= 1).all() and ((boxes[:, 3] - boxes[:, 1]) <= 16).all()
    drawn: list[int] = []
    real = module.digits_split_indices
    monkeypatch.setattr(module, "digits_split_indices", lambda split: drawn.extend(real(split)) or real(split))
    module.digit_boxes(config, "test")
    assert set(drawn) == set(real("test").tolist()) and not set(drawn) & set(np.asarray(real("train")).tolist())


def test_centernet_decodes_its_own_targets_back_to_the_boxes():
    from torchvision.ops import box_iou

    from dltoolkit_detect.centernet import CenterNet
    from dltoolkit_detect.options import CenterNetConfig

    model = CenterNet(3, 10, CenterNetConfig(width=8, blocks=1)).eval()
    target = {"boxes": torch.tensor([[4.0, 6.0, 20.0, 30.0], [30.0, 30.0, 50.0, 44.0]]), "labels": torch.tensor([3, 7])}
    heat, where, sizes, offsets = model.encode([target], (16, 16), torch.device("cpu"))
    logits = torch.logit(heat.clamp(1e-4, 1 - 1e-4))
    size = torch.zeros(1, 2, 16, 16)
    offset = torch.zeros(1, 2, 16, 16)
    size.permute(0, 2, 3, 1).reshape(-1, 2)[where] = sizes
    offset.permute(0, 2, 3, 1).reshape(-1, 2)[where] = offsets
    (found,) = model.decode(logits, size, offset)
    top = found["scores"] > 0.99
    assert found["labels"][top].tolist() == [3, 7] or found["labels"][top].tolist() == [7, 3]
    assert box_iou(found["boxes"][top], target["boxes"]).max(dim=1).values.min() > 0.99


def test_a_batch_larger_than_the_data_is_one_line_and_writes_nothing(dltk, tmp_path):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY)
    result = dltk("run", recipe, "recipe.batch_size=1000", "dataset.train_images=20", "--run-dir", tmp_path / "run")
    assert result.exit_code == 2
    assert result.err_lines == [
        f"{recipe}: recipe.batch_size: 1000 is more than the 20 training images (the last partial batch is "
        "dropped); lower it"
    ]
    assert not (tmp_path / "run").exists()
