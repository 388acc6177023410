"""File helpers for plugins: writing a file so that no reader ever sees half of it, and checksums.

* :func:`atomic_write`: write a file through a temporary file in the same folder (write, fsync,
  rename, fsync the folder), as dltoolkit writes checkpoints, exports and images.
* :func:`sha256_file`: the sha256 hex digest of a file (for weights files and caches).
* The run directory's layout (docs/run_directory.md): :data:`METRICS_NAME` (``metrics.jsonl``),
  :data:`SUMMARY_NAME` (``run.json``), :data:`RECIPE_NAME` (``recipe.toml``), and the folders
  :data:`CHECKPOINTS`, :data:`SAMPLES` and :data:`TB`, for plugins that write or read a run's files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dltoolkit._lazy import lazy_exports

if TYPE_CHECKING:
    from dltoolkit._atomic import atomic_write
    from dltoolkit._checkpoint import sha256_file
    from dltoolkit._rundir import CHECKPOINTS, METRICS_NAME, RECIPE_NAME, SAMPLES, SUMMARY_NAME, TB

__all__ = ["CHECKPOINTS", "METRICS_NAME", "RECIPE_NAME", "SAMPLES", "SUMMARY_NAME", "TB", "atomic_write", "sha256_file"]

LAYOUT = ("CHECKPOINTS", "METRICS_NAME", "RECIPE_NAME", "SAMPLES", "SUMMARY_NAME", "TB")

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "atomic_write": "dltoolkit._atomic",
        "sha256_file": "dltoolkit._checkpoint",
        **dict.fromkeys(
            ("CHECKPOINTS", "METRICS_NAME", "RECIPE_NAME", "SAMPLES", "SUMMARY_NAME", "TB"), "dltoolkit._rundir"
        ),
    },
)
