"""Sequence datasets: scikit-learn's digits read row by row, and any UTF-8 text as character windows.

Both hold their samples as tensors and cut batches by index (``__getitems__`` returns a tuple,
which :func:`dltoolkit.data.make_loader` passes through), so an epoch is bound by the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from dltoolkit import DataSpec, DltkError
from dltoolkit.data import check_memory, digits_split_indices, load_torchvision
from dltoolkit_sequence.options import (
    SYNTHETIC_SERIES,
    DigitRowsConfig,
    MnistRowsConfig,
    TextFileConfig,
    TimeSeriesConfig,
)

DIGIT_NAMES = tuple(str(d) for d in range(10))


class TensorSequences(torch.utils.data.Dataset):
    """``(inputs, targets)`` held as two tensors of equal length, with a :class:`DataSpec`."""

    def __init__(self, inputs: Tensor, targets: Tensor, spec: DataSpec):
        if len(inputs) != len(targets):
            raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
        self.inputs = inputs
        self.targets = targets
        self.spec = spec

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.inputs[index], self.targets[index]

    def __getitems__(self, indices: Sequence[int] | Tensor) -> tuple[Tensor, Tensor]:
        index = torch.as_tensor(indices, dtype=torch.int64)
        return self.inputs[index], self.targets[index]


# --- digit rows -------------------------------------------------------------------------------


def digit_rows(config: DigitRowsConfig, split: str | None = None) -> TensorSequences:
    """scikit-learn's 8x8 digits as sequences: 8 time steps (rows) of 8 features in [0, 1]."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    index = digits_split_indices(split or "train")
    rows = torch.from_numpy((bunch.images[index] / 16.0).astype(np.float32))
    labels = torch.from_numpy(bunch.target[index].astype(np.int64))
    spec = DataSpec("sequences", (8, 8), num_classes=10, class_names=DIGIT_NAMES)
    return TensorSequences(rows, labels, spec)


# --- MNIST rows -------------------------------------------------------------------------------

MNIST_FILES = "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte"


def mnist_rows(config: MnistRowsConfig, split: str | None = None) -> TensorSequences:
    """MNIST (torchvision) as sequences: 28 time steps (rows) of 28 features in [0, 1].

    The official splits: 60,000 ``train`` and 10,000 ``test`` images. Missing files, a failed
    download or unreadable files are one-line :class:`DltkError` messages, as the ``mnist`` dataset's.
    """
    ds = load_torchvision(
        "MNIST", "MNIST", MNIST_FILES, root=config.root, train=(split or "train") == "train", download=config.download
    )
    rows = ds.data.to(torch.float32).div_(255.0)
    labels = torch.as_tensor(ds.targets, dtype=torch.int64)
    spec = DataSpec("sequences", (28, 28), num_classes=10, class_names=DIGIT_NAMES)
    return TensorSequences(rows, labels, spec)


# --- text -----------------------------------------------------------------------------------


def read_text(path: Path) -> str:
    """The text of ``path``; a missing, empty or non-UTF-8 file is a :class:`DltkError`."""
    if str(path) in ("", "."):
        raise DltkError("dataset.path: no text file given; set dataset.path=FILE (any UTF-8 text)")
    if not path.is_file():
        raise DltkError(f"dataset.path: '{path}' does not exist (give a UTF-8 text file)")
    data = path.read_bytes()
    if not data:
        raise DltkError(f"dataset.path: '{path}' is empty")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DltkError(f"dataset.path: '{path}' is not UTF-8 text (byte {exc.start} cannot be decoded)") from None


def char_windows(ids: Tensor, seq_len: int) -> tuple[Tensor, Tensor]:
    """Non-overlapping windows of ``seq_len`` ids and the ids that follow each: ``(W, seq_len)`` twice."""
    count = (len(ids) - 1) // seq_len
    inputs = ids[: count * seq_len].view(count, seq_len)
    targets = ids[1 : count * seq_len + 1].view(count, seq_len)
    return inputs, targets


TEXT_BYTES_PER_CHAR = 18
"""Memory ``text-file`` holds per character of its file while it turns the text into ids: the file's
bytes, the decoded text (1 byte a character for ASCII), a list of ids and their tensor (8 each)."""


