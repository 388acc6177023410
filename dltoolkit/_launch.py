"""``dltk run``: the recipe file it validates, and the run it starts here, in several local
processes (``--nproc-per-node``) or as one rank of a torchrun launch."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from dltoolkit._cli_args import host_and_registry
from dltoolkit._compat import component_problems
from dltoolkit._config import RecipeFile
from dltoolkit._errors import DltkError
from dltoolkit._manager import PluginHost
from dltoolkit._registry import Registry
from dltoolkit._rundir import CHECKPOINTS, METRICS_NAME, RECIPE_NAME, SAMPLES, TB


def run_command(args: argparse.Namespace) -> int:
    """``dltk run``: here, in ``--nproc-per-node`` processes, or as one rank of a torchrun launch."""
    from dltoolkit import _distributed

    nproc = args.nproc_per_node
    world = _distributed.torchrun_world()
    if world is not None and world > 1:
        if nproc is not None:
            raise DltkError(f"--nproc-per-node: not used under torchrun (it already started {world} processes)")
        backend = args.backend or _distributed.default_backend()
        _distributed.check_backend(backend, 1)
        return _distributed.join_torchrun(run_here, args, backend)
    if nproc is not None and nproc < 1:
        raise DltkError(f"--nproc-per-node: must be at least 1, got {nproc}")
    if nproc is None or nproc == 1:
        return run_here(args)
    backend = args.backend or _distributed.default_backend()
    _distributed.check_backend(backend, nproc)
    recipe_for(args, *host_and_registry(args), world_size=nproc)  # bad input: one message, before any process starts
    code, lines = _distributed.launch(run_here, args, nproc, backend)
    for line in lines:
        print(line, file=sys.stderr)
    return code


def recipe_for(args: argparse.Namespace, host: PluginHost, registry: Registry, *, world_size: int = 1) -> Any:
    """The validated recipe file of ``dltk run`` (a recipe and overrides, or --resume RUN_DIR)."""
    from dltoolkit._run import check_batch_split
    from dltoolkit._runrecords import check_metrics_log

    if args.resume is not None:
        run_dir = args.resume
        recipe_path = run_dir / RECIPE_NAME
        if not recipe_path.is_file():
            raise DltkError(f"{run_dir}: not a run directory (no {RECIPE_NAME})")
        if args.run_dir is not None:
            raise DltkError("--run-dir: not used with --resume (the run directory is RUN_DIR)")
        from dltoolkit._resume import check_resume_overrides

        check_resume_overrides(registry, args.args, run_dir)
        check_metrics_log(run_dir)  # a log resume could not rewrite: said before anything is written
        recipe_file = RecipeFile.from_toml(recipe_path, registry, args.args)
    else:
        if not args.args:
            raise DltkError("dltk run: give a recipe file (dltk run RECIPE [KEY=VALUE ...]) or --resume RUN_DIR")
        recipe_path, overrides = Path(args.args[0]), args.args[1:]
        if "=" in args.args[0] and not recipe_path.exists():
            raise DltkError(f"dltk run: the first argument must be the recipe file, got override '{args.args[0]}'")
        recipe_file = RecipeFile.from_toml(recipe_path, registry, overrides)
    check_batch_split(recipe_file, world_size)
    problems = component_problems(recipe_file, stage="run" if args.resume is None else "resume", registry=registry)
    if problems:
        raise DltkError(problems)
    return recipe_file


def run_here(args: argparse.Namespace) -> int:
    """Run the recipe in this process (one rank of a distributed run, or the only process)."""
    from dltoolkit._run import Run, execute

    host, registry = host_and_registry(args)
    recipe_file = recipe_for(args, host, registry)
    if args.resume is not None:
        run = Run(recipe_file, host, registry, run_dir=args.resume, resuming=True)
        run.resume_rewrites_recipe = bool(args.args)  # written once the checkpoint is loaded
    else:
        run = Run(recipe_file, host, registry, run_dir=args.run_dir)
    code = execute(run)
    if run.rank > 0:  # rank 0 wrote the run directory and says where it is
        return code
    print(done_line(run.path))
    return code


def done_line(path: Path) -> str:
    """What ``dltk run`` says when it finishes: where the results are, and how to see TensorBoard's."""
    shown = [f"{n}/" if (path / n).is_dir() else n for n in (SAMPLES, CHECKPOINTS, METRICS_NAME)]
    shown = [n for n in shown if (path / n.rstrip("/")).exists() and any_content(path / n.rstrip("/"))]
    line = f"dltk: done. Results in {path}/" + (f" ({', '.join(shown)})" if shown else "")
    if (path / TB).is_dir() and any((path / TB).iterdir()):
        line += f"; TensorBoard: tensorboard --logdir {path / TB}"
    return line


def any_content(path: Path) -> bool:
    """A file, or a folder with something in it."""
    return path.is_file() or any(path.iterdir())
