"""``coco-folder``: images with boxes from a folder in COCO format.

```
ROOT/train/...                          images of the train split (any sub-folders)
ROOT/test/...                           images of the test split
ROOT/annotations/instances_train.json   COCO "instances": images, annotations (bbox x, y, w, h), categories
ROOT/annotations/instances_test.json
```

Classes are the train file's ``categories`` in id order (the test file's must be among them).
Crowd annotations (``iscrowd: 1``) are left out, as torchvision's references train. Every bad entry
is one line naming the file and the entry: an image file missing, a box outside its image or of no
size, an unknown category or image id.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dltoolkit import DltkError
from dltoolkit_detect.data import DetectionImages, detection_spec, target
from dltoolkit_detect.options import CocoFolderConfig

MAX_PROBLEMS = 20
TOLERANCE = 1.0
"""Pixels a box may pass the image's edge by (rounding in annotation tools); it is clipped."""


def _read_json(path: Path, where: str) -> dict[str, Any]:
    if not path.is_file():
        raise DltkError(f"{where}: no file '{path}' (a COCO instances file: images, annotations, categories)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DltkError(f"{where}: '{path}' is not JSON ({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "annotations")):
        raise DltkError(f"{where}: '{path}' is not a COCO instances file (it needs 'images' and 'annotations' lists)")
    return data


def _categories(data: dict[str, Any], path: Path, where: str) -> tuple[list[int], list[str]]:
    categories = data.get("categories")
    if not isinstance(categories, list) or not categories:
        raise DltkError(f"{where}: '{path}' has no 'categories' (each {{'id', 'name'}}): the classes come from them")
    try:
        pairs = sorted((int(c["id"]), str(c.get("name", c["id"]))) for c in categories)
    except (KeyError, TypeError, ValueError):
        raise DltkError(f"{where}: '{path}': each of 'categories' needs an integer 'id' and a 'name'") from None
    return [i for i, _ in pairs], [n for _, n in pairs]


def _image_size(image: dict[str, Any], file: Path) -> tuple[float, float]:
    width, height = image.get("width"), image.get("height")
    if isinstance(width, (int, float)) and isinstance(height, (int, float)) and width > 0 and height > 0:
        return float(width), float(height)
    from PIL import Image

    with Image.open(file) as opened:
        return float(opened.width), float(opened.height)


def read_split(root: Path, split: str, category_ids: list[int], where: str) -> tuple[list[Path], list[dict[str, Any]]]:
    """The image files of ``split`` and their targets, or a :class:`DltkError` with a line per bad entry."""
    path = root / "annotations" / f"instances_{split}.json"
    data = _read_json(path, where)
    index = {c: k for k, c in enumerate(category_ids)}
    problems: list[str] = []
    files: list[Path] = []
    sizes: dict[Any, tuple[float, float]] = {}
    order: dict[Any, int] = {}
    for n, image in enumerate(data["images"]):
        entry = f"{path}: images[{n}]"
        if not isinstance(image, dict) or "id" not in image or not isinstance(image.get("file_name"), str):
            problems.append(f"{entry}: needs an 'id' and a 'file_name'")
            continue
        file = root / split / image["file_name"]
        if not file.is_file():
            problems.append(f"{entry} (id {image['id']}): no image file '{file}'")
            continue
        order[image["id"]] = len(files)
        sizes[image["id"]] = _image_size(image, file)
        files.append(file)
    listed = {i.get("id") for i in data["images"] if isinstance(i, dict)}
    boxes: list[list[list[float]]] = [[] for _ in files]
    labels: list[list[int]] = [[] for _ in files]
    for n, ann in enumerate(data["annotations"]):
        entry = f"{path}: annotations[{n}]" + (f" (id {ann['id']})" if isinstance(ann, dict) and "id" in ann else "")
        if not isinstance(ann, dict):
            problems.append(f"{entry}: not an object")
            continue
        if ann.get("iscrowd"):
            continue
        image_id, category = ann.get("image_id"), ann.get("category_id")
        if image_id not in order:
            if image_id not in listed:  # else its image file is missing: said above
                problems.append(f"{entry}: image_id {image_id!r} is not among 'images'")
            continue
        if category not in index:
            problems.append(f"{entry}: category_id {category!r} is not among the categories {category_ids}")
            continue
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
            problems.append(f"{entry}: bbox {bbox!r} is not [x, y, width, height]")
            continue
        x, y, w, h = (float(v) for v in bbox)
        width, height = sizes[image_id]
        if w <= 0 or h <= 0:
            problems.append(f"{entry}: bbox {bbox} has a width or height of zero or less")
            continue
        if x < -TOLERANCE or y < -TOLERANCE or x + w > width + TOLERANCE or y + h > height + TOLERANCE:
            problems.append(f"{entry}: bbox {bbox} goes outside its {width:g}x{height:g} image (image_id {image_id})")
            continue
        k = order[image_id]
        boxes[k].append([max(x, 0.0), max(y, 0.0), min(x + w, width), min(y + h, height)])
        labels[k].append(index[category])
    if problems:
        more = len(problems) - MAX_PROBLEMS
        raise DltkError(problems[:MAX_PROBLEMS] + ([f"{path}: ... and {more} more problems"] if more > 0 else []))
    return files, [target(b, lab) for b, lab in zip(boxes, labels, strict=True)]


def coco_folder(config: CocoFolderConfig, split: str | None = None) -> DetectionImages:
    """Images with boxes from a COCO-format folder (train/, test/, annotations/instances_*.json)."""
    from dltoolkit.images import read_image

    split = split or "train"
    where = "dataset.root"
    root = Path(config.root)
    if not root.is_dir():
        raise DltkError(f"{where}: no folder '{root}'")
    train_file = root / "annotations" / "instances_train.json"
    category_ids, names = _categories(_read_json(train_file, where), train_file, where)
    files, targets = read_split(root, split, category_ids, where)
    if not files:
        raise DltkError(f"{where}: '{root / 'annotations' / f'instances_{split}.json'}' lists no images")

    def load(i: int) -> Any:
        return read_image(files[i], channels=3, what=where)

    first = load(0)
    spec = detection_spec(tuple(first.shape), names, categories=category_ids)
    shown = [str(f.relative_to(root)) for f in files]
    return DetectionImages(None, targets, spec, files=shown, load=load)
