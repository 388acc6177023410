"""Test helpers for dltoolkit and its plugins: an opt-in pytest plugin.

Enable it in a ``conftest.py`` with ``pytest_plugins = ["dltoolkit.testing"]``. It provides:

* ``dltk``: run the command line in-process and capture its result
  (``result = dltk("check", "recipe.toml")``; ``result.exit_code``, ``result.out``, ``result.err``).
* ``recipe_file``: write a recipe file from TOML text into ``tmp_path``.
* ``fake_plugins``: make modules look like installed distributions with ``dltoolkit`` entry
  points, without installing anything (patches ``importlib.metadata.distributions``).

and, as plain functions, writers of tiny datasets in the real on-disk formats, read by the real
torchvision classes: :func:`write_mnist`, :func:`write_cifar10`, :func:`write_image_folder`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import io
import pickle
import struct
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

__all__ = [
    "CliResult",
    "run_cli",
    "use_cifar10_checksums",
    "write_cifar10",
    "write_class_folders",
    "write_image_folder",
    "write_mnist",
]
# the fixtures (dltk, recipe_file, fake_plugins) reach tests through `pytest_plugins`, not imports


@attrs.frozen
class CliResult:
    """What one ``dltk`` invocation did."""

    exit_code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def run_cli(*args: str | Path) -> CliResult:
    """Run ``dltk ARGS`` in this process and capture exit code, stdout and stderr."""
    from dltoolkit.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture
def dltk() -> Callable[..., CliResult]:
    """Run the ``dltk`` command line in-process: ``dltk("run", "x.toml", "recipe.epochs=1")``."""
    return run_cli


@pytest.fixture
def recipe_file(tmp_path: Path) -> Callable[..., Path]:
    """Write TOML text to a recipe file: ``recipe_file(text, name="r.toml")``."""

    def write(text: str, name: str = "recipe.toml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


class _FakeDistribution(importlib.metadata.Distribution):
    def __init__(self, name: str, version: str, entry_points: dict[str, str]):
        self._name = name
        self._version = version
        self._entry_points = entry_points

    def read_text(self, filename: str) -> str | None:
        if filename == "METADATA":
            return f"Metadata-Version: 2.1\nName: {self._name}\nVersion: {self._version}\n"
        if filename == "entry_points.txt":
            lines = "".join(f"{name} = {target}\n" for name, target in self._entry_points.items())
            return f"[dltoolkit]\n{lines}"
        return None

    def locate_file(self, path: Any) -> Path:
        return Path(path)


@pytest.fixture
def fake_plugins(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Pretend distributions are installed: ``fake_plugins(("dist", "1.0", {"ep": "module"}), ...)``.

    Modules given as objects (``types.ModuleType``) are put in ``sys.modules`` under their name.
    Only the fake distributions are seen, so the test does not depend on what is installed.
    """

    def install(*dists: tuple[str, str, dict[str, str | types.ModuleType]]) -> None:
        fakes = []
        for name, version, eps in dists:
            targets = {}
            for ep_name, target in eps.items():
                if isinstance(target, types.ModuleType):
                    monkeypatch.setitem(sys.modules, target.__name__, target)
                    target = target.__name__
                targets[ep_name] = target
            fakes.append(_FakeDistribution(name, version, targets))
        monkeypatch.setattr(importlib.metadata, "distributions", lambda **_: iter(fakes))

    return install


# --- tiny datasets in the real formats -------------------------------------------------------


def _idx(array: np.ndarray) -> bytes:
    type_code = 0x08  # unsigned byte
    header = struct.pack(">HBB", 0, type_code, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(root: Path, n_train: int = 64, n_test: int = 16, *, folder: str = "MNIST", seed: int = 0) -> Path:
    """Write IDX files as torchvision's ``MNIST``/``FashionMNIST`` read them (``root/folder/raw``).

    Images are 28x28 digit-like blobs (a bright stroke whose position encodes the label).
    """
    rng = np.random.default_rng(seed)
    raw = Path(root) / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        for i, label in enumerate(labels):
            images[i, 4:24, 4 + 2 * label : 6 + 2 * label] = 255
            images[i] = np.clip(images[i] + rng.integers(0, 30, size=(28, 28)), 0, 255)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(_idx(images))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx(labels))
    return raw


CIFAR_FILES = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"]


def write_cifar10(root: Path, per_batch: int = 8, n_test: int = 8, *, seed: int = 0) -> dict[str, str]:
    """Write ``root/cifar-10-batches-py/`` as the CIFAR-10 python pickles; return ``{file: md5}``.

    torchvision checks each file's md5 against its own table; tests pass the returned sums to
    :func:`use_cifar10_checksums` so the real integrity check runs on the tiny files.
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    sums = {}
    for name, n in [*((f, per_batch) for f in CIFAR_FILES), ("test_batch", n_test)]:
        labels = rng.integers(0, 10, size=n).tolist()
        data = rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8)
        # the real files are Python 2 pickles with str keys, which torchvision reads with latin1
        payload = {
            "batch_label": name,
            "labels": labels,
            "data": data,
            "filenames": [f"{name}_{i}.png" for i in range(n)],
        }
        path = folder / name
        path.write_bytes(pickle.dumps(payload, protocol=2))
        sums[name] = hashlib.md5(path.read_bytes()).hexdigest()
    meta = folder / "batches.meta"
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    meta.write_bytes(
        pickle.dumps({"label_names": names, "num_cases_per_batch": per_batch, "num_vis": 3072}, protocol=2)
    )
    sums["batches.meta"] = hashlib.md5(meta.read_bytes()).hexdigest()
    return sums


@contextlib.contextmanager
def use_cifar10_checksums(sums: dict[str, str]) -> Iterator[None]:
    """Make torchvision's CIFAR10 expect the checksums of files written by :func:`write_cifar10`."""
    from torchvision.datasets import CIFAR10

    saved = (CIFAR10.train_list, CIFAR10.test_list, CIFAR10.meta)
    CIFAR10.train_list = [[f, sums[f]] for f in CIFAR_FILES]
    CIFAR10.test_list = [["test_batch", sums["test_batch"]]]
    CIFAR10.meta = {**CIFAR10.meta, "md5": sums["batches.meta"]}
    try:
        yield
    finally:
        CIFAR10.train_list, CIFAR10.test_list, CIFAR10.meta = saved


def write_image_folder(
    root: Path, n: int = 8, *, size: Sequence[int] = (40, 30), formats: Sequence[str] = ("png", "jpeg"), seed: int = 0
) -> list[Path]:
    """Write ``n`` small images into ``root`` (and a subfolder), alternating ``formats``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        folder = Path(root) / ("nested" if i % 2 else "")
        folder.mkdir(parents=True, exist_ok=True)
        fmt = formats[i % len(formats)]
        mode = "L" if i % 3 == 0 else "RGB"
        shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
        image = Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode=mode)
        path = folder / f"img{i}.{'jpg' if fmt == 'jpeg' else fmt}"
        image.save(path, format=fmt.upper())
        paths.append(path)
    return paths


def write_class_folders(
    root: Path,
    classes: Sequence[str],
    per_class: int,
    *,
    size: Sequence[int] = (8, 8),
    channels: int = 3,
    seed: int = 0,
) -> list[Path]:
    """Write ``per_class`` random PNG images of ``size`` (width, height) into ``root/<class>/`` for
    each of ``classes`` (the layout that gives an image folder its labels); return their paths."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) if channels == 1 else (size[1], size[0], channels)
    paths = []
    for name in classes:
        folder = Path(root) / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            path = folder / f"{i}.png"
            Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8)).save(path)
            paths.append(path)
    return paths
