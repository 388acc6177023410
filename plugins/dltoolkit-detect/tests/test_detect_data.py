"""``coco-folder`` and ``voc-folder``: boxes read right, and every bad annotation one line naming its file
and entry, all at once, before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from detect_helpers import recipe_text, write_coco_folder

from dltoolkit_detect.coco import coco_folder
from dltoolkit_detect.options import CocoFolderConfig, VocFolderConfig
from dltoolkit_detect.voc import voc_folder


def test_coco_folder_gives_boxes_in_pixels_and_classes_in_category_order(tmp_path):
    root = write_coco_folder(tmp_path / "coco")
    data = coco_folder(CocoFolderConfig(root=str(root)), "train")
    assert len(data) == 4 and data.spec.kind == "boxes" and data.spec.class_names == ("square", "bar")
    instances = json.loads((root / "annotations" / "instances_train.json").read_text())
    first = [a for a in instances["annotations"] if a["image_id"] == 2]
    image, target = data[1]
    assert image.shape == (3, 48, 64) and image.min() >= -1.0 and image.max() <= 1.0
    x, y, w, h = first[0]["bbox"]
    assert target["boxes"][0].tolist() == [x, y, x + w, y + h]
    assert target["labels"].tolist() == [0, 1]  # category ids 3 and 7
    images, targets = data.__getitems__([0, 1])  # a batch: lists, as torchvision's detectors take
    assert [tuple(i.shape) for i in images] == [(3, 64, 48), (3, 48, 64)] and len(targets) == 2


def test_bad_coco_annotations_are_one_line_each_naming_file_and_entry(dltk, tmp_path):
    root = write_coco_folder(tmp_path / "coco")
    path = root / "annotations" / "instances_train.json"
    instances = json.loads(path.read_text())
    instances["images"][2]["file_name"] = "gone.png"
    annotations = instances["annotations"]
    annotations[0]["bbox"] = [40, 40, 30, 30]  # image 1 is 48 wide
    annotations[1]["bbox"] = [5, 5, -3, 4]
    annotations[2]["category_id"] = 99
    annotations[3]["image_id"] = 42
    path.write_text(json.dumps(instances))
    recipe = tmp_path / "r.toml"
    recipe.write_text(recipe_text("fasterrcnn_mobilenet_v3_large_fpn", root, None))
    result = dltk("run", recipe, "--run-dir", tmp_path / "run")
    assert result.exit_code == 2
    ids = [a["id"] for a in annotations]
    assert result.err_lines == [
        f"{recipe}: {path}: images[2] (id 3): no image file '{root / 'train' / 'gone.png'}'",
        f"{recipe}: {path}: annotations[0] (id {ids[0]}): bbox [40, 40, 30, 30] goes outside its 48x64 image "
        "(image_id 1)",
        f"{recipe}: {path}: annotations[1] (id {ids[1]}): bbox [5, 5, -3, 4] has a width or height of zero or less",
        f"{recipe}: {path}: annotations[2] (id {ids[2]}): category_id 99 is not among the categories [3, 7]",
        f"{recipe}: {path}: annotations[3] (id {ids[3]}): image_id 42 is not among 'images'",
    ]
    assert not (tmp_path / "run").exists()


def test_a_coco_folder_without_its_files_is_one_line(tmp_path):
    from dltoolkit import DltkError

    (tmp_path / "empty").mkdir()
    with pytest.raises(DltkError, match=r"^dataset.root: no file '.*instances_train.json' \(a COCO instances file"):
        coco_folder(CocoFolderConfig(root=str(tmp_path / "empty")), "train")
    (tmp_path / "empty" / "annotations").mkdir()
    (tmp_path / "empty" / "annotations" / "instances_train.json").write_text("{not json")
    with pytest.raises(DltkError, match=r"instances_train.json' is not JSON"):
        coco_folder(CocoFolderConfig(root=str(tmp_path / "empty")), "train")


def write_voc(root: Path, objects: dict[str, list[tuple[str, int, int, int, int]]], size=(64, 48)) -> Path:
    """A tiny Pascal VOC folder: one PNG and one XML per image id, all in the train split."""
    from PIL import Image

    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for image_id, boxes in objects.items():
        Image.new("RGB", size, (30, 30, 30)).save(root / "JPEGImages" / f"{image_id}.png")
        body = "".join(
            f"<object><name>{n}</name><difficult>0</difficult><bndbox><xmin>{a}</xmin><ymin>{b}</ymin>"
            f"<xmax>{c}</xmax><ymax>{d}</ymax></bndbox></object>"
            for n, a, b, c, d in boxes
        )
        head = f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>"
        xml = f"<annotation>{head}{body}</annotation>"
        (root / "Annotations" / f"{image_id}.xml").write_text(xml)
    (root / "ImageSets" / "Main" / "train.txt").write_text("\n".join(objects) + "\n")
    return root


def test_voc_folder_reads_one_based_boxes_and_named_classes(tmp_path):
    root = write_voc(tmp_path / "voc", {"a": [("dog", 1, 1, 10, 20), ("cat", 5, 6, 30, 40)], "b": []})
    data = voc_folder(VocFolderConfig(root=str(root)), "train")
    assert len(data) == 2 and data.spec.num_classes == 20
    _image, target = data[0]
    assert target["boxes"].tolist() == [[0.0, 0.0, 10.0, 20.0], [4.0, 5.0, 30.0, 40.0]]
    assert target["labels"].tolist() == [11, 7]  # dog, cat among the 20 VOC classes
    assert data[1][1]["boxes"].shape == (0, 4)
    mine = voc_folder(VocFolderConfig(root=str(root), classes=("cat", "dog")), "train")
    assert mine.spec.class_names == ("cat", "dog") and torch.equal(mine[0][1]["labels"], torch.tensor([1, 0]))


def test_bad_voc_annotations_are_one_line_each_naming_file_and_object(tmp_path):
    from dltoolkit import DltkError

    root = write_voc(tmp_path / "voc", {"a": [("dgo", 1, 1, 10, 10), ("cat", 20, 5, 10, 30), ("cat", 1, 1, 90, 20)]})
    (root / "ImageSets" / "Main" / "train.txt").write_text("a\nmissing\n")
    with pytest.raises(DltkError) as caught:
        voc_folder(VocFolderConfig(root=str(root)), "train")
    xml = root / "Annotations" / "a.xml"
    assert list(caught.value.problems) == [
        f"{xml}: object[0] (dgo): class 'dgo' is not among dataset.classes (did you mean 'dog'?)",
        f"{xml}: object[1] (cat): bndbox (20, 5, 10, 30) has a negative size",
        f"{xml}: object[2] (cat): bndbox (1, 1, 90, 20) goes outside the 64x48 image",
        f"{root / 'ImageSets' / 'Main' / 'train.txt'}: line 2 (missing): no annotation file "
        f"'{root / 'Annotations' / 'missing.xml'}'",
    ]


@pytest.mark.slow
def test_a_voc_folder_trains_centernet_and_is_scored(dltk, tmp_path):
    root = write_voc(tmp_path / "voc", {"a": [("dog", 1, 1, 20, 20)], "b": [("cat", 10, 10, 40, 30)], "c": []})
    (root / "ImageSets" / "Main" / "test.txt").write_text("a\nb\n")
    recipe = tmp_path / "voc.toml"
    recipe.write_text(
        '[run]\ndevice = "cpu"\n\n[recipe]\nname = "detect"\nepochs = 1\nbatch_size = 2\nwarmup_iterations = 1\n\n'
        '[model]\nname = "centernet"\nwidth = 8\nblocks = 1\n\n'
        f'[dataset]\nname = "voc-folder"\nroot = "{root}"\nclasses = ["cat", "dog"]\n\n[[metrics]]\nname = "map"\n'
    )
    result = dltk("run", recipe, "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.err
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["protocol"]["map"]["count"] for r in lines if r["kind"] == "eval"] == [2]
    out = tmp_path / "boxes.csv"
    assert dltk("predict", tmp_path / "run", "--input", root / "JPEGImages" / "a.png", "--out", out).exit_code == 0
    assert out.read_text().startswith("file,label,score,x1,y1,x2,y2\n")
