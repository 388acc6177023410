"""Checkpoints: Ignite's ``Checkpoint`` with a saver that makes every write durable."""

from __future__ import annotations

import errno
import hashlib
import json
import pickle
import random
import re
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver

from dltoolkit._atomic import TEMP_PREFIX, atomic_write, fsync_dir
from dltoolkit._errors import DltkError, RunFailed
from dltoolkit._paths import dltk_command

__all__ = ["TEMP_PREFIX", "atomic_write", "fsync_dir"]  # re-exported: plugins and tests patch them here

LAST_PATTERN = re.compile(r"^checkpoint_(\d+)\.pt$")
BEST_PREFIX = "best"
BEST_ITERATION = re.compile(rf"^{BEST_PREFIX}_checkpoint_(\d+)_.*\.pt$")
MANIFEST = "manifest.json"


def sha256_file(path: Path) -> str:
    """The sha256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(folder: Path) -> dict[str, str]:
    """``{file name: sha256}`` of the checkpoints in ``folder`` (empty if missing or unreadable)."""
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_manifest(folder: Path, manifest: Mapping[str, str]) -> None:
    text = json.dumps(dict(sorted(manifest.items())), indent=1) + "\n"
    atomic_write(folder / MANIFEST, lambda handle: handle.write(text.encode()))


class DurableDiskSaver(DiskSaver):
    """Ignite's ``DiskSaver`` made durable: each checkpoint is written to a temp file in the same
    folder, fsynced, renamed, the folder fsynced, and its sha256 recorded in ``manifest.json``.

    A full disk stops the run with a message saying so and where; the previous checkpoints are
    untouched (the temp file is removed).
    """

    def __init__(self, dirname: str | Path):
        super().__init__(str(dirname), atomic=True, require_empty=False, create_dir=True)
        self._pending_removal: list[str] = []

    def _save_func(self, checkpoint: Mapping, path: Path, func: Callable) -> None:
        path = Path(path)
        try:
            atomic_write(path, lambda handle: func(checkpoint, handle))
            manifest = read_manifest(path.parent)
            manifest[path.name] = sha256_file(path)
            _write_manifest(path.parent, manifest)
            self._remove_pending()
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise RunFailed(
                    f"{path.parent}: disk full while writing {path.name}; the previous checkpoints are intact. "
                    f"Free some space, then continue with {dltk_command()} run --resume on this run"
                ) from None
            raise

    def remove(self, filename: str) -> None:
        """Ignite rotates out the oldest file *before* writing the next; we wait until the new
        one is safely on disk, so a crash or a full disk during a save never leaves fewer good
        checkpoints than before."""
        self._pending_removal.append(filename)

    def _remove_pending(self) -> None:
        folder = Path(self.dirname)
        manifest = read_manifest(folder)
        for filename in self._pending_removal:
            (folder / filename).unlink(missing_ok=True)
            manifest.pop(filename, None)
        if self._pending_removal:
            self._pending_removal.clear()
            _write_manifest(folder, manifest)
            fsync_dir(folder)


def verify(path: Path) -> str | None:
    """Why ``path`` must not be trusted (its manifest hash differs), or None."""
    expected = read_manifest(path.parent).get(path.name)
    if expected is None:
        return None  # renamed into place after fsync, killed before the manifest update: complete
    actual = sha256_file(path)
    if actual != expected:
        return f"{path}: sha256 {actual[:16]}... does not match the manifest ({expected[:16]}...): truncated or altered"
    return None


def non_finite_module(to_save: Mapping[str, Any]) -> str | None:
    """The name of the first module in ``to_save`` with a non-finite parameter or buffer."""
    for name, obj in to_save.items():
        if isinstance(obj, torch.nn.Module):
            for tensor in (*obj.parameters(), *obj.buffers()):
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                    return name
    return None


def guarded(handler: Checkpoint, to_save: Mapping[str, Any]) -> Callable[[Engine], None]:
    """Call ``handler`` only when every model is finite; otherwise stop the run (exit 1)."""

    def save(engine: Engine) -> None:
        bad = non_finite_module(to_save)
        if bad is not None:
            raise RunFailed(
                f"non-finite weights in {bad} at iteration {engine.state.iteration}: not saved; "
                "resume from the last good checkpoint (a lower learning rate often helps)"
            )
        handler(engine)

    return save


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


def best_checkpoints_in(folder: Path) -> list[Path]:
    """The best checkpoints in ``folder``, newest (highest iteration) first. Each holds the whole
    training state, as a periodic checkpoint does: a run killed before its first periodic
    checkpoint resumes from its newest best one."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob(f"{BEST_PREFIX}_checkpoint_*.pt"):
        match = BEST_ITERATION.match(path.name)
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
    if not zipfile.is_zipfile(path):
        raise DltkError(f"{path}: not a readable checkpoint (truncated or corrupt?): not a torch.save archive")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reasons = [line for line in lines if "WeightsUnpickler error" in line]
        first = (reasons or lines or ["unsupported content"])[0]
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
    save = guarded(handler, to_save)
    trainer.add_event_handler(event, save)

    def save_at_end(engine: Engine) -> None:
        last = handler.last_checkpoint
        if last is None or not str(last).endswith(f"_{engine.state.iteration}.pt"):
            save(engine)

    trainer.add_event_handler(Events.COMPLETED, save_at_end)
    sync_saved(handler, folder, keep)
    return handler


