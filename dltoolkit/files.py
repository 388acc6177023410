"""File helpers for plugins: writing a file so that no reader ever sees half of it, and checksums.

* :func:`atomic_write`: write a file through a temporary file in the same folder (write, fsync,
  rename, fsync the folder), as dltoolkit writes checkpoints, exports and images.
* :func:`sha256_file`: the sha256 hex digest of a file (for weights files and caches).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dltoolkit._lazy import lazy_exports

if TYPE_CHECKING:
    from dltoolkit._atomic import atomic_write
    from dltoolkit._checkpoint import sha256_file

__all__ = ["atomic_write", "sha256_file"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "atomic_write": "dltoolkit._atomic",
        "sha256_file": "dltoolkit._checkpoint",
    },
)
