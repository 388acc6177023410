"""Translation data: pairs of images (pix2pix) and two image domains (CycleGAN).

Every item is a tuple of float images in [-1, 1] and labels (-1 where the data has none):

* paired data: ``(a, b, label)``, the input, its target and the digit the pair shows;
* unpaired data: ``(a, b, label_a, label_b)``, an image of each domain. The dataset's length is
  the larger domain's; item ``i`` holds ``A[i mod |A|]`` and ``B[i mod |B|]``, and the loader's
  shuffle decides which images meet in a batch (the pairing carries no meaning).

``spec`` is a :class:`~dltoolkit.DataSpec` of kind ``"image-pairs"`` or ``"image-domains"``
whose ``shape`` is the B side's ``(C, H, W)`` and ``extra["input_channels"]`` the A side's channels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dltoolkit import DataSpec, DltkError
from dltoolkit.data import digits_split_indices
from dltoolkit.images import IMAGE_SUFFIXES, read_image, resize_uint8, to_signed_unit
from dltoolkit_translate.options import (
    DigitsOutlineConfig,
    DigitsStrokesConfig,
    PairedFolderConfig,
    UnpairedFolderConfig,
)

DIGIT_NAMES = tuple(str(i) for i in range(10))


def _spec(kind: str, a: Sequence[int], b: Sequence[int], labelled: bool) -> DataSpec:
    extra = {"input_channels": int(a[0])}
    if labelled:
        return DataSpec(kind, tuple(b), num_classes=10, class_names=DIGIT_NAMES, extra=extra)
    return DataSpec(kind, tuple(b), extra=extra)


class PairedImages:
    """Pairs held in memory as uint8 ``(N, C, H, W)``, served as ``(a, b, label)`` in [-1, 1]."""

    def __init__(self, a: Tensor, b: Tensor, labels: Tensor | None = None, identity: str = "pairs"):
        if len(a) != len(b):
            raise ValueError("both sides need as many images")
        self.a, self.b = a, b
        self.labels = labels if labels is not None else torch.full((len(a),), -1, dtype=torch.int64)
        self.spec = _spec("image-pairs", a.shape[1:], b.shape[1:], labels is not None)

    def __len__(self) -> int:
        return len(self.a)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        return to_signed_unit(self.a[index]), to_signed_unit(self.b[index]), self.labels[index]

    def __getitems__(self, indices: Sequence[int] | Tensor) -> tuple[Tensor, Tensor, Tensor]:
        index = torch.as_tensor(indices, dtype=torch.int64)
        return to_signed_unit(self.a[index]), to_signed_unit(self.b[index]), self.labels[index]


class UnpairedImages:
    """Two domains held in memory, served as ``(a, b, label_a, label_b)``; length: the larger domain's."""

    def __init__(self, a: Tensor, b: Tensor, labels_a: Tensor | None = None, labels_b: Tensor | None = None):
        self.a, self.b = a, b
        self.labels_a = labels_a if labels_a is not None else torch.full((len(a),), -1, dtype=torch.int64)
        self.labels_b = labels_b if labels_b is not None else torch.full((len(b),), -1, dtype=torch.int64)
        self.spec = _spec("image-domains", a.shape[1:], b.shape[1:], labels_a is not None)

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        i, j = index % len(self.a), index % len(self.b)
        return to_signed_unit(self.a[i]), to_signed_unit(self.b[j]), self.labels_a[i], self.labels_b[j]

    def __getitems__(self, indices: Sequence[int] | Tensor) -> tuple[Tensor, ...]:
        index = torch.as_tensor(indices, dtype=torch.int64)
        i, j = index % len(self.a), index % len(self.b)
        return to_signed_unit(self.a[i]), to_signed_unit(self.b[j]), self.labels_a[i], self.labels_b[j]


# --- the digits ----------------------------------------------------------------------------------


