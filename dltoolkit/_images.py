"""Writing images: grids of [-1, 1] images as uint8, and PNG files renamed into place."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from dltoolkit._data import to_uint8


def image_grid(images: Tensor, nrow: int) -> Tensor:
    """A uint8 ``(C, H, W)`` grid of images given in [-1, 1], ``nrow`` images a row."""
    from torchvision.utils import make_grid

    return make_grid(to_uint8(images.cpu()), nrow=nrow, padding=2, pad_value=0)


def save_png(grid: Tensor, path: Path) -> None:
    """Write a uint8 ``(C, H, W)`` image as a PNG file, through a temp file renamed into place."""
    from PIL import Image

    array = grid.permute(1, 2, 0).numpy()
    image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}")
    image.save(tmp, format="PNG")
    tmp.replace(path)
