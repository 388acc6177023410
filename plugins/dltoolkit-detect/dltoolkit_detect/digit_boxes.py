"""``digit-boxes``: an offline detection dataset made from scikit-learn's bundled digits.

Each canvas holds ``min_digits`` to ``max_digits`` digits, each scaled to a side drawn in
``[min_size, max_size]`` and pasted at a drawn position where it overlaps no other; its box is the
tight box of its ink. The train split's canvases use only digits of the digits' train split and
the test split's only those of its test split (:func:`dltoolkit.data.digits_split_indices`), so no
digit image is in both. Everything is drawn from ``seed`` and the split: the same canvases on
every machine.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dltoolkit.data import digits_split_indices
from dltoolkit_detect.data import DetectionImages, detection_spec, target
from dltoolkit_detect.options import DigitBoxesConfig

INK = 0.25
"""A pixel belongs to a digit's box where its scaled value is at least this share of white."""
TRIES = 50
"""Positions tried for one digit before it is left out of its canvas."""
CLASS_NAMES = tuple(str(d) for d in range(10))


def _scaled(digit: np.ndarray, size: int) -> np.ndarray:
    """An 8x8 digit (0..16) scaled to ``size`` x ``size``, float in [0, 1]."""
    image = torch.from_numpy(digit.astype(np.float32) / 16.0)[None, None]
    return F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False)[0, 0].clamp(0, 1).numpy()


def make_canvases(
    config: DigitBoxesConfig, split: str
) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]], list[str]]:
    """The canvases of ``split``: uint8 ``(3, S, S)`` images, their targets, and a name for each."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pool = digits_split_indices(split)
    count = config.train_images if split == "train" else config.test_images
    rng = np.random.default_rng([config.seed, 0 if split == "train" else 1])
    side = config.canvas
    images, targets, names = [], [], []
    for n in range(count):
        canvas = np.zeros((side, side), dtype=np.float32)
        taken: list[tuple[int, int, int]] = []
        boxes, labels = [], []
        for _ in range(int(rng.integers(config.min_digits, config.max_digits + 1))):
            index = int(pool[rng.integers(len(pool))])
            size = int(rng.integers(config.min_size, config.max_size + 1))
            for _try in range(TRIES):
                x, y = (int(v) for v in rng.integers(0, side - size + 1, size=2))
                if all(x + size <= tx or tx + ts <= x or y + size <= ty or ty + ts <= y for tx, ty, ts in taken):
                    break
            else:
                continue
            patch = _scaled(digits.images[index], size)
            ink = np.argwhere(patch >= INK)
            if len(ink) == 0:
                continue
            taken.append((x, y, size))
            canvas[y : y + size, x : x + size] = np.maximum(canvas[y : y + size, x : x + size], patch)
            (r0, c0), (r1, c1) = ink.min(0), ink.max(0)
            boxes.append([x + c0, y + r0, x + c1 + 1, y + r1 + 1])
            labels.append(int(digits.target[index]))
        grey = torch.from_numpy(np.round(canvas * 255.0).astype(np.uint8))
        images.append(grey[None].expand(3, side, side).contiguous())
        targets.append(target(boxes, labels))
        names.append(f"{split}-{n:05d}.png")
    return images, targets, names


def digit_boxes(config: DigitBoxesConfig, split: str | None = None) -> DetectionImages:
    """Digits pasted at seeded positions and sizes on a canvas, with their boxes and labels (offline)."""
    split = split or "train"
    images, targets, names = make_canvases(config, split)
    spec = detection_spec((3, config.canvas, config.canvas), CLASS_NAMES)
    return DetectionImages(images, targets, spec, files=names)
