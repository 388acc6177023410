"""Built-in image datasets: MNIST, Fashion-MNIST, CIFAR-10 (torchvision), a folder of images, and
scikit-learn's bundled 8x8 digits (real data that needs no download)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from dltoolkit import Component, DltkError, InMemoryImages, hookimpl, option
from dltoolkit._data import convert_channels, resize_uint8, to_signed_unit

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def _optional_range(low: int, high: int) -> Any:
    return attrs.validators.optional([attrs.validators.ge(low), attrs.validators.le(high)])


@attrs.frozen
class ImageDatasetConfig:
    """Options shared by every built-in image dataset."""

    root: str = option("data", doc="Folder holding the dataset files (or, for image-folder, the images).")
    download: bool = option(False, doc="Download into `root` when the files are missing (torchvision datasets only).")
    image_size: int | None = option(
        None,
        doc="Resize to this square size (default: the dataset's own size; image-folder: 64).",
        validator=_optional_range(4, 1024),
    )
    channels: int | None = option(
        None,
        doc="1 (grayscale) or 3 (RGB); default: the dataset's own.",
        validator=attrs.validators.optional(attrs.validators.in_((1, 3))),
    )
    split: str = option("train", doc="'train' or 'test'.", validator=attrs.validators.in_(("train", "test")))


def _finish(images: Tensor, labels: Tensor | None, config: ImageDatasetConfig) -> InMemoryImages:
    if config.channels is not None:
        images = convert_channels(images, config.channels)
    if config.image_size is not None:
        images = resize_uint8(images, config.image_size)
    return InMemoryImages(images, labels)


def _torchvision(cls_name: str, display: str, expected: str, config: ImageDatasetConfig, split: str | None) -> Any:
    import torchvision.datasets as tvd

    cls = getattr(tvd, cls_name)
    train = (split or config.split) == "train"
    try:
        return cls(root=config.root, train=train, download=config.download)
    except RuntimeError as exc:
        if "not found" in str(exc).lower() or "corrupted" in str(exc).lower():
            how = (
                "set dataset.download = true to fetch it"
                if not config.download
                else "the download left no usable files"
            )
            raise DltkError(
                f"dataset.root: {display} not found in '{config.root}': put {expected} there, or {how}"
            ) from None
        raise DltkError(f"dataset: {display}: could not load from '{config.root}': {exc}") from None
    except OSError as exc:  # URLError, socket errors, permission problems during download
        raise DltkError(
            f"dataset.download: could not download {display} ({type(exc).__name__}: {exc}); "
            f"place its files in dataset.root '{config.root}' ({expected}) and set download = false"
        ) from None


def mnist(config: ImageDatasetConfig, split: str | None = None) -> InMemoryImages:
    """MNIST handwritten digits, 28x28 grayscale (torchvision), held in memory."""
    ds = _torchvision("MNIST", "MNIST", "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte", config, split)
    return _finish(ds.data.unsqueeze(1), ds.targets, config)


def fashion_mnist(config: ImageDatasetConfig, split: str | None = None) -> InMemoryImages:
    """Fashion-MNIST clothing images, 28x28 grayscale (torchvision), held in memory."""
    ds = _torchvision(
        "FashionMNIST",
        "Fashion-MNIST",
        "FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte",
        config,
        split,
    )
    return _finish(ds.data.unsqueeze(1), ds.targets, config)


def cifar10(config: ImageDatasetConfig, split: str | None = None) -> InMemoryImages:
    """CIFAR-10 natural images, 32x32 RGB (torchvision), held in memory."""
    ds = _torchvision("CIFAR10", "CIFAR-10", "cifar-10-batches-py/ (the python version)", config, split)
    images = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2)
    return _finish(images, torch.as_tensor(ds.targets), config)


def digits(config: ImageDatasetConfig, split: str | None = None) -> InMemoryImages:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download needed)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)
    labels = torch.from_numpy(bunch.target)
    if (split or config.split) == "test":  # a fixed held-out fifth, for evaluation protocols
        images, labels = images[::5], labels[::5]
    return _finish(images, labels, config)


class ImageFolder(Dataset):
    """Every image under a folder (recursive), decoded per item, resized and centre-cropped."""

    def __init__(self, files: list[Path], image_size: int, channels: int):
        self.files = files
        self.size = image_size
        self.channels = channels

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.size, self.size)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        from PIL import Image

        path = self.files[index]
        try:
            with Image.open(path) as img:
                img = img.convert("L" if self.channels == 1 else "RGB")
                w, h = img.size
                scale = self.size / min(w, h)
                img = img.resize(
                    (max(self.size, round(w * scale)), max(self.size, round(h * scale))), Image.Resampling.BILINEAR
                )
                w, h = img.size
                left, top = (w - self.size) // 2, (h - self.size) // 2
                img = img.crop((left, top, left + self.size, top + self.size))
                array = np.asarray(img, dtype=np.uint8)
        except OSError as exc:
            raise DltkError(f"dataset.root: cannot read image '{path}': {exc}") from None
        tensor = torch.from_numpy(array.copy())
        tensor = tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1)
        return to_signed_unit(tensor), torch.tensor(-1)


def image_folder(config: ImageDatasetConfig, split: str | None = None) -> ImageFolder:
    """Your own images: every PNG/JPEG/WebP/BMP under `root` (recursive), resized + centre-cropped."""
    from PIL import Image, UnidentifiedImageError

    root = Path(config.root)
    if not root.is_dir():
        raise DltkError(f"dataset.root: '{root}' is not a folder of images")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DltkError(f"dataset.root: no images ({', '.join(IMAGE_SUFFIXES)}) under '{root}'")
    problems = []
    for path in files:
        try:
            with Image.open(path) as img:
                img.verify()
        except (OSError, UnidentifiedImageError, SyntaxError) as exc:
            problems.append(f"dataset.root: cannot read image '{path}': {exc}")
    if problems:
        raise DltkError(problems)
    return ImageFolder(files, config.image_size or 64, config.channels or 3)


@hookimpl
def dltk_register_datasets() -> list[Component]:
    return [
        Component("mnist", mnist, ImageDatasetConfig),
        Component("fashion-mnist", fashion_mnist, ImageDatasetConfig),
        Component("cifar10", cifar10, ImageDatasetConfig),
        Component("digits", digits, ImageDatasetConfig),
        Component("image-folder", image_folder, ImageDatasetConfig),
    ]
