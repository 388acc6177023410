"""Kuzushiji-MNIST through torchvision's own loader."""

from __future__ import annotations

import attrs

import dltoolkit
import dltoolkit.data


@attrs.frozen
class KmnistConfig:
    root: str = dltoolkit.option("data", doc="Folder holding KMNIST/raw/.")
    split: str = dltoolkit.option("train", doc="'train' or 'test'.", validator=attrs.validators.in_(("train", "test")))


def kmnist(config: KmnistConfig, split: str | None = None) -> dltoolkit.data.InMemoryImages:
    """Kuzushiji-MNIST, 28x28 grayscale (torchvision), held in memory."""
    # torchvision's class, its failures (missing files, wrong content) as one-line errors; no download
    train = (split or config.split) == "train"
    ds = dltoolkit.data.load_torchvision("KMNIST", "KMNIST", "KMNIST/raw/*-ubyte", root=config.root, train=train)
    return dltoolkit.data.InMemoryImages(ds.data.unsqueeze(1), ds.targets)
