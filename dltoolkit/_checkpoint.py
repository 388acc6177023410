"""Checkpoints: Ignite's ``Checkpoint`` with a saver that makes every write durable."""

from __future__ import annotations

import contextlib
import os
import pickle
import random
import re
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver

from dltoolkit._errors import DltkError

TEMP_PREFIX = ".tmp-"
LAST_PATTERN = re.compile(r"^checkpoint_(\d+)\.pt$")
BEST_PREFIX = "best"


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable (no-op where directories can't be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Write ``path`` through a temp file in the same folder: write, fsync, rename, fsync folder.

    A crash at any point leaves either the old file or the new one, never a torn file.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    fsync_dir(path.parent)


class DurableDiskSaver(DiskSaver):
    """Ignite's ``DiskSaver`` whose atomic writes are also fsynced (file and folder)."""

    def __init__(self, dirname: str | Path):
        super().__init__(str(dirname), atomic=True, require_empty=False, create_dir=True)

    def _save_func(self, checkpoint: Mapping, path: Path, func: Callable) -> None:
        atomic_write(Path(path), lambda handle: func(checkpoint, handle))

    def remove(self, filename: str) -> None:
        super().remove(filename)
        fsync_dir(Path(self.dirname))


def remove_stray_temp_files(folder: Path) -> list[Path]:
    """Delete temp files left by a save that was killed half-way; return what was removed."""
    removed = []
    if folder.is_dir():
        for path in folder.glob(f"{TEMP_PREFIX}*"):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


class RngState:
    """Every RNG a run draws from (torch, CUDA, numpy, python), as tensors.

    Stored as plain tensors and integers so checkpoints load with ``torch.load(weights_only=True)``.
    """

    def state_dict(self) -> dict[str, Any]:
        np_state = np.random.get_state()
        py_version, py_internal, py_gauss = random.getstate()
        state: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "numpy_keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "numpy_pos": int(np_state[2]),
            "numpy_has_gauss": int(np_state[3]),
            "numpy_gauss": float(np_state[4]),
            "python_version": int(py_version),
            "python_internal": torch.tensor(py_internal, dtype=torch.int64),
            "python_gauss": py_gauss if py_gauss is None else float(py_gauss),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        np.random.set_state(
            (
                "MT19937",
                state["numpy_keys"].numpy().astype(np.uint32),
                int(state["numpy_pos"]),
                int(state["numpy_has_gauss"]),
                float(state["numpy_gauss"]),
            )
        )
        random.setstate(
            (
                int(state["python_version"]),
                tuple(int(v) for v in state["python_internal"].tolist()),
                state["python_gauss"],
            )
        )
        if "cuda" in state and torch.cuda.is_available():
            cuda_states = list(state["cuda"])[: torch.cuda.device_count()]
            torch.cuda.set_rng_state_all(cuda_states)


class Metadata:
    """Plain-data facts stored in every checkpoint (model component, image shape, version)."""

    def __init__(self, data: Mapping[str, Any]):
        self.data = dict(data)

    def state_dict(self) -> dict[str, Any]:
        return dict(self.data)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.data = dict(state)


def checkpoints_in(folder: Path) -> list[Path]:
    """The periodic checkpoints in ``folder``, newest (highest iteration) first."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = LAST_PATTERN.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found, reverse=True)]


def best_checkpoint_in(folder: Path) -> Path | None:
    if not folder.is_dir():
        return None
    found = sorted(folder.glob(f"{BEST_PREFIX}_checkpoint_*.pt"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; anything else is a :class:`DltkError`.

    A file carrying pickled code is refused (the code never runs), and there is no fallback to
    unsafe loading.
    """
    path = Path(path)
    if not path.is_file():
        raise DltkError(f"{path}: no such checkpoint file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsupported content"
        raise DltkError(
            f"{path}: refused: the file holds pickled objects that safe loading does not allow "
            f"({first}); dltoolkit never loads checkpoints unsafely"
        ) from None
    except Exception as exc:  # torch raises many types for a torn or foreign file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DltkError(f"{path}: not a readable checkpoint (truncated or corrupt?): {first}") from None
    if not isinstance(data, dict) or "meta" not in data:
        raise DltkError(f"{path}: not a dltoolkit checkpoint (no 'meta' entry)")
    return data


def attach_checkpoints(
    trainer: Engine,
    to_save: Mapping[str, Any],
    folder: Path,
    *,
    every: int,
    unit: str,
    keep: int,
) -> Checkpoint:
    """Save ``to_save`` every ``every`` epochs or iterations, and when the run completes."""
    handler = Checkpoint(
        dict(to_save),
        DurableDiskSaver(folder),
        n_saved=keep,
        global_step_transform=lambda engine, _event: engine.state.iteration,
    )
    event = Events.EPOCH_COMPLETED(every=every) if unit == "epoch" else Events.ITERATION_COMPLETED(every=every)
    trainer.add_event_handler(event, handler)

    def save_at_end(engine: Engine) -> None:
        last = handler.last_checkpoint
        if last is None or not str(last).endswith(f"_{engine.state.iteration}.pt"):
            handler(engine)

    trainer.add_event_handler(Events.COMPLETED, save_at_end)
    existing = checkpoints_in(folder)
    if existing:
        steps = [int(LAST_PATTERN.match(p.name).group(1)) for p in reversed(existing)]  # type: ignore[union-attr]
        saved = [(step, p.name) for step, p in zip(steps, reversed(existing), strict=True)][-keep:]
        handler.load_state_dict({"_saved": saved})
    return handler


def attach_best(to_save: Mapping[str, Any], folder: Path, score_name: str, higher_is_better: bool) -> Checkpoint:
    """A checkpoint handler keeping only the best score; call it when the score is fresh."""
    sign = 1.0 if higher_is_better else -1.0
    handler = Checkpoint(
        dict(to_save),
        DurableDiskSaver(folder),
        n_saved=1,
        filename_prefix=BEST_PREFIX,
        score_name=score_name,
        score_function=lambda engine: sign * float(engine.state.metrics[score_name]),
        global_step_transform=lambda engine, _event: engine.state.iteration,
    )
    best = best_checkpoint_in(folder)
    if best is not None:
        data = load_checkpoint(best)
        score = data["meta"].get("best_score")
        if score is not None:
            handler.load_state_dict({"_saved": [(sign * float(score), best.name)]})
    return handler
