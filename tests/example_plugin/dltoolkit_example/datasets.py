"""Images stored in an .npz file, as a dltoolkit dataset."""

from __future__ import annotations

from pathlib import Path

import attrs

import dltoolkit
import dltoolkit.data


@attrs.frozen
class NpzImagesConfig:
    path: str = dltoolkit.option(doc="An .npz file: 'images' (N, H, W) or (N, H, W, C) uint8, optional 'labels' (N,).")
    test_fraction: float = dltoolkit.option(
        0.1,
        doc="Share of the images held out as the test split (a fixed, seeded choice).",
        validator=[attrs.validators.ge(0.0), attrs.validators.lt(1.0)],
    )
    split: str = dltoolkit.option("train", doc="'train' or 'test'.", validator=attrs.validators.in_(("train", "test")))


def npz_images(config: NpzImagesConfig, split: str | None = None) -> dltoolkit.data.InMemoryImages:
    """Images from an .npz file of uint8 arrays, held in memory."""
    import numpy as np
    import torch

    path = Path(config.path)
    if not path.is_file():
        raise dltoolkit.DltkError(f"dataset.path: '{path}' not found: save an .npz with an 'images' array there")
    with np.load(path) as data:  # allow_pickle=False: arrays only
        if "images" not in data.files:
            raise dltoolkit.DltkError(f"dataset.path: '{path}' has no 'images' array (it has {data.files})")
        images = torch.from_numpy(data["images"])
        labels = torch.from_numpy(data["labels"]) if "labels" in data.files else None
    if images.dtype != torch.uint8 or images.dim() not in (3, 4):
        raise dltoolkit.DltkError(
            f"dataset.path: '{path}': 'images' must be uint8 (N, H, W) or (N, H, W, C), "
            f"got {images.dtype} {tuple(images.shape)}"
        )
    images = images.unsqueeze(1) if images.dim() == 3 else images.permute(0, 3, 1, 2)
    # the same permutation on every call: the two splits never share an image
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    n_test = round(len(images) * config.test_fraction)
    index = order[:n_test] if (split or config.split) == "test" else order[n_test:]
    return dltoolkit.data.InMemoryImages(images[index], labels[index] if labels is not None else None)


@dltoolkit.hookimpl
def dltk_register_datasets() -> list[dltoolkit.Component]:
    return [dltoolkit.Component("npz-images", npz_images, NpzImagesConfig, provides="images")]
