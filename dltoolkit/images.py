"""Image helpers for plugins: pixel conversions, resizing, sample grids and PNG files.

Images inside dltoolkit are float tensors in [-1, 1] (what datasets serve and models draw);
files and in-memory datasets hold uint8 in [0, 255].

* :func:`to_uint8`, :func:`to_signed_unit`: float [-1, 1] to uint8 [0, 255] (clamped, rounded)
  and back.
* :func:`resize_uint8`: resize a uint8 ``(N, C, H, W)`` batch to a square size (bilinear,
  antialiased), in chunks; :func:`convert_channels`: to 1 (luma) or 3 channels.
* :func:`image_grid`: a uint8 grid of [-1, 1] images, for sample previews and TensorBoard.
* :func:`save_png`: write a uint8 ``(C, H, W)`` image as a PNG file, atomically.
* :func:`read_image`: read an image file as a uint8 ``(C, H, W)`` tensor, converted to 1 or 3
  channels and, with ``size``, resized (shorter side, bilinear) and centre-cropped, as training,
  ``dltk predict`` and ``dltk eval --real/--fake`` read images; refuses decompression bombs and
  images over ``MAX_PIXELS`` in one line. :func:`check_images` checks many files' headers at once
  (every problem reported), :func:`image_files` lists the images of a file or folder
  (``IMAGE_SUFFIXES``).

Importing this module imports no torch; each name is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dltoolkit._lazy import lazy_exports

if TYPE_CHECKING:
    from dltoolkit._data import convert_channels, resize_uint8, to_signed_unit, to_uint8
    from dltoolkit._imageio import IMAGE_SUFFIXES, MAX_PIXELS, check_images, image_files, read_image
    from dltoolkit._images import image_grid, save_png

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_PIXELS",
    "check_images",
    "convert_channels",
    "image_files",
    "image_grid",
    "read_image",
    "resize_uint8",
    "save_png",
    "to_signed_unit",
    "to_uint8",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "convert_channels": "dltoolkit._data",
        "resize_uint8": "dltoolkit._data",
        "to_signed_unit": "dltoolkit._data",
        "to_uint8": "dltoolkit._data",
        "image_grid": "dltoolkit._images",
        "save_png": "dltoolkit._images",
        "IMAGE_SUFFIXES": "dltoolkit._imageio",
        "MAX_PIXELS": "dltoolkit._imageio",
        "check_images": "dltoolkit._imageio",
        "image_files": "dltoolkit._imageio",
        "read_image": "dltoolkit._imageio",
    },
)
