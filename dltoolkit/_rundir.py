"""The run directory: its layout (spelled here only), its lock, ``recipe.toml``, ``metrics.jsonl``
and the journal of the artefacts written at each iteration, which a resume undoes.

Imports no torch: ``dltk check`` and ``compare`` read the layout constants too.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dltoolkit._errors import DltkError

RECIPE_NAME = "recipe.toml"
"""The resolved recipe file of the run (overrides applied)."""
METRICS_NAME = "metrics.jsonl"
"""One JSON record per line: what the recorder's ``jsonl`` writer writes (docs/writers.md)."""
SUMMARY_NAME = "run.json"
"""Parameters and training time (summed over resumes), for ``dltk compare``."""
JOURNAL_NAME = "artefacts.jsonl"
"""One line per file written for an iteration (``{"iteration": N, "path": "samples/..."}``)."""
LOCK_NAME = ".lock"
CHECKPOINTS = "checkpoints"
SAMPLES = "samples"
TB = "tb"
SUBDIRS = (CHECKPOINTS, SAMPLES)
"""Made with the run directory; ``tb/`` is made by the ``tensorboard`` writer, when it is on."""

LEGACY_ITERATION_IMAGE = re.compile(r"[A-Za-z][A-Za-z0-9-]*(?:_[A-Za-z][A-Za-z0-9-]*)*_(\d{8,})")
"""How runs written before the journal existed name an image of one iteration under ``samples/``
(``grid_00000220``): undone on resume by this pattern, for those runs only."""


def check_writable(folder: Path, key: str) -> None:
    """Refuse (one line) a folder under which nothing can be created."""
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise DltkError(f"{key}: cannot write under '{folder}' ({probe} is not a writable folder)")


def new_run_path(base_dir: str | Path, stem: str) -> Path:
    """``<base_dir>/<stem>-<timestamp>`` (with ``-2``, ``-3`` when taken)."""
    base = Path(base_dir) / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def _json_default(value: Any) -> Any:
    if hasattr(value, "numel") and hasattr(value, "tolist"):  # a tensor, without importing torch
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {value!r}")


def json_line(record: Mapping[str, Any]) -> str:
    """A record as one ``metrics.jsonl`` line (tensors as numbers or lists, paths as strings)."""
    return json.dumps(dict(record), default=_json_default)


def _not_empty(path: Path) -> bool:
    return any(p.name != LOCK_NAME for p in path.iterdir())


def _atomic_write(path: Path, text: str) -> None:
    import dltoolkit._atomic  # looked up at call time: the reliability tests patch it there

    dltoolkit._atomic.atomic_write(path, lambda h: h.write(text.encode()))


