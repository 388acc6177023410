"""What the repository's tests share about runs: ``dltk`` in a process of its own with the
fault-injecting plugin (:mod:`fault_plugin`), and reading a run's records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HELPERS = Path(__file__).resolve().parent
DLTK = Path(sys.executable).parent / "dltk"
ITERATION_CHECKPOINTS = ["checkpoint.unit=iteration", "checkpoint.every=10", "checkpoint.keep=3"]


def helpers_env(**env: str) -> dict[str, str]:
    """``os.environ`` with tests/helpers first on ``PYTHONPATH`` (``dltk -p fault_plugin``), plus ``env``."""
    path = os.pathsep.join(filter(None, [str(HELPERS), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **env}


def subprocess_run(recipe: Path, run_dir: Path, *overrides: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``dltk run RECIPE OVERRIDES --run-dir RUN_DIR -p fault_plugin`` in a process of its own."""
    return subprocess.run(
        [str(DLTK), "run", str(recipe), *overrides, "--run-dir", str(run_dir), "-p", "fault_plugin"],
        capture_output=True,
        text=True,
        env=helpers_env(**env),
        timeout=300,
    )


def log_lines(run: Path) -> list[dict]:
    """The records of ``run``'s metrics.jsonl."""
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
