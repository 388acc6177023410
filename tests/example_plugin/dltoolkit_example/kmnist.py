"""Kuzushiji-MNIST through torchvision's own loader."""

from __future__ import annotations

import attrs

import dltoolkit


@attrs.frozen
class KmnistConfig:
    root: str = dltoolkit.option("data", doc="Folder holding KMNIST/raw/.")
    split: str = dltoolkit.option("train", doc="'train' or 'test'.", validator=attrs.validators.in_(("train", "test")))


def kmnist(config: KmnistConfig, split: str | None = None) -> dltoolkit.InMemoryImages:
    """Kuzushiji-MNIST, 28x28 grayscale (torchvision), held in memory."""
    from torchvision.datasets import KMNIST

    try:
        ds = KMNIST(root=config.root, train=(split or config.split) == "train", download=False)
    except RuntimeError:  # torchvision: "Dataset not found. You can use download=True ..."
        raise dltoolkit.DltkError(
            f"dataset.root: KMNIST not found in '{config.root}': put KMNIST/raw/*-ubyte there"
        ) from None
    return dltoolkit.InMemoryImages(ds.data.unsqueeze(1), ds.targets)
