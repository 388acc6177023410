"""The COCO mAP of `dltk predict` boxes, by the reference evaluation (pycocotools), from the CSV alone.

    uv run dltk predict RUN --input test --out boxes.csv
    uv run python benchmarks/detect_map_from_csv.py RUN boxes.csv

Rebuilds the held-out split the run recorded (its recipe.toml's [dataset] table), reads the CSV's
rows (file, label, score, x1, y1, x2, y2), scores them with pycocotools' COCOeval and prints the
figures beside the run's logged evaluations (metrics.jsonl), for the checkpoint compared.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
from pathlib import Path

import tomllib


def main(run: Path, boxes: Path, split: str = "test") -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from dltoolkit_detect.coco import coco_folder
    from dltoolkit_detect.digit_boxes import digit_boxes
    from dltoolkit_detect.metrics import coco_ground_truth
    from dltoolkit_detect.options import CocoFolderConfig, DigitBoxesConfig, VocFolderConfig
    from dltoolkit_detect.voc import voc_folder

    table = dict(tomllib.loads((run / "recipe.toml").read_text())["dataset"])
    name = table.pop("name")
    builders = {
        "digit-boxes": (digit_boxes, DigitBoxesConfig),
        "coco-folder": (coco_folder, CocoFolderConfig),
        "voc-folder": (voc_folder, VocFolderConfig),
    }
    build, config = builders[name]
    data = build(config(**table), split)
    names = list(data.spec.class_names)
    ids = {file: n + 1 for n, file in enumerate(data.files)}
    detections = []
    with boxes.open() as handle:
        for r in csv.DictReader(handle):
            x1, y1, x2, y2 = (float(r[k]) for k in ("x1", "y1", "x2", "y2"))
            key = r["file"] if r["file"] in ids else Path(r["file"]).name
            detections.append({"image_id": ids[key], "category_id": names.index(r["label"]) + 1,
                               "score": float(r["score"]), "bbox": [x1, y1, x2 - x1, y2 - y1]})  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = coco_ground_truth(data.targets, len(names))
        gt.createIndex()
        evaluation = COCOeval(gt, gt.loadRes(detections), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    print(f"pycocotools from {boxes} ({len(detections)} boxes, {len(ids)} images): "
          f"mAP@[.5:.95] {evaluation.stats[0]:.4f}, mAP@.5 {evaluation.stats[1]:.4f}")  # fmt: skip
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["kind"] == "eval":
            shown = {k: round(record[k], 4) for k in ("map", "map50") if k in record}
            print(f"logged at iteration {record['iteration']}: {shown}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), *(sys.argv[3:4]))
