"""``voc-folder``: images with boxes from a Pascal VOC folder.

```
ROOT/JPEGImages/<id>.jpg          the images
ROOT/Annotations/<id>.xml         one XML per image: size, and an <object> per box (name, bndbox, difficult)
ROOT/ImageSets/Main/train.txt     the ids of the train split, one a line
ROOT/ImageSets/Main/test.txt      the ids of the test split
```

VOC's pixel coordinates start at 1: a box ``xmin..xmax`` becomes ``x1 = xmin - 1, x2 = xmax``. Every
bad entry is one line naming the file and the object: an image or annotation file missing, an
unknown class, a box outside its image or of no size.
"""

from __future__ import annotations

import difflib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from dltoolkit import DltkError
from dltoolkit_detect.data import DetectionImages, detection_spec, target
from dltoolkit_detect.options import VocFolderConfig

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
    "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
MAX_PROBLEMS = 20
SUFFIXES = (".jpg", ".jpeg", ".png")


def _number(node: ET.Element | None, tag: str) -> float | None:
    text = node.findtext(tag) if node is not None else None
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _image_file(root: Path, image_id: str) -> Path | None:
    for suffix in SUFFIXES:
        file = root / "JPEGImages" / f"{image_id}{suffix}"
        if file.is_file():
            return file
    return None


def read_annotation(
    xml: Path, classes: tuple[str, ...], skip_difficult: bool, problems: list[str]
) -> dict[str, Any] | None:
    """One image's target from its XML (problems appended, one line each, naming the file and object)."""
    try:
        tree = ET.parse(xml).getroot()
    except (ET.ParseError, OSError) as exc:
        problems.append(f"{xml}: not a readable XML file ({exc})")
        return None
    size = tree.find("size")
    width, height = _number(size, "width"), _number(size, "height")
    if not width or not height:
        problems.append(f"{xml}: size: needs a width and a height above 0")
        return None
    boxes, labels = [], []
    for n, obj in enumerate(tree.findall("object")):
        name = (obj.findtext("name") or "").strip()
        entry = f"{xml}: object[{n}] ({name or 'no name'})"
        if skip_difficult and (obj.findtext("difficult") or "0").strip() == "1":
            continue
        if name not in classes:
            close = difflib.get_close_matches(name, classes, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f"; set dataset.classes (now {len(classes)} classes)"
            problems.append(f"{entry}: class '{name}' is not among dataset.classes{hint}")
            continue
        box = obj.find("bndbox")
        xmin, ymin, xmax, ymax = (_number(box, t) for t in ("xmin", "ymin", "xmax", "ymax"))
        if None in (xmin, ymin, xmax, ymax):
            problems.append(f"{entry}: bndbox needs numbers xmin, ymin, xmax, ymax")
            continue
        assert xmin is not None and ymin is not None and xmax is not None and ymax is not None
        if xmax < xmin or ymax < ymin:
            problems.append(f"{entry}: bndbox ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) has a negative size")
            continue
        if xmin < 0 or ymin < 0 or xmax > width + 1 or ymax > height + 1:
            problems.append(
                f"{entry}: bndbox ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) goes outside the {width:g}x{height:g} image"
            )
            continue
        boxes.append([max(xmin - 1, 0.0), max(ymin - 1, 0.0), min(xmax, width), min(ymax, height)])
        labels.append(classes.index(name))
    return target(boxes, labels)


def voc_folder(config: VocFolderConfig, split: str | None = None) -> DetectionImages:
    """Images with boxes from a Pascal VOC folder (JPEGImages/, Annotations/*.xml, ImageSets/Main)."""
    from dltoolkit.images import read_image

    split = split or "train"
    where = "dataset.root"
    root = Path(config.root)
    classes = tuple(config.classes) or VOC_CLASSES
    ids_file = root / "ImageSets" / "Main" / f"{split}.txt"
    if not ids_file.is_file():
        raise DltkError(f"{where}: no file '{ids_file}' (the image ids of the {split} split, one a line)")
    ids = [line.split()[0] for line in ids_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    problems: list[str] = []
    files, targets = [], []
    for n, image_id in enumerate(ids):
        xml = root / "Annotations" / f"{image_id}.xml"
        image = _image_file(root, image_id)
        if not xml.is_file():
            problems.append(f"{ids_file}: line {n + 1} ({image_id}): no annotation file '{xml}'")
            continue
        if image is None:
            problems.append(f"{ids_file}: line {n + 1} ({image_id}): no image file JPEGImages/{image_id}.jpg")
            continue
        found = read_annotation(xml, classes, config.skip_difficult, problems)
        if found is not None:
            files.append(image)
            targets.append(found)
    if problems:
        more = len(problems) - MAX_PROBLEMS
        raise DltkError(problems[:MAX_PROBLEMS] + ([f"{ids_file}: ... and {more} more problems"] if more > 0 else []))
    if not files:
        raise DltkError(f"{where}: '{ids_file}' lists no images")

    def load(i: int) -> Any:
        return read_image(files[i], channels=3, what=where)

    spec = detection_spec(tuple(load(0).shape), classes)
    return DetectionImages(None, targets, spec, files=[str(f.relative_to(root)) for f in files], load=load)
