"""Reading image files: the one path training, ``dltk predict``, ``dltk eval --real/--fake`` and any
family that takes images as input use, with the same limits and the same one-line refusals.

An image file is untrusted input: a few kilobytes of PNG can claim a 100,000 x 100,000 image
(a decompression bomb), and a 1-pixel-wide image of ten million rows turns into gigabytes when
resized naively. :func:`read_image` reads the header first and refuses, by name and in one line
(a :class:`DltkError` whose text starts with the option or flag the caller names, ``what``):

* an image of more than ``max_pixels`` pixels (width x height), before anything is decoded;
* when ``max_aspect`` is given, an image whose longer side is more than that many times its
  shorter side (none by default: resizing is cheap whatever the shape, see below);
* what Pillow itself refuses (its own decompression-bomb limit, compressed chunks that expand too
  far), a file that is not an image, a truncated or corrupt file.

Resizing resamples only the source box that becomes the output (never the whole image at the new
scale), so memory is bounded by the input's limits and the output size.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dltoolkit._errors import DltkError

if TYPE_CHECKING:
    from torch import Tensor

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
"""File name endings read as images (any case)."""
MAX_PIXELS = 1 << 26
"""Largest image read by default: 67 million pixels (about 200 MB as RGB)."""
MAX_OUTPUT_PIXELS = 1 << 24
"""Largest size an image is resized to (16.7 million pixels, e.g. 4096 x 4096)."""


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def image_size(
    path: Path,
    *,
    what: str = "image",
    max_pixels: int = MAX_PIXELS,
    max_aspect: float | None = None,
    limit_key: str = "",
) -> tuple[int, int]:
    """``(width, height)`` of the image file ``path``, its limits checked and its data verified,
    nothing decoded into memory: a :class:`DltkError` (one line, starting with ``what``) when the
    file cannot be read as an image or is over a limit. ``limit_key`` names the option that raises
    ``max_pixels`` in the message (e.g. ``dataset.max_pixels``)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                size = (int(img.size[0]), int(img.size[1]))
                check_limits(path, size, what=what, max_pixels=max_pixels, max_aspect=max_aspect, limit_key=limit_key)
                img.verify()
    except DltkError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DltkError(f"{what}: image '{path}' refused by Pillow: {_describe(exc)}") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:  # UnidentifiedImageError is an OSError
        raise DltkError(f"{what}: cannot read image '{path}': {_describe(exc)}") from None
    return size


def check_limits(
    path: Path,
    size: tuple[int, int],
    *,
    what: str = "image",
    max_pixels: int = MAX_PIXELS,
    max_aspect: float | None = None,
    limit_key: str = "",
) -> None:
    """Refuse an image of ``size`` (width, height) over ``max_pixels`` or ``max_aspect``, by name."""
    w, h = size
    if w < 1 or h < 1:
        raise DltkError(f"{what}: image '{path}' is {w}x{h}: it has no pixels")
    if w * h > max_pixels:
        how = f"raise {limit_key}" if limit_key else "use a smaller image"
        raise DltkError(
            f"{limit_key or what}: image '{path}' is {w}x{h} ({w * h} pixels), more than {max_pixels}; "
            f"shrink it, remove it, or {how}"
        )
    if max_aspect is not None and max(w, h) > max_aspect * min(w, h):
        raise DltkError(
            f"{what}: image '{path}' is {w}x{h}, its longer side more than {max_aspect:g} times its shorter "
            "side; crop it or remove it"
        )


def check_images(
    paths: Iterable[Path],
    *,
    what: str = "image",
    max_pixels: int = MAX_PIXELS,
    max_aspect: float | None = None,
    limit_key: str = "",
) -> list[str]:
    """The problems (one line each) of every file in ``paths``, all files checked (see :func:`image_size`)."""
    problems: list[str] = []
    for path in paths:
        try:
            image_size(path, what=what, max_pixels=max_pixels, max_aspect=max_aspect, limit_key=limit_key)
        except DltkError as exc:
            problems.extend(exc.problems)
    return problems