def _digits(split: str, size: int) -> tuple[Tensor, Tensor]:
    """scikit-learn's 8x8 digits of ``split`` (the built-in ``digits`` dataset's split) upsampled to
    ``size`` by repeating pixels (nearest), uint8 ``(N, 1, size, size)``, and their labels. Nearest,
    not bilinear: averaging each block gives the 8x8 digit back exactly, so a classifier of the
    8x8 digits reads the targets as well as it reads the digits (bilinear there and back: 84%)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    index = digits_split_indices(split)
    images = torch.from_numpy(np.rint(bunch.images[index] * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)
    images = images.repeat_interleave(size // 8, dim=2).repeat_interleave(size // 8, dim=3)
    return images, torch.from_numpy(bunch.target[index].astype(np.int64))


def outline(digits: Tensor) -> Tensor:
    """The outline of each digit: the background pixels (below mid-grey) that touch its stroke in a
    3x3 neighbourhood (the stroke's dilation less the stroke), white on black, uint8."""
    mask = (digits >= 128).float()
    return ((F.max_pool2d(mask, 3, stride=1, padding=1) - mask) * 255).to(torch.uint8)


def thin(digits: Tensor) -> Tensor:
    """Thinner strokes: a grey-level erosion (3x3 minimum) averaged with the digit, rescaled to full range."""
    x = digits.float()
    eroded = -F.max_pool2d(-x, 3, stride=1, padding=1)
    out = (x + eroded) / 2
    peak = out.flatten(1).amax(dim=1).clamp(min=1.0).view(-1, 1, 1, 1)
    return (out * (255.0 / peak)).round().clamp(0, 255).to(torch.uint8)


def digits_outline(config: DigitsOutlineConfig, split: str | None = None) -> PairedImages:
    """Outlines of scikit-learn's digits paired with the digits (A: outline, B: digit), upsampled to 16-64 pixels."""
    digits, labels = _digits(split or "train", config.image_size)
    a, b = outline(digits), digits
    if config.direction == "BtoA":
        a, b = b, a
    return PairedImages(a, b, labels)


def digits_strokes(config: DigitsStrokesConfig, split: str | None = None) -> UnpairedImages:
    """Two unpaired domains of scikit-learn's digits: thin strokes (A, a grey-level erosion) and the
    digits as drawn, with their thicker strokes (B).

    The training split's digits are divided between the domains (even positions to A, odd to
    B), so that no digit is seen in both; the held-out split gives each of its digits in both."""
    digits, labels = _digits(split or "train", config.image_size)
    if (split or "train") == "train":
        a, la, b, lb = thin(digits[0::2]), labels[0::2], digits[1::2], labels[1::2]
    else:
        a, la, b, lb = thin(digits), labels, digits, labels
    if config.direction == "BtoA":
        a, la, b, lb = b, lb, a, la
    return UnpairedImages(a, b, la, lb)


# --- folders --------------------------------------------------------------------------------------


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _size_of(path: Path) -> tuple[int, int]:
    """``(width, height)`` from the file's header; a file PIL cannot open is a one-line error."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size
    except Exception as exc:
        raise DltkError(f"dataset.root: '{path}' is not a readable image ({type(exc).__name__})") from None


def _split_folder(root: Path, split: str, names: Sequence[str]) -> str:
    """The split's folder name: ``train``, and ``test`` (else ``val``) for held-out data."""
    if split == "train":
        return names[0]
    return next((n for n in names[1:] if (root / n).exists()), names[1])


class _Jitter:
    """Resize to ``load_size``, crop ``crop_size`` at one random place and flip at random (training),
    or resize to ``crop_size`` (held out): the same for every image of one item."""

    def __init__(self, load_size: int, crop_size: int, flip: bool, train: bool):
        self.load, self.crop, self.flip, self.train = max(load_size, crop_size), crop_size, flip, train

    def __call__(self, images: Tensor) -> Tensor:
        if not self.train:
            return resize_uint8(images, self.crop)
        images = resize_uint8(images, self.load)
        top, left = (int(v) for v in torch.randint(0, self.load - self.crop + 1, (2,)))
        images = images[..., top : top + self.crop, left : left + self.crop]
        if self.flip and bool(torch.rand(()) < 0.5):
            images = images.flip(-1)
        return images.contiguous()


class PairedFolder:
    """Pairs read from files per item: A|B side by side in one file, or ``A/name`` with ``B/name``."""

    def __init__(self, pairs: list[tuple[Path, Path | None]], config: PairedFolderConfig, train: bool):
        self.pairs, self.config = pairs, config
        self.jitter = _Jitter(config.load_size, config.crop_size, config.flip, train)
        c, s = config.channels, config.crop_size
        self.spec = _spec("image-pairs", (c, s, s), (c, s, s), False)
        self.files = [a for a, _ in pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        first, second = self.pairs[index]
        channels = self.config.channels
        image = read_image(first, channels=channels, what="dataset.root")
        if second is None:
            half = image.shape[-1] // 2
            a, b = image[..., :half], image[..., half : 2 * half]
        else:
            a, b = image, read_image(second, channels=channels, what="dataset.root")
        a, b = self.jitter(torch.stack([a, b]))
        if self.config.direction == "BtoA":
            a, b = b, a
        return to_signed_unit(a), to_signed_unit(b), torch.tensor(-1)


def paired_folder(config: PairedFolderConfig, split: str | None = None) -> PairedFolder:
    """Aligned pairs from a folder: A|B images side by side (facades, maps) or A/ and B/ folders with the same names."""
    root = Path(config.root).expanduser()
    if not root.is_dir():
        raise DltkError(f"dataset.root: '{root}' is not a folder (it needs train/ and test/ inside)")
    folder = root / _split_folder(root, split or "train", ("train", "test", "val"))
    a_dir, b_dir = folder / "A", folder / "B"
    problems: list[str] = []
    pairs: list[tuple[Path, Path | None]] = []
    if a_dir.is_dir() or b_dir.is_dir():
        a_files = {p.relative_to(a_dir): p for p in _images_in(a_dir)}
        b_files = {p.relative_to(b_dir): p for p in _images_in(b_dir)}
        for name in sorted(set(a_files) - set(b_files)):
            problems.append(f"dataset.root: '{a_files[name]}' has no counterpart '{b_dir / name}'")
        for name in sorted(set(b_files) - set(a_files)):
            problems.append(f"dataset.root: '{b_files[name]}' has no counterpart '{a_dir / name}'")
        for name in sorted(set(a_files) & set(b_files)):
            size_a, size_b = _size_of(a_files[name]), _size_of(b_files[name])
            if size_a != size_b:
                problems.append(
                    f"dataset.root: '{a_files[name]}' is {size_a[0]}x{size_a[1]} but '{b_files[name]}' is "
                    f"{size_b[0]}x{size_b[1]}; the sides of a pair must be the same size"
                )
            pairs.append((a_files[name], b_files[name]))
    else:
        for path in _images_in(folder):
            width, height = _size_of(path)
            if width % 2:
                problems.append(
                    f"dataset.root: '{path}' is {width}x{height}: an A|B pair needs an even width (two sides of "
                    f"{width // 2} and {width - width // 2} pixels differ)"
                )
            pairs.append((path, None))
    if problems:
        raise DltkError(problems)
    if not pairs:
        raise DltkError(f"dataset.root: '{folder}' holds no image pairs (A|B images, or A/ and B/ folders)")
    return PairedFolder(pairs, config, train=(split or "train") == "train")


class UnpairedFolder:
    """Two domains of image files, read per item: ``(a, b, -1, -1)``; length: the larger domain's."""

    def __init__(self, a: list[Path], b: list[Path], config: UnpairedFolderConfig, train: bool):
        self.a, self.b, self.config = a, b, config
        self.jitter = _Jitter(config.load_size, config.crop_size, config.flip, train)
        c, s = config.channels, config.crop_size
        self.spec = _spec("image-domains", (c, s, s), (c, s, s), False)
        self.files = list(a)

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def _read(self, path: Path) -> Tensor:
        image = read_image(path, channels=self.config.channels, what="dataset.root")
        return to_signed_unit(self.jitter(image.unsqueeze(0))[0])

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        minus = torch.tensor(-1)
        return self._read(self.a[index % len(self.a)]), self._read(self.b[index % len(self.b)]), minus, minus


def unpaired_folder(config: UnpairedFolderConfig, split: str | None = None) -> UnpairedFolder:
    """Two unaligned image domains: trainA/, trainB/, testA/ and testB/ folders (horse2zebra's layout)."""
    root = Path(config.root).expanduser()
    if not root.is_dir():
        raise DltkError(f"dataset.root: '{root}' is not a folder (it needs trainA/, trainB/, testA/ and testB/)")
    prefix = "train" if (split or "train") == "train" else "test"
    domains = {side: _images_in(root / f"{prefix}{side}") for side in "AB"}
    problems = [
        f"dataset.root: '{root / f'{prefix}{side}'}' holds no images (an empty domain)"
        for side, files in domains.items()
        if not files
    ]
    if problems:
        raise DltkError(problems)
    a, b = domains["A"], domains["B"]
    if config.direction == "BtoA":
        a, b = b, a
    return UnpairedFolder(a, b, config, train=prefix == "train")
