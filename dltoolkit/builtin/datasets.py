"""Built-in image datasets: MNIST, Fashion-MNIST, CIFAR-10 (torchvision), a folder of images, and
scikit-learn's bundled 8x8 digits (real data that needs no download)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from dltoolkit import Component, DataSpec, DltkError, hookimpl, option
from dltoolkit.data import digits_split_indices, load_torchvision
from dltoolkit.images import IMAGE_SUFFIXES, MAX_PIXELS, check_images, read_image

if TYPE_CHECKING:
    from torch import Tensor

    from dltoolkit.data import InMemoryImages

# torch is imported inside the factories: registering these datasets (dltk list, check) must not load it

DIGIT_NAMES = tuple(str(d) for d in range(10))
FASHION_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"
)  # fmt: skip
IMAGES = ("images", "labels")
RESIZE_CHUNK = 2048
"""Images resized at a time (the memory check counts one chunk's float buffers)."""


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


def _finish(
    images: Tensor, labels: Tensor | None, config: ImageDatasetConfig, class_names: tuple[str, ...] = ()
) -> InMemoryImages:
    from dltoolkit.data import InMemoryImages, check_images_fit
    from dltoolkit.images import convert_channels, resize_uint8

    if config.channels is not None:
        images = convert_channels(images, config.channels)
    if config.image_size is not None:
        check_images_fit(len(images), tuple(images.shape[1:]), config.image_size, RESIZE_CHUNK)
        images = resize_uint8(images, config.image_size, chunk=RESIZE_CHUNK)
    return InMemoryImages(images, labels, class_names=class_names)


def _torchvision(cls_name: str, display: str, expected: str, config: ImageDatasetConfig, split: str | None) -> Any:
    return load_torchvision(
        cls_name,
        display,
        expected,
        root=config.root,
        train=(split or config.split) == "train",
        download=config.download,
    )


def mnist(config: ImageDatasetConfig, split: str | None = None) -> InMemoryImages:
    """MNIST handwritten digits, 28x28 grayscale (torchvision), held in memory."""
    ds = _torchvision("MNIST", "MNIST", "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte", config, split)
    return _finish(ds.data.unsqueeze(1), ds.targets, config, DIGIT_NAMES)


def fashion_mnist(config: ImageDatasetConfig, split: str | None = None) -> InMemoryImages:
    """Fashion-MNIST clothing images, 28x28 grayscale (torchvision), held in memory."""
    ds = _torchvision(
        "FashionMNIST",
        "Fashion-MNIST",
        "FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte",
        config,
        split,
    )
    return _finish(ds.data.unsqueeze(1), ds.targets, config, FASHION_NAMES)


def cifar10(config: ImageDatasetConfig, split: str | None = None) -> InMemoryImages:
    """CIFAR-10 natural images, 32x32 RGB (torchvision), held in memory."""
    import torch

    ds = _torchvision("CIFAR10", "CIFAR-10", "cifar-10-batches-py/ (the python version)", config, split)
    images = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2)
    return _finish(images, torch.as_tensor(ds.targets), config, tuple(ds.classes))


def digits(config: ImageDatasetConfig, split: str | None = None) -> InMemoryImages:
    """scikit-learn's bundled 8x8 handwritten digits (1,437 train / 360 test images, no download)."""
    import torch
    from sklearn.datasets import load_digits

    bunch = load_digits()
    index = digits_split_indices(split or config.split)
    images = torch.from_numpy(np.rint(bunch.images[index] * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)
    labels = torch.from_numpy(bunch.target[index])
    return _finish(images, labels, config, DIGIT_NAMES)


class ImageFolder:
    """Image files, decoded per item, resized and centre-cropped; labels from class folders."""

    def __init__(
        self,
        files: list[Path],
        image_size: int,
        channels: int,
        labels: list[int] | None = None,
        classes: tuple = (),
        max_pixels: int = MAX_PIXELS,
    ):
        self.files = files
        self.max_pixels = max_pixels
        self.size = image_size
        self.channels = channels
        self.labels = labels
        self.spec = (
            DataSpec.images(self.image_shape, class_names=classes) if classes else DataSpec.images(self.image_shape)
        )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.size, self.size)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        import torch

        from dltoolkit.images import to_signed_unit

        image = read_image(
            self.files[index],
            channels=self.channels,
            size=self.size,
            what="dataset.root",
            max_pixels=self.max_pixels,
            limit_key="dataset.max_pixels",
        )
        label = self.labels[index] if self.labels is not None else -1
        return to_signed_unit(image), torch.tensor(label)


