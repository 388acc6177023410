"""Detection datasets: images with boxes and labels, served as torchvision's detectors take them.

One sample is ``(image, target)``: a float image ``(C, H, W)`` in [-1, 1] (dltoolkit's convention;
images of one dataset may differ in size) and ``{"boxes": float32 (n, 4) as x1, y1, x2, y2 in
pixels, "labels": int64 (n,) class indices 0..K-1}`` (``n`` may be 0). A batch is a tuple ``(list
of images, list of targets)``: :meth:`DetectionImages.__getitems__` cuts it, so dltoolkit's
loaders pass it through instead of stacking images of different sizes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from dltoolkit import DataSpec
from dltoolkit.images import to_signed_unit

KIND = "boxes"
"""``DataSpec.kind`` of detection data: images with boxes (``shape`` is a typical ``(C, H, W)``)."""


def detection_spec(shape: Sequence[int], class_names: Sequence[str], **extra: Any) -> DataSpec:
    """The description of a detection dataset: ``kind="boxes"``, an image shape (the canvas, or the
    largest image), the classes."""
    names = tuple(str(n) for n in class_names)
    return DataSpec(KIND, tuple(int(s) for s in shape), num_classes=len(names), class_names=names, extra=extra)


class DetectionImages(Dataset):
    """Images (uint8 ``(C, H, W)`` tensors in memory, or files read when served) with their targets.

    ``files`` names each image (for ``dltk predict``'s rows); ``load`` reads one image when the
    images are files. ``spec`` is its :class:`~dltoolkit.DataSpec`.
    """

    def __init__(
        self,
        images: Sequence[Tensor] | None,
        targets: Sequence[dict[str, Tensor]],
        spec: DataSpec,
        *,
        files: Sequence[str] = (),
        load: Callable[[int], Tensor] | None = None,
    ):
        if images is None and load is None:
            raise ValueError("give images or load")
        self.images = images
        self.targets = list(targets)
        self.spec = spec
        self.files = list(files) if files else None
        self._load = load

    def __len__(self) -> int:
        return len(self.targets)

    def uint8_image(self, index: int) -> Tensor:
        """The image ``index`` as stored: uint8 ``(C, H, W)``."""
        if self.images is not None:
            return self.images[index]
        assert self._load is not None
        return self._load(index)

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        target = self.targets[index]
        return to_signed_unit(self.uint8_image(index)), {k: v.clone() for k, v in target.items()}

    def __getitems__(self, indices: Sequence[int]) -> tuple[list[Tensor], list[dict[str, Tensor]]]:
        items = [self[int(i)] for i in indices]
        return [image for image, _ in items], [target for _, target in items]


def target(boxes: Any, labels: Any) -> dict[str, Tensor]:
    """A target as the datasets give it: float32 boxes ``(n, 4)`` and int64 labels ``(n,)``."""
    return {
        "boxes": torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.as_tensor(labels, dtype=torch.int64).reshape(-1),
    }


def as_batch(batch: Any) -> tuple[list[Tensor], list[dict[str, Tensor]]]:
    """A batch as ``(images, targets)`` lists, whether cut by :meth:`DetectionImages.__getitems__`
    or collated from single samples."""
    images, targets = batch[0], batch[1]
    if isinstance(images, Tensor) and images.dim() == 3:
        images, targets = [images], [targets]
    return list(images), list(targets)
