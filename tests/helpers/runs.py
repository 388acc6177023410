"""What the repository's tests share about runs: ``dltk`` in a process of its own with the
fault-injecting plugin (:mod:`fault_plugin`), and reading a run's records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HELPERS = Path(__file__).resolve().parent
FIRST_PARTY = ("gan", "vae", "vision", "sequence", "fidelity")


def needs_first_party(*names: str) -> Any:
    """Skip, saying why, a core test that runs the core through first-party plugins (``"gan"``,
    ``"vision"``, ...) when they are not installed: the core's own tests use the toy plugin."""
    import importlib.util

    import pytest

    missing = [f"dltoolkit-{n}" for n in names or FIRST_PARTY if importlib.util.find_spec(f"dltoolkit_{n}") is None]
    return pytest.mark.skipif(bool(missing), reason=f"runs the first-party plugins {missing}, not installed here")


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


HEAVY_PROBE = """
import sys
from dltoolkit.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:  # --help
    code = exc.code
heavy = sorted(m for m in ("torch", "ignite", "torchvision", "torch_fidelity", "sklearn") if m in sys.modules)
print("EXIT", code, "HEAVY", ",".join(heavy) or "-")
"""


def heavy_imports(args: list[str], cwd: Path) -> str:
    """``dltk ARGS`` in a fresh interpreter: ``EXIT <code> HEAVY <heavy modules it imported, or ->``."""
    result = subprocess.run(
        [sys.executable, "-c", HEAVY_PROBE, *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )
    last = (result.stdout.strip().splitlines() or [""])[-1]
    assert last.startswith("EXIT "), result.stdout + result.stderr
    return last