@attrs.frozen
class ImageFolderConfig(ImageDatasetConfig):
    """Options of ``image-folder``: those of every image dataset, plus how the split is made."""

    split: str = option(
        "train",
        doc="'train', 'test' or 'all'. With train/ and test/ sub-folders under `root` those are the "
        "splits; otherwise a fixed, seeded `test_fraction` of the files is the test split.",
        validator=attrs.validators.in_(("train", "test", "all")),
    )
    test_fraction: float = option(
        0.1,
        doc="Share of the images held out as the test split when `root` has no train/ and test/ folders.",
        validator=[attrs.validators.ge(0.0), attrs.validators.lt(1.0)],
    )
    max_pixels: int = option(
        MAX_PIXELS,
        doc="Largest image accepted, in pixels (width x height); a larger file is refused by name "
        "before it is decoded (a small file can hold a huge image).",
        validator=attrs.validators.ge(1),
    )


def _image_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def folder_split(files: list[Path], split: str, test_fraction: float) -> list[Path]:
    """The files of ``split`` when the folder has no split of its own: a seeded, fixed choice."""
    if split == "all":
        return files
    n_test = int(np.ceil(len(files) * test_fraction)) if len(files) > 1 else 0
    order = np.random.default_rng(0).permutation(len(files))
    chosen = set(order[:n_test].tolist()) if split == "test" else set(order[n_test:].tolist())
    return [f for i, f in enumerate(files) if i in chosen]


def _class_folders(root: Path, files: list[Path]) -> tuple[str, ...]:
    """Class names when every image sits in a first-level folder of ``root`` (two or more)."""
    parents = {f.relative_to(root).parts[0] for f in files if len(f.relative_to(root).parts) > 1}
    if len(parents) < 2 or any(len(f.relative_to(root).parts) < 2 for f in files):
        return ()
    return tuple(sorted(parents))


def image_folder(config: ImageFolderConfig, split: str | None = None) -> ImageFolder:
    """Your own images: every PNG/JPEG/WebP/BMP under `root` (recursive), resized + centre-cropped."""
    root = Path(config.root)
    if not root.is_dir():
        raise DltkError(f"dataset.root: '{root}' is not a folder of images")
    split = split or config.split
    own_split = (root / "train").is_dir() and (root / "test").is_dir()
    if own_split and split != "all":
        root = root / split
        files = _image_files(root)
    else:
        files = _image_files(root)
    if not files:
        raise DltkError(f"dataset.root: no images ({', '.join(IMAGE_SUFFIXES)}) under '{root}'")
    limit = getattr(config, "max_pixels", MAX_PIXELS)
    problems = check_images(files, what="dataset.root", max_pixels=limit, limit_key="dataset.max_pixels")
    if problems:
        raise DltkError(problems)
    classes = _class_folders(root, files)
    if not own_split:
        files = folder_split(files, split, config.test_fraction)
        if not files:
            raise DltkError(
                f"dataset.test_fraction: the {split} split of '{root}' is empty; "
                "add images or change dataset.test_fraction"
            )
    labels = [classes.index(f.relative_to(root).parts[0]) for f in files] if classes else None
    return ImageFolder(files, config.image_size or 64, config.channels or 3, labels, classes, limit)


@hookimpl
def dltk_register_datasets() -> list[Component]:
    return [
        Component("mnist", mnist, ImageDatasetConfig, provides=IMAGES),
        Component("fashion-mnist", fashion_mnist, ImageDatasetConfig, provides=IMAGES),
        Component("cifar10", cifar10, ImageDatasetConfig, provides=IMAGES),
        Component("digits", digits, ImageDatasetConfig, provides=IMAGES),
        # labels when the folder has one sub-folder per class: declared, and checked once the data is built
        Component("image-folder", image_folder, ImageFolderConfig, provides=IMAGES),
    ]
