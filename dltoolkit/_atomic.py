"""Writing files so that a crash leaves the old file or the new one, never a torn one.

Every file dltoolkit writes (checkpoints, ``recipe.toml``, ``metrics.jsonl`` rewrites, sample
grids, the GIF, the loss plot, exports, predictions) goes through :func:`atomic_write`: a temp
file in the same folder, fsynced, given the user's umask (``mkstemp`` would leave it 0600),
renamed into place, then the folder fsynced so the rename itself survives a power cut.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

TEMP_PREFIX = ".tmp-"


def current_umask() -> int:
    """The process's umask: read from ``/proc/self/status`` where it can be (Linux), else by
    setting it and putting it back (which, for an instant, other threads would see)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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


def atomic_write(path: Path, write: Callable[[Any], None], *, durable: bool = True) -> None:
    """Write ``path`` through a temp file in the same folder: write, fsync, rename, fsync folder.

    ``write(handle)`` writes the content to a binary file handle. The file gets mode
    ``0o666 & ~umask``, like any file the user creates. ``durable=False`` skips both fsyncs (for
    many small files whose loss on a power cut costs nothing, such as ``dltk generate``'s samples);
    the rename still means no reader ever sees half a file.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~current_umask())
            write(handle)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    if durable:
        fsync_dir(path.parent)