def _output_size(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    """``(height, width)`` from an int (a square), a pair, or None."""
    if size is None:
        return None
    if isinstance(size, int):
        return (size, size)
    height, width = (int(s) for s in size)
    return (height, width)


def resize_centre_crop(img: Any, size: int | Sequence[int]) -> Any:
    """Scale a PIL image so that it covers ``size`` (an int: a square; else ``(height, width)``) and
    keep the centred box of that size (bilinear).

    Resamples only the source box that becomes the output (what resizing the whole image and then
    cropping gives), so a 1 x 10,000,000 image never becomes a 64 x 640,000,000 one in memory.
    """
    from PIL import Image

    out_h, out_w = _output_size(size) or (img.size[1], img.size[0])
    w, h = img.size
    scale = max(out_w / w, out_h / h)
    full_w, full_h = max(out_w, round(w * scale)), max(out_h, round(h * scale))
    left, top = (full_w - out_w) // 2, (full_h - out_h) // 2
    sx, sy = w / full_w, h / full_h
    box = (left * sx, top * sy, (left + out_w) * sx, (top + out_h) * sy)
    return img.resize((out_w, out_h), Image.Resampling.BILINEAR, box=box)


def read_image(
    path: str | Path,
    *,
    channels: int = 3,
    size: int | Sequence[int] | None = None,
    what: str = "image",
    max_pixels: int = MAX_PIXELS,
    max_aspect: float | None = None,
    limit_key: str = "",
) -> Tensor:
    """Read one image file as a uint8 tensor ``(channels, height, width)``.

    ``channels``: 1 (greyscale, luma) or 3 (RGB); any mode the file has is converted.
    ``size``: ``None`` keeps the file's size; an int resizes the shorter side to it and keeps the
    centred square; ``(height, width)`` covers that size and keeps its centred box (bilinear). An
    output over :data:`MAX_OUTPUT_PIXELS` is refused (a size read from a damaged file, say).
    ``what``: the option or flag the file came from (``dataset.root``, ``--input``), first on every
    message. ``max_pixels`` and ``max_aspect``: the limits, checked from the header before anything
    is decoded; ``limit_key`` is the option that raises ``max_pixels``, if there is one.

    Every refusal is a :class:`DltkError` of one line naming the file: over a limit, a
    decompression bomb, not an image, truncated or corrupt. Use ``dltoolkit.to_signed_unit`` for
    values in [-1, 1].
    """
    import numpy as np
    import torch
    from PIL import Image

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    path = Path(path)
    wanted = _output_size(size)
    if wanted is not None and (min(wanted) < 1 or wanted[0] * wanted[1] > MAX_OUTPUT_PIXELS):
        raise DltkError(
            f"{what}: cannot resize '{path}' to {wanted[1]}x{wanted[0]}: the size must be at least 1x1 and at most "
            f"{MAX_OUTPUT_PIXELS} pixels (a damaged or tampered model file can claim such a size)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                check_limits(
                    path, img.size, what=what, max_pixels=max_pixels, max_aspect=max_aspect, limit_key=limit_key
                )
                converted = img.convert("L" if channels == 1 else "RGB")
                if wanted is not None and (converted.size[1], converted.size[0]) != wanted:
                    converted = resize_centre_crop(converted, wanted)
                array = np.asarray(converted, dtype=np.uint8).copy()
    except DltkError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DltkError(f"{what}: image '{path}' refused by Pillow: {_describe(exc)}") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise DltkError(f"{what}: cannot read image '{path}': {_describe(exc)}") from None
    tensor = torch.from_numpy(array)
    return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1).contiguous()


def image_files(path: Path, *, what: str = "--input") -> list[Path]:
    """``path`` itself (an image file), or every image file under it (a folder: recursive, sorted);
    a :class:`DltkError` when there is none."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise DltkError(f"{what}: '{path}' is not an image ({', '.join(IMAGE_SUFFIXES)})")
        return [path]
    if not path.is_dir():
        raise DltkError(f"{what}: '{path}' does not exist")
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DltkError(f"{what}: no images ({', '.join(IMAGE_SUFFIXES)}) under '{path}'")
    return files