class RunDirectory:
    """One run's folder, created on first write (a run refused for bad input leaves nothing).

    ``explicit``: the user named it (``--run-dir``), so it must be new or empty; otherwise it is a
    fresh ``<stem>-<timestamp>`` that may be renamed if another run took that name meanwhile.
    ``scratch``: a private folder of a rank > 0, which owns nothing and locks nothing.
    """

    def __init__(self, path: Path, recipe_data: Mapping[str, Any], *, explicit: bool, resuming: bool):
        self.path = path
        self.recipe_data = recipe_data
        self.explicit = explicit
        self.resuming = resuming
        self.scratch = False
        self.created = False
        self._lock_fd: int | None = None
        self._metrics: Any = None
        self._journal: Any = None

    def refuse_if_taken(self, recipe_path: Path) -> None:
        """Before anything runs: a ``--run-dir`` that is a file or not empty, an unwritable folder."""
        if self.resuming:
            return
        if self.explicit:
            if self.path.exists() and not self.path.is_dir():
                raise DltkError(f"--run-dir: '{self.path}' is a file, not a folder; give a new or empty folder")
            if self.path.exists() and _not_empty(self.path):
                raise DltkError(f"--run-dir: '{self.path}' exists and is not empty; use --resume to continue it")
            check_writable(self.path, "--run-dir")
        else:
            check_writable(self.path.parent, f"{recipe_path}: run.dir")

    @property
    def owns(self) -> bool:
        """Whether this run made the folder (it holds the lock of a folder it created or found empty)."""
        return self.created or self._lock_fd is not None

    def ensure(self) -> Path:
        """Create the folder, lock it, write ``recipe.toml`` (once); return its path."""
        if self.created:
            return self.path
        if self.scratch:
            for sub in SUBDIRS:
                (self.path / sub).mkdir(parents=True, exist_ok=True)
            self.created = True
            return self.path
        taken = f"--run-dir: '{self.path}' exists and is not empty; use --resume to continue it"
        if self.resuming:
            self._lock()  # two resumes of one run: the second stops before it writes anything
        elif self.explicit:
            if self.path.exists() and _not_empty(self.path):
                raise DltkError(taken)
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock()  # two runs given the same --run-dir: one gets it, the other stops here
            if _not_empty(self.path):
                self.unlock()
                raise DltkError(taken)
        else:  # two runs started in the same second must not share a folder
            self.path.parent.mkdir(parents=True, exist_ok=True)
            base, n = self.path, 1
            while True:
                try:
                    self.path.mkdir()
                    break
                except FileExistsError:
                    n += 1
                    self.path = base.with_name(f"{base.name}-{n}")
            self._lock()
        if not self.resuming:
            print(f"dltk: writing run to {self.path}", file=sys.stderr)
            self.write_recipe()
        for sub in SUBDIRS:
            (self.path / sub).mkdir(exist_ok=True)
        self.created = True
        return self.path

    def _lock(self) -> None:
        """An exclusive ``flock`` on ``.lock``, held until the run ends; the OS releases it when
        the process dies, so a killed run leaves no stale lock."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on POSIX: no locking
            return
        fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DltkError(
                f"{self.path}: in use by another dltk run (pid {holder}); wait for it to end or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def write_recipe(self, data: Mapping[str, Any] | None = None) -> None:
        """Write the resolved recipe file as ``recipe.toml``, atomically."""
        import tomli_w

        if data is not None:
            self.recipe_data = data
        text = f"# resolved recipe of this run (overrides applied)\n{tomli_w.dumps(dict(self.recipe_data))}"
        _atomic_write(self.path / RECIPE_NAME, text)

    def append_metrics(self, line: str) -> None:
        """Append one line to ``metrics.jsonl`` (flushed)."""
        if self._metrics is None:
            self.ensure()
            self._metrics = open(self.path / METRICS_NAME, "a", encoding="utf-8")  # noqa: SIM115
        self._metrics.write(line + "\n")
        self._metrics.flush()

    def journal(self, path: Path, iteration: int) -> None:
        """Note that ``path`` (inside the run directory) was written for ``iteration``."""
        try:
            relative = Path(path).resolve().relative_to(self.path.resolve())
        except ValueError:
            return  # written elsewhere: not this run's to undo
        if self._journal is None:
            self.ensure()
            self._journal = open(self.path / JOURNAL_NAME, "a", encoding="utf-8")  # noqa: SIM115
        self._journal.write(json.dumps({"iteration": int(iteration), "path": relative.as_posix()}) + "\n")
        self._journal.flush()

    def undo_after(self, iteration: int) -> None:
        """Undo what was recorded after ``iteration``, the checkpoint a resume starts from (0: none).

        The ``metrics.jsonl`` records go (they are logged again), and so do the files journaled for
        a later iteration whose name carries that iteration (grids, reconstructions, confusion
        matrices), with their siblings of the same name pattern up to the furthest iteration the run
        reached (what an earlier session with another schedule left). A file rewritten in place
        (``interpolation.png``) keeps its latest content. Runs without a journal (written before it
        existed) have their images of one iteration undone by :data:`LEGACY_ITERATION_IMAGE`.
        """
        reached = self._truncate(self.path / METRICS_NAME, iteration, "iteration")
        journal = self.path / JOURNAL_NAME
        samples = self.path / SAMPLES
        if not journal.is_file():
            for image in samples.glob("*.png") if samples.is_dir() else ():
                found = LEGACY_ITERATION_IMAGE.fullmatch(image.stem)
                if found and iteration < int(found.group(1)) <= reached:
                    image.unlink(missing_ok=True)
            return
        entries = []
        for line in journal.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                entries.append((int(entry["iteration"]), str(entry["path"])))
            except (ValueError, KeyError, TypeError):
                continue
        reached = max([reached, *(n for n, _ in entries)])
        families: set[tuple[str, re.Pattern[str]]] = set()
        for n, relative in entries:
            name = Path(relative).name
            stamp = f"{n:08d}"
            if stamp in name:
                head, _, tail = name.partition(stamp)
                families.add((str(Path(relative).parent), re.compile(re.escape(head) + r"(\d{8,})" + re.escape(tail))))
        for folder, pattern in families:
            where = self.path / folder
            for file in where.iterdir() if where.is_dir() else ():
                found = pattern.fullmatch(file.name)
                if found and iteration < int(found.group(1)) <= reached:
                    file.unlink(missing_ok=True)
        self._truncate(journal, iteration, "iteration")

    @staticmethod
    def _truncate(path: Path, iteration: int, key: str) -> int:
        """Keep the records of ``path`` up to ``iteration``; return the furthest one it held."""
        if not path.exists():
            return 0
        kept, reached = [], 0
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                logged = int(json.loads(line).get(key, 0))
            except (ValueError, AttributeError, TypeError):
                continue
            reached = max(reached, logged)
            if logged <= iteration:
                kept.append(line)
        _atomic_write(path, "".join(f"{line}\n" for line in kept))
        return reached

    def close(self) -> None:
        """Close the logs and release the lock (a scratch folder is removed)."""
        self.unlock()
        for handle in (self._metrics, self._journal):
            if handle is not None:
                handle.close()
        self._metrics = self._journal = None
        if self.scratch:
            import shutil

            shutil.rmtree(self.path.parent, ignore_errors=True)
