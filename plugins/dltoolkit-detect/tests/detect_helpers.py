"""What the detection plugin's tests share: a tiny COCO-format folder and recipe files for it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dltoolkit.files import sha256_file

ARCHS = {
    "fasterrcnn_mobilenet_v3_large_fpn": "mobilenet_v3_large",
    "ssdlite320_mobilenet_v3_large": "mobilenet_v3_large",
    "retinanet_resnet50_fpn": "resnet50",
}


def write_coco_folder(root: Path, counts: dict[str, int] | None = None) -> Path:
    """A tiny COCO-format folder: PNGs of different sizes with one or two filled rectangles each,
    categories with ids 3 ('square') and 7 ('bar')."""
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "annotations").mkdir(parents=True)
    for split, count in (counts or {"train": 4, "test": 2}).items():
        (root / split).mkdir()
        images, annotations = [], []
        for n in range(count):
            width, height = (64, 48) if n % 2 else (48, 64)
            pixels = rng.integers(0, 60, size=(height, width, 3), dtype=np.uint8)
            for k in range(1 + n % 2):
                x, y = int(rng.integers(0, width - 24)), int(rng.integers(0, height - 24))
                w, h = (16, 16) if k == 0 else (20, 8)
                pixels[y : y + h, x : x + w] = (220, 200, 40) if k == 0 else (40, 120, 230)
                annotations.append({"id": len(annotations) + 1, "image_id": n + 1, "category_id": 3 if k == 0 else 7,
                                    "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})  # fmt: skip
            Image.fromarray(pixels).save(root / split / f"img{n}.png")
            images.append({"id": n + 1, "file_name": f"img{n}.png", "width": width, "height": height})
        instances = {"images": images, "annotations": annotations,
                     "categories": [{"id": 3, "name": "square"}, {"id": 7, "name": "bar"}]}  # fmt: skip
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(instances))
    return root


def recipe_text(arch: str, root: Path, weights: dict[str, Path] | None, **recipe: object) -> str:
    options = {"epochs": 1, "batch_size": 2, "optimizer": "sgd", "lr": 0.01, "warmup_iterations": 1, "log_every": 1,
               "grid_images": 2, **recipe}  # fmt: skip
    lines = [
        "seed = 1", "", "[run]", 'device = "cpu"', "threads = 1", "", "[recipe]", 'name = "detect"',
        *(f"{k} = {json.dumps(v)}" for k, v in options.items()),
        "", "[model]", f'name = "{arch}"', "score_threshold = 0.0",
    ]  # fmt: skip
    if not arch.startswith("ssdlite"):
        lines += ["min_size = 64", "max_size = 64"]
    for key, path in (weights or {}).items():
        lines += [f'{key}_path = "{path}"', f'{key}_sha256 = "{sha256_file(path)}"']
    lines += ["", "[dataset]", 'name = "coco-folder"', f'root = "{root}"', "", "[[metrics]]", 'name = "map50"']
    return "\n".join(lines) + "\n"
