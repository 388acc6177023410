"""Reading the files of well-known datasets, for the built-in datasets and for plugins.

:func:`load_torchvision` builds a ``torchvision.datasets`` class with its failures as one-line
:class:`~dltoolkit.DltkError` messages; :func:`digits_split_indices` is the fixed train/test split
of scikit-learn's bundled digits. Public as :mod:`dltoolkit.data`. torchvision and scikit-learn
are imported when called, not here.
"""

from __future__ import annotations

import contextlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from dltoolkit._errors import DltkError


def load_torchvision(
    cls_name: str, display: str, expected: str, *, root: str, train: bool, download: bool | None = None
) -> Any:
    """``torchvision.datasets.<cls_name>(root, train, download)`` with its failures as one-line
    :class:`DltkError` messages naming ``dataset.root`` or ``dataset.download``: files missing
    (``expected`` says which, e.g. ``"MNIST/raw/*-ubyte"``), a file with the right name and the
    wrong content, a failed download. ``display`` is the dataset's name in those messages.
    ``download=None``: the dataset has no ``download`` option (nothing is fetched, and the
    messages do not suggest one)."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, cls_name)
    before = _folders(Path(root)) if download else set()
    missing = {a for a in Path(root).parents if not a.exists()} if download else set()
    try:
        return _construct(cls, display, expected, root=root, train=train, download=download)
    except BaseException:
        if download:  # a failed download leaves no empty folders behind (data/MNIST/raw)
            _remove_new_empty_folders(Path(root), before, missing)
        raise


def _construct(cls: Any, display: str, expected: str, *, root: str, train: bool, download: bool | None) -> Any:
    try:
        return cls(root=root, train=train, download=bool(download))
    except RuntimeError as exc:
        if str(exc).startswith("Error downloading"):  # MNIST-style: every mirror failed, one error each
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            raise DltkError(
                f"dataset.download: could not download {display} ({lines[0].rstrip(':')}: {lines[-1]}); "
                f"place its files in dataset.root '{root}' ({expected}) and set download = false"
            ) from None
        if "not found" in str(exc).lower() or "corrupted" in str(exc).lower():
            how = {
                None: "",
                False: ", or set dataset.download = true to fetch it",
                True: ", or the download left no usable files",
            }[download]
            raise DltkError(f"dataset.root: {display} not found in '{root}': put {expected} there{how}") from None
        raise DltkError(f"dataset: {display}: could not load from '{root}': {exc}") from None
    except (KeyError, ValueError, TypeError, EOFError, pickle.UnpicklingError) as exc:  # right name, wrong content
        raise DltkError(
            f"dataset: {display}: could not load from '{root}': a file there has the expected name but not "
            f"the expected content ({type(exc).__name__}: {exc}); replace it with the original"
        ) from None
    except OSError as exc:  # URLError, socket errors, permission problems during download
        if not download:  # nothing was fetched: the files there could not be read
            raise DltkError(f"dataset.root: cannot read {display} in '{root}' ({type(exc).__name__}: {exc})") from None
        raise DltkError(
            f"dataset.download: could not download {display} ({type(exc).__name__}: {exc}); "
            f"place its files in dataset.root '{root}' ({expected}) and set download = false"
        ) from None


def _folders(root: Path) -> set[Path]:
    """``root`` and the folders up to two levels below it (where
    torchvision makes ``<Class>/raw``): what a failed download may have created, without walking a
    large data folder."""
    found = {root} if root.is_dir() else set()
    for child in _subfolders(root):
        found |= {child, *_subfolders(child)}
    return found


def _subfolders(folder: Path) -> list[Path]:
    try:
        return [c for c in folder.iterdir() if c.is_dir() and not c.is_symlink()]
    except OSError:
        return []


def _remove_new_empty_folders(root: Path, before: set[Path], missing: set[Path]) -> None:
    """Remove the folders near ``root`` (``root`` and two levels below) that did not exist in
    ``before`` and are empty, deepest first, then ``missing`` (ancestors of ``root`` that did not
    exist before) that are empty."""
    made = sorted(_folders(root) - before, key=lambda p: len(p.parts), reverse=True)
    for folder in [*made, *sorted(missing, key=lambda p: len(p.parts), reverse=True)]:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only succeeds when empty


DIGITS_TEST_SIZE = 360
"""Images in the digits test split (36 of each class); the other 1,437 are the training split."""


def digits_split_indices(split: str) -> np.ndarray:
    """Indices of scikit-learn's digits (``sklearn.datasets.load_digits()``) in ``split``: a fixed,
    seeded split stratified by class, the one the ``digits`` dataset uses.

    36 images of each digit (360 in all) form ``test``; the other 1,437 form ``train``. The two
    never share an image, and the split is the same on every machine (seed 0). A plugin that reads
    the digits another way (as sequences, say) uses it so that its scores compare with image models'.
    """
    from sklearn.datasets import load_digits

    target = load_digits().target
    rng = np.random.default_rng(0)
    per_class = DIGITS_TEST_SIZE // 10
    test = np.sort(np.concatenate([rng.permutation(np.flatnonzero(target == c))[:per_class] for c in range(10)]))
    if split == "test":
        return test
    return np.setdiff1d(np.arange(len(target)), test)
