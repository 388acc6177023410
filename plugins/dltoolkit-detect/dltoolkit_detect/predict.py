"""``dltk predict`` for detectors: one CSV row per box (file, label, score, x1, y1, x2, y2), and with
``--draw DIR`` each image with its boxes drawn."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dltoolkit import DataSpec, DltkError
from dltoolkit.images import check_images, image_files, read_image, save_png, to_signed_unit, to_uint8

BATCH = 16


def _row(file: str, box: list[float], label: str, score: float) -> dict[str, Any]:
    x1, y1, x2, y2 = (round(v, 4) for v in box)
    return {"file": file, "label": label, "score": round(score, 6), "x1": x1, "y1": y1, "x2": x2, "y2": y2}


def make_predict(
    model: nn.Module, device: torch.device, spec: DataSpec | None, draw_score: float
) -> Callable[..., Any]:
    """``predict(path, dataset, draw=None)`` for :class:`~dltoolkit.Trained`: every box the detector
    keeps (its own score threshold and count), in the input image's pixels; ``draw`` a folder to
    write each image with its boxes of at least ``draw_score`` into (PNG, named after the image)."""
    names = tuple(spec.class_names) if spec is not None else ()
    channels = int(spec.shape[0]) if spec is not None and len(spec.shape) == 3 else 3

    def name(index: int) -> str:
        return names[index] if 0 <= index < len(names) else str(index)

    def detect(images: list[Tensor]) -> list[dict[str, Tensor]]:
        training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return [{k: v.cpu() for k, v in p.items()} for p in model([i.to(device) for i in images])]
        finally:
            model.train(training)

    def drawn(folder: Path, file: str, image: Tensor, boxes: dict[str, Tensor]) -> None:
        from dltoolkit_detect.report import PREDICTED_COLOUR, draw_boxes

        keep = boxes["scores"] >= draw_score
        picture = draw_boxes(to_uint8(image), boxes["boxes"][keep], boxes["labels"][keep].tolist(), names,
                             PREDICTED_COLOUR, boxes["scores"][keep].tolist())  # fmt: skip
        save_png(picture, folder / (Path(file).stem + ".png"), durable=False)

    def inputs(path: Path | None, dataset: Any) -> Iterator[tuple[list[str], list[Tensor]]]:
        if dataset is not None:
            files = getattr(dataset, "files", None)
            for start in range(0, len(dataset), BATCH):
                index = list(range(start, min(len(dataset), start + BATCH)))
                shown = [str(files[i]) if files is not None else str(i) for i in index]
                yield shown, [dataset[i][0] for i in index]
            return
        assert path is not None
        found = image_files(Path(path), what="--input")
        problems = check_images(found, what="--input")
        if problems:
            raise DltkError(problems)
        for start in range(0, len(found), BATCH):
            chunk = found[start : start + BATCH]
            images = [to_signed_unit(read_image(f, channels=1 if channels == 1 else 3, what="--input")) for f in chunk]
            yield [str(f) for f in chunk], images

    def predict(path: Path | None, dataset: Any, draw: str | None = None) -> Iterator[dict[str, Any]]:
        folder = Path(draw) if draw is not None else None
        if folder is not None:
            if folder.exists() and not folder.is_dir():
                raise DltkError(f"--draw: '{folder}' is a file; give a folder for the drawn images")
            folder.mkdir(parents=True, exist_ok=True)
        for files, images in inputs(path, dataset):
            for file, image, boxes in zip(files, images, detect(images), strict=True):
                if folder is not None:
                    drawn(folder, file, image, boxes)
                rows = zip(boxes["boxes"].tolist(), boxes["labels"].tolist(), boxes["scores"].tolist(), strict=True)
                for box, label, score in rows:
                    yield _row(file, box, name(int(label)), float(score))

    return predict
