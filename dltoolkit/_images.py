"""Writing images: grids of [-1, 1] images as uint8, and PNG files written atomically."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from dltoolkit._atomic import atomic_write
from dltoolkit._data import to_uint8


def image_grid(images: Tensor, nrow: int) -> Tensor:
    """A uint8 ``(C, H, W)`` grid of images given in [-1, 1], ``nrow`` images a row."""
    from torchvision.utils import make_grid

    return make_grid(to_uint8(images.cpu()), nrow=nrow, padding=2, pad_value=0)


def save_png(grid: Tensor, path: Path, *, durable: bool = True) -> None:
    """Write a uint8 ``(C, H, W)`` image as a PNG file, atomically (see :func:`atomic_write`;
    ``durable=False`` skips the fsyncs, for many samples)."""
    from PIL import Image

    array = grid.permute(1, 2, 0).numpy()
    image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    atomic_write(Path(path), lambda handle: image.save(handle, format="PNG"), durable=durable)