def text_file(config: TextFileConfig, split: str | None = None) -> TensorSequences:
    """Any UTF-8 text file as windows of characters for next-character prediction (last 10% held out).

    A file too large for the memory available (about :data:`TEXT_BYTES_PER_CHAR` bytes a character)
    is refused before it is read."""
    path = Path(config.path)
    if path.is_file():
        size = path.stat().st_size
        check_memory(
            TEXT_BYTES_PER_CHAR * size,
            f"dataset.path: '{path}' ({size / 1e6:.1f} MB) as character ids",
            "use a shorter text",
        )
    text = read_text(path)
    vocab = sorted(set(text))
    lookup = {ch: i for i, ch in enumerate(vocab)}
    ids = torch.tensor([lookup[ch] for ch in text], dtype=torch.int64)
    cut = len(ids) - int(len(ids) * config.test_fraction)
    part = ids[cut:] if split == "test" else ids[:cut]
    name = "test" if split == "test" else "train"
    if len(part) < config.seq_len + 1:
        raise DltkError(
            f"dataset.path: '{path}' is too short: its {name} part has {len(part)} characters, and one window "
            f"needs dataset.seq_len + 1 = {config.seq_len + 1}; give a longer text or a smaller dataset.seq_len"
        )
    inputs, targets = char_windows(part, config.seq_len)
    spec = DataSpec("text", (config.seq_len,), vocab_size=len(vocab), vocab=vocab)
    dataset = TensorSequences(inputs, targets, spec)
    dataset.ids = part  # the whole split, for random windows (recipe.windows = "random")
    return dataset


# --- time series ------------------------------------------------------------------------------


MAX_VALUE = 1e30
"""Largest magnitude a series value may have: beyond it, the mean, the spread and the float32
values a model computes with overflow (a series near 1e308 ended training with a non-finite loss)."""


def read_column(path: Path, column: str, key: str = "dataset.path") -> tuple[str, np.ndarray]:
    """``(column name, values)`` of one column of a CSV file with a header row (default: the last
    column, also when the column names are empty). Blank lines are skipped; a field too large for a
    CSV field, a cell that is not a number, and values that are not finite or beyond
    :data:`MAX_VALUE` are :class:`DltkError` messages naming the line (``key`` first)."""
    import csv

    if not path.is_file():
        raise DltkError(f"{key}: '{path}' does not exist (give a CSV file with a header row)")
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            rows: list[tuple[int, list[str]]] = []
            for row in reader:
                if row and (not rows or any(cell.strip() for cell in row)):  # blank lines (a file ending in one)
                    rows.append((reader.line_num, row))
    except UnicodeDecodeError:
        raise DltkError(f"{key}: '{path}' is not UTF-8 text") from None
    except csv.Error as exc:
        raise DltkError(f"{key}: '{path}' line {reader.line_num}: not a CSV row ({exc})") from None
    if not rows:
        raise DltkError(f"{key}: '{path}' is empty")
    header = [name.strip() for name in rows[0][1]]
    if column:
        if column not in header:
            where = "dataset.column" if key == "dataset.path" else key
            raise DltkError(f"{where}: '{path}' has no column '{column}' (it has: {', '.join(header)})")
        at = header.index(column)
    else:
        at = len(header) - 1
    name = header[at] or f"column {at + 1}"
    values = []
    for number, row in rows[1:]:
        cell = row[at].strip() if at < len(row) else ""
        try:
            value = float(cell)
        except ValueError:
            raise DltkError(
                f"{key}: '{path}' line {number}: '{cell[:40]}' in column '{name}' is not a number"
            ) from None
        if not abs(value) <= MAX_VALUE:
            raise DltkError(
                f"{key}: '{path}' line {number}: {cell[:40]} in column '{name}' is "
                f"{'not finite' if not np.isfinite(value) else 'too large'}; values must lie within "
                f"+-{MAX_VALUE:g}"
            )
        values.append(value)
    return name, np.asarray(values, dtype=np.float64)


def time_series(config: TimeSeriesConfig, split: str | None = None) -> TensorSequences:
    """Windows of ``context`` past values of a series, each paired with the ``horizon`` values after it.

    The first ``1 - test_fraction`` of the series (by time) trains: its windows lie wholly inside
    it. Test windows forecast values of the rest (their context may reach back into the training
    part). Values are normalised with the training part's mean and standard deviation, recorded in
    ``spec.extra`` so that forecasts can be read in the series' units.
    """
    path = Path(config.path) if config.path else Path(__file__).with_name("series") / SYNTHETIC_SERIES
    name, values = read_column(path, config.column)
    cut = len(values) - int(len(values) * config.test_fraction)
    span = config.context + config.horizon
    train = values[:cut]
    if cut < span or len(values) - cut < config.horizon:
        raise DltkError(
            f"dataset.path: '{path}' is too short: {len(values)} values, and windows need dataset.context + "
            f"dataset.horizon = {span} in the training part and {config.horizon} in the test part"
        )
    mean, std = float(train.mean()), float(train.std())
    std = std if std > 0 else 1.0
    scaled = torch.from_numpy(((values - mean) / std).astype(np.float32))
    first, last = (cut - config.context, len(values) - span) if split == "test" else (0, cut - span)
    starts = range(first, last + 1)
    index = torch.tensor(list(starts), dtype=torch.int64).unsqueeze(1)
    inputs = scaled[index + torch.arange(config.context)].unsqueeze(-1)
    targets = scaled[index + config.context + torch.arange(config.horizon)]
    spec = DataSpec(
        "series",
        (config.context, 1),
        horizon=config.horizon,
        extra={"mean": mean, "std": std, "column": name},
    )
    return TensorSequences(inputs, targets, spec)
