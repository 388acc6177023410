"""``dltk sweep SWEEP``: the study (Optuna, in a database), its workers, and the report at the end."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from dltoolkit import DltkError, ExitCode
from dltoolkit_optuna.spec import Sweep, read_sweep, toml_value

DEFAULT_DIR = Path("runs") / "sweeps"


def sweep_command(args: argparse.Namespace, registry: Any) -> int:
    """Check everything (nothing written on a problem), then run trials until ``trials`` are
    finished or pruned, then write the report."""
    if args.jobs < 1:
        raise DltkError(f"--jobs: give at least 1, got {args.jobs}")
    if args.trials is not None and args.trials < 1:
        raise DltkError(f"--trials: give at least 1, got {args.trials}")
    sweep, _recipe_file = read_sweep(args.sweep, registry, trials=args.trials)
    folder = Path(args.out) if args.out is not None else DEFAULT_DIR / sweep.name
    from dltoolkit_optuna.storage import storage_problem

    storage = args.storage or f"sqlite:///{(folder / 'study.db').as_posix()}"
    problem = storage_problem(storage, default_folder=folder if args.storage is None else None)
    if problem:
        raise DltkError(f"--storage: {problem}")
    from dltoolkit_optuna.study import Study

    folder.mkdir(parents=True, exist_ok=True)
    study = Study(sweep, folder, storage, plugins=list(getattr(args, "plugins", [])))
    study.run(jobs=args.jobs)
    from dltoolkit_optuna.report import write_report

    return write_report(study)


def trial_command(sweep: Sweep, params: dict[str, Any], run_dir: Path, plugins: list[str]) -> list[str]:
    """The ``dltk run`` of one trial."""
    overrides = [*sweep.overrides, *(f"{k}={toml_value(v)}" for k, v in params.items())]
    extra = [arg for module in plugins for arg in ("-p", module)]
    return [sys.executable, "-m", "dltoolkit", "run", str(sweep.recipe), *overrides, "--run-dir", str(run_dir), *extra]


def owner() -> dict[str, Any]:
    """Who runs a trial: this machine and process (a restart fails the trials of a dead one)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "thread": threading.get_ident()}


__all__ = ["ExitCode", "sweep_command", "trial_command"]