def sync_saved(handler: Checkpoint, folder: Path, keep: int) -> None:
    """Tell Ignite's handler which checkpoints are on disk (on resume)."""
    existing = checkpoints_in(folder)  # newest first; older leftovers stay on disk, out of rotation
    kept = list(reversed(existing[:keep]))
    saved = [(int(LAST_PATTERN.match(p.name).group(1)), p.name) for p in kept]  # type: ignore[union-attr]
    handler.load_state_dict({"_saved": saved})


def set_aside(path: Path) -> Path:
    """Rename an unusable checkpoint to ``<name>.corrupt``: kept for inspection, out of rotation."""
    target = path.with_name(path.name + ".corrupt")
    path.replace(target)
    manifest = read_manifest(path.parent)
    if manifest.pop(path.name, None) is not None:
        _write_manifest(path.parent, manifest)
    return target


SCORE_IN_NAME = re.compile(r"=(-?\d+(?:\.\d+)?)\.pt$")


def measured_name(filename: str) -> str:
    """Ignite's name of a best checkpoint kept by a lower-is-better score, which carries the negated
    score (``best_checkpoint_79_bpc=-3.1837.pt``), with the score as measured (``bpc=3.1837``)."""
    found = SCORE_IN_NAME.search(filename)
    if found is None:
        return filename
    text = found.group(1)
    shown = text[1:] if text.startswith("-") else f"-{text}"
    return f"{filename[: found.start(1)]}{shown}.pt"


class MeasuredScoreSaver(DurableDiskSaver):
    """The saver of a best checkpoint kept by a lower-is-better score: Ignite ranks by the negated
    score and names files by it; the file on disk shows the score as measured. Files of older runs
    named by the negated score are still found and rotated out."""

    def _save_func(self, checkpoint: Mapping, path: Path, func: Callable) -> None:
        path = Path(path)
        super()._save_func(checkpoint, path.with_name(measured_name(path.name)), func)

    def remove(self, filename: str) -> None:
        shown = measured_name(filename)
        super().remove(shown if (Path(self.dirname) / shown).exists() else filename)


def attach_best(
    to_save: Mapping[str, Any],
    folder: Path,
    score_name: str,
    higher_is_better: bool,
    same: Callable[[Any], bool] | None = None,
) -> Checkpoint:
    """A checkpoint handler keeping only the best score ``engine.state.metrics[score_name]``; call it
    when the score is fresh. The file name shows the score as measured, whichever direction is
    better, under the name ``eval-accuracy`` for ``eval/accuracy``. A best checkpoint already in
    ``folder`` competes when its metadata's ``best_by`` is ``score_name`` (or ``same(best_by)``
    says it names the same score: an older run's name)."""
    sign = 1.0 if higher_is_better else -1.0
    handler = Checkpoint(
        dict(to_save),
        DurableDiskSaver(folder) if higher_is_better else MeasuredScoreSaver(folder),
        n_saved=1,
        filename_prefix=BEST_PREFIX,
        score_name=score_name.replace("/", "-"),
        score_function=lambda engine: sign * float(engine.state.metrics[score_name]),
        global_step_transform=lambda engine, _event: engine.state.iteration,
    )
    best = best_checkpoint_in(folder)
    if best is not None:
        try:
            meta = load_checkpoint(best)["meta"]
        except DltkError:
            meta = {}
        kept = meta.get("best_by")
        score = meta.get("best_score") if kept == score_name or (same is not None and same(kept)) else None
        if score is None:  # unreadable, or kept by another score: not comparable
            set_aside(best)
        else:
            handler.load_state_dict({"_saved": [(sign * float(score), best.name)]})
    return handler
