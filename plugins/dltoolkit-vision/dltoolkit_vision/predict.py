"""``dltk predict`` for classifiers: the most likely class of each image and its probability."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dltoolkit import DataSpec, DltkError
from dltoolkit.images import check_images, image_files, read_image, to_signed_unit

BATCH = 256
MAX_INPUT_PIXELS = 4096 * 4096
"""Largest input size (height x width) a model may record for ``--input`` images."""


def load_image(path: Path, shape: Sequence[int]) -> Tensor:
    """An image file as the model's input: grey or RGB as the model takes it, resized to cover
    ``(H, W)`` (bilinear) and centre-cropped to ``(C, H, W)``, values in [-1, 1]; read through
    :func:`dltoolkit.images.read_image` (its limits and one-line refusals, naming ``--input``)."""
    channels, height, width = (int(s) for s in shape)
    return to_signed_unit(read_image(path, channels=1 if channels == 1 else 3, size=(height, width), what="--input"))


def _batches(dataset: Any) -> Iterator[tuple[int, Tensor, Tensor]]:
    for start in range(0, len(dataset), BATCH):
        index = list(range(start, min(len(dataset), start + BATCH)))
        if hasattr(dataset, "__getitems__"):
            images, labels = dataset.__getitems__(index)[:2]
        else:
            items = [dataset[i] for i in index]
            images = torch.stack([item[0] for item in items])
            labels = torch.as_tensor([int(item[1]) for item in items])
        yield start, images, labels


def make_predict(model: nn.Module, device: torch.device, spec: DataSpec | None) -> Callable[[Any, Any], Any]:
    """``predict(path, dataset)`` for :class:`~dltoolkit.Trained`: one row per image with ``input`` (the
    file: given, or of the split when the dataset holds files, as image-folder does; else the index in
    the split), ``label`` (the class name when the data named its classes),
    ``probability`` (softmax), and for a dataset split the ``true_label``."""
    names = tuple(spec.class_names) if spec is not None else ()

    def name(index: int) -> str:
        return names[index] if 0 <= index < len(names) else str(index)

    def classify(images: Tensor) -> tuple[list[int], list[float]]:
        training = model.training
        model.eval()
        try:
            with torch.no_grad():
                probabilities = torch.softmax(model(images.to(device)).float(), dim=1)
        finally:
            model.train(training)
        best, index = probabilities.max(dim=1)
        return index.tolist(), best.tolist()

    def predict(path: Path | None, dataset: Any) -> Iterator[dict[str, Any]]:
        if dataset is not None:
            files = getattr(dataset, "files", None)  # image-folder: name each row by its file
            if files is not None and len(files) != len(dataset):
                files = None
            for start, images, labels in _batches(dataset):
                classes, probabilities = classify(images)
                rows = zip(classes, probabilities, labels.tolist(), strict=True)
                for offset, (k, p, truth) in enumerate(rows):
                    shown = str(files[start + offset]) if files is not None else start + offset
                    row = {"input": shown, "label": name(k), "probability": round(p, 6)}
                    yield {**row, "true_label": name(truth)}
            return
        assert path is not None
        if spec is None or len(spec.shape) != 3:
            raise DltkError("--input: this model does not record the image size it takes; predict on a split (test)")
        channels, height, width = (int(s) for s in spec.shape)
        if channels not in (1, 3) or min(height, width) < 1 or height * width > MAX_INPUT_PIXELS:
            raise DltkError(
                f"--input: the model records an input of {channels}x{height}x{width}, which no image is read as "
                "(a damaged or tampered export?); predict on a split (test) or re-export the run"
            )
        files = image_files(Path(path), what="--input")
        problems = check_images(files, what="--input")
        if problems:
            raise DltkError(problems)
        for start in range(0, len(files), BATCH):
            chunk = files[start : start + BATCH]
            classes, probabilities = classify(torch.stack([load_image(f, spec.shape) for f in chunk]))
            for file, k, p in zip(chunk, classes, probabilities, strict=True):
                yield {"input": str(file), "label": name(k), "probability": round(p, 6)}

    return predict
