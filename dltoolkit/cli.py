"""``dltk``: the command line. User errors print one line per problem and exit 2, no traceback."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dltoolkit._compat import component_problems, serves
from dltoolkit._component import KINDS
from dltoolkit._config import (
    RECIPE_NAME,
    RecipeFile,
)
from dltoolkit._errors import DltkError, ExitCode
from dltoolkit._manager import PluginHost, make_plugin_host
from dltoolkit._paths import one_line
from dltoolkit._plugin_options import PLUGIN_OPTIONS, add_plugin_options, command_and_plugins, given_options
from dltoolkit._registry import Registry


def _plugin_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-p",
        dest="plugins",
        action="append",
        default=[],
        metavar="MODULE",
        help="also load this module as a plugin (repeatable)",
    )


def build_parser(host: PluginHost | None = None) -> argparse.ArgumentParser:
    """The ``dltk`` parser; with ``host``, ``generate``, ``predict`` and ``eval`` also take the
    options its plugins add (the ``dltk_add_options`` hook)."""
    parser = argparse.ArgumentParser(
        prog="dltk", description="Train and evaluate deep-learning models from recipe files."
    )
    parser.add_argument(
        "-p",
        dest="global_plugins",
        action="append",
        default=[],
        metavar="MODULE",
        help="also load this module as a plugin (repeatable; also accepted after the command)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser(
        "run",
        help="run a recipe file",
        description=(
            "Run RECIPE (a TOML recipe file) with optional KEY=VALUE overrides, or continue a run "
            "with --resume RUN_DIR [KEY=VALUE ...]."
        ),
    )
    run.add_argument(
        "args",
        nargs="*",
        metavar="RECIPE [KEY=VALUE ...]",
        help="the recipe file, then overrides such as recipe.epochs=3",
    )
    run.add_argument("--run-dir", type=Path, help="write the run exactly here (must not exist or be empty)")
    run.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue this run from its last checkpoint")
    run.add_argument(
        "--nproc-per-node",
        type=int,
        metavar="N",
        help="train with N processes on this machine (ignite.distributed); recipe.batch_size is the global batch",
    )
    run.add_argument(
        "--backend",
        choices=("gloo", "nccl"),
        help="process-group backend for --nproc-per-node or torchrun (default: nccl with CUDA, else gloo)",
    )
    _plugin_args(run)

    check = sub.add_parser(
        "check",
        help="validate a recipe file, build nothing",
        description="Validate RECIPE and overrides against every component; build nothing.",
    )
    check.add_argument("recipe", type=Path, metavar="RECIPE")
    check.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    _plugin_args(check)

    lst = sub.add_parser("list", help="list components", description="List registered components.")
    lst.add_argument("kind", nargs="?", metavar="KIND", help=f"one of: {', '.join(KINDS)}")
    lst.add_argument("-v", "--verbose", action="store_true", help="show each component's options")
    _plugin_args(lst)

    plugins = sub.add_parser(
        "plugins",
        help="list plugins and load failures",
        description="List loaded plugins, their distributions, and failures.",
    )
    _plugin_args(plugins)

    gen = sub.add_parser(
        "generate",
        help="write samples drawn from a trained model",
        description=(
            "Write images drawn from a trained model whose recipe draws samples. SOURCE is a run "
            "directory (its best checkpoint, else the last), a checkpoint file, or an export."
        ),
    )
    gen.add_argument("source", type=Path, metavar="SOURCE")
    gen.add_argument("--num", type=int, help="how many samples (images: required)")
    gen.add_argument("--out", type=Path, required=True, help="folder for what is written")
    gen.add_argument("--seed", type=int, default=0, help="random seed (same seed, same samples)")
    gen.add_argument("--grid", action="store_true", help="also write grid.png (images)")
    gen.add_argument("--force", action="store_true", help="replace samples already in --out")
    gen.add_argument("--batch-size", type=int, default=256)
    gen.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    gen.add_argument("--label", help="draw this class, by name or index (class-conditional runs)")
    gen.add_argument(
        "--input", type=Path, metavar="FILE|FOLDER", help="generate from these inputs (recipes that translate inputs)"
    )
    _plugin_args(gen)
    _add_plugin_options(host, "generate", gen)

    exp = sub.add_parser(
        "export",
        help="export a trained model to safetensors",
        description=(
            "Write the inference weights of SOURCE (a run directory: its best checkpoint, else the last; "
            "or a checkpoint file) with the metadata that rebuilds the model without data or "
            "training-only parts."
        ),
    )
    exp.add_argument("run_dir", type=Path, metavar="SOURCE")
    exp.add_argument("--out", type=Path, required=True, metavar="FILE.safetensors")
    exp.add_argument("--force", action="store_true", help="replace --out if it exists")
    _plugin_args(exp)

    pred = sub.add_parser(
        "predict",
        help="write a trained model's predictions (CSV, or files)",
        description=(
            "Predict with the model of SOURCE (a run directory, a checkpoint or an export) for INPUT: a "
            "file, a folder, or 'test'/'train' for that split of the run's dataset. One CSV row each, or "
            "files in --out DIR for recipes whose predictions are files (translated images, drawn boxes)."
        ),
    )
    pred.add_argument("source", type=Path, metavar="SOURCE")
    pred.add_argument("--input", required=True, metavar="PATH", help="a file, a folder, or a split name (test, train)")
    pred.add_argument(
        "--out",
        type=Path,
        metavar="FILE.csv|DIR",
        help="write the CSV here (default: standard output), or a folder for recipes that write files",
    )
    pred.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    pred.add_argument("--force", action="store_true", help="replace --out if it exists")
    _plugin_args(pred)
    _add_plugin_options(host, "predict", pred)

    ev = sub.add_parser(
        "eval",
        help="score a trained model or two image folders",
        description=(
            "Score a trained model (run directory, checkpoint or export) against its recipe's "
            "dataset, or two image folders with --real and --fake."
        ),
    )
    ev.add_argument("source", type=Path, nargs="?", metavar="SOURCE")
    ev.add_argument(
        "--metrics",
        help="comma-separated metric names (dltk list metrics); default: the [[metrics]] of SOURCE's recipe",
    )
    ev.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the named metrics (TOML value), for each that has it; repeatable. "
        "Example: --metrics classifier-fid --set classifier=runs/digits-classifier",
    )
    ev.add_argument("--num-samples", type=int, help="generated images to score (default: the metric's own)")
    ev.add_argument(
        "--reference", choices=("train", "test"), help="dataset split to compare with (default: the metric's own)"
    )
    ev.add_argument("--real", type=Path, help="folder of real images")
    ev.add_argument("--fake", type=Path, help="folder of generated images")
    ev.add_argument("--json", type=Path, help="also write the scores and their protocol here")
    ev.add_argument("--force", action="store_true", help="replace the --json file if it exists")
    ev.add_argument("--batch-size", type=int, help="images per batch (default: the metric's own)")
    ev.add_argument("--device", default="auto")
    _plugin_args(ev)
    _add_plugin_options(host, "eval", ev)

    cmp = sub.add_parser(
        "compare",
        help="compare runs: a page with their scores, scalars and samples",
        description=(
            "Write compare.html (figures beside it) for RUN directories: recipe, model, dataset, epochs, "
            "parameters, wall time, best and last scores, every shared scalar on one figure, the last "
            "sample grids; print the tables as Markdown."
        ),
    )
    cmp.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="a run directory (dltk run wrote it)")
    cmp.add_argument(
        "--out", type=Path, metavar="DIR", help="folder for the page (default: compare-<stamp> beside the first run)"
    )
    _plugin_args(cmp)

    new = sub.add_parser("new", help="start something new from a template", description="Write a template.")
    new_sub = new.add_subparsers(dest="template", metavar="TEMPLATE", required=True)
    new_plugin = new_sub.add_parser(
        "plugin",
        help="a pip-installable plugin distribution",
        description=(
            "Write dltoolkit-NAME/: a pip-installable plugin with one working component of KIND, "
            "its entry point, a README and tests that pass as generated."
        ),
    )
    new_plugin.add_argument("name", metavar="NAME", help="plugin name: lowercase letters, digits and dashes")
    new_plugin.add_argument(
        "--kind", default="model", choices=("model", "dataset", "metric", "callback", "recipe"), help="(default: model)"
    )
    new_plugin.add_argument(
        "--out", type=Path, default=Path("."), metavar="DIR", help="write dltoolkit-NAME/ in this folder (default: .)"
    )
    return parser


def _add_plugin_options(host: PluginHost | None, command: str, parser: argparse.ArgumentParser) -> None:
    """The options plugins add to ``command``, remembered as ``{dest: flag}`` on the parsed arguments."""
    parser.set_defaults(**{PLUGIN_OPTIONS: add_plugin_options(host, command, parser) if host is not None else {}})


def _setup(args: argparse.Namespace) -> tuple[PluginHost, Registry]:
    host = getattr(args, "host", None) or make_plugin_host(args.plugins)  # main() loaded them for the parser
    return host, Registry(host)


def cmd_run(args: argparse.Namespace) -> int:
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
    _recipe_for(args, *_setup(args), world_size=nproc)  # bad input: one message, before any process starts
    code, lines = _distributed.launch(run_here, args, nproc, backend)
    for line in lines:
        print(line, file=sys.stderr)
    return code


def _recipe_for(args: argparse.Namespace, host: PluginHost, registry: Registry, *, world_size: int = 1) -> Any:
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
    problems = component_problems(recipe_file, stage="run" if args.resume is None else "resume")
    if problems:
        raise DltkError(problems)
    return recipe_file


def run_here(args: argparse.Namespace) -> int:
    """Run the recipe in this process (one rank of a distributed run, or the only process)."""
    from dltoolkit._run import Run, execute

    host, registry = _setup(args)
    recipe_file = _recipe_for(args, host, registry)
    if args.resume is not None:
        run = Run(recipe_file, host, registry, run_dir=args.resume, resuming=True)
        run.resume_rewrites_recipe = bool(args.args)  # written once the checkpoint is loaded
    else:
        run = Run(recipe_file, host, registry, run_dir=args.run_dir)
    code = execute(run)
    if run.rank > 0:  # rank 0 wrote the run directory and says where it is
        return code
    shown = [f"{n}/" if (run.path / n).is_dir() else n for n in ("samples", "checkpoints", "metrics.jsonl")]
    shown = [n for n in shown if (run.path / n.rstrip("/")).exists() and any_content(run.path / n.rstrip("/"))]
    line = f"dltk: done. Results in {run.path}/" + (f" ({', '.join(shown)})" if shown else "")
    if (run.path / "tb").is_dir() and any((run.path / "tb").iterdir()):
        line += f"; TensorBoard: tensorboard --logdir {run.path / 'tb'}"
    print(line)
    return code


def any_content(path: Path) -> bool:
    """A file, or a folder with something in it."""
    return path.is_file() or any(path.iterdir())


def cmd_check(args: argparse.Namespace) -> int:
    _host, registry = _setup(args)
    recipe_file = RecipeFile.from_toml(args.recipe, registry, args.overrides)
    from dltoolkit._limits import check_device

    check_device(recipe_file)  # what dltk run would refuse at once
    problems = component_problems(recipe_file, stage="check")  # each component's own check
    if problems:
        raise DltkError(problems)
    parts = [f"recipe {recipe_file.recipe.name}"]
    for kind in ("model", "dataset"):
        table = recipe_file.table(kind)
        if table is not None:
            parts.append(f"{kind} {table.name}")
    if recipe_file.metrics:
        parts.append("metrics " + ", ".join(t.name for t in recipe_file.metrics))
    if recipe_file.callbacks:
        parts.append("callbacks " + ", ".join(t.name for t in recipe_file.callbacks))
    print(f"{args.recipe}: ok ({'; '.join(parts)})")
    return ExitCode.OK


def cmd_list(args: argparse.Namespace) -> int:
    host, registry = _setup(args)
    kinds = KINDS
    if args.kind:
        kind = args.kind.rstrip("s") if args.kind.rstrip("s") in KINDS else args.kind
        if kind not in KINDS:
            from dltoolkit._suggest import did_you_mean, one_of

            raise DltkError(
                f"dltk list: unknown kind '{args.kind}'{did_you_mean(args.kind, KINDS)}; choose {one_of(KINDS)}"
            )
        kinds = (kind,)
    for kind in kinds:
        print(f"{kind}s:")
        names = registry.names(kind)
        if not names:
            print("  (none)")
        width = max((len(n) for n in names), default=0)
        for name in names:
            component = registry.components[kind][name]
            info = host.info(component.plugin)
            origin = info.distribution or info.name if info else component.plugin
            recipes = serves(registry, component) if kind in ("model", "dataset") else []
            fits = f"  (for: {', '.join(recipes)})" if recipes else ""
            print(f"  {name:<{width}}  {component.summary}{fits}  [{origin}]")
            if args.verbose:
                for option, type_name, default, doc in component.options():
                    print(f"      {option} ({type_name}, default {default!r}): {doc}")
    for info in host.failures:  # a plugin that did not load lists nothing: say so
        print(f"warning: {info.describe()} failed to load: {info.error} (dltk plugins)", file=sys.stderr)
    for problem in registry.problems:
        print(f"warning: {problem}", file=sys.stderr)
    return ExitCode.OK


def cmd_plugins(args: argparse.Namespace) -> int:
    host, registry = _setup(args)
    for info in host.plugins:
        dist = f"{info.distribution} {info.version}" if info.distribution else info.source
        status = f"FAILED: {info.error}" if info.failed else "ok"
        print(f"{info.name:<28} {dist:<28} {status}")
    for problem in registry.problems:
        print(f"problem: {problem}")
    return ExitCode.OK


def cmd_generate(args: argparse.Namespace) -> int:
    from dltoolkit._generate import generate_images

    _host, registry = _setup(args)
    extra = given_options(args)
    extra.update({k: getattr(args, k) for k in ("label", "input") if getattr(args, k) is not None})
    written = generate_images(
        registry,
        args.source,
        num=args.num,
        out=args.out,
        seed=args.seed,
        grid=args.grid,
        batch_size=args.batch_size,
        device=args.device,
        options=extra,
        flags=getattr(args, PLUGIN_OPTIONS, None),
        force=args.force,
    )
    print(f"dltk: wrote {written} to {args.out}/")
    return ExitCode.OK


def cmd_export(args: argparse.Namespace) -> int:
    from dltoolkit._generate import export_trained

    _host, registry = _setup(args)
    source = export_trained(registry, args.run_dir, args.out, force=args.force)
    print(f"dltk: exported {source} to {args.out}")
    return ExitCode.OK


def cmd_predict(args: argparse.Namespace) -> int:
    from dltoolkit._predict import predict_rows

    _host, registry = _setup(args)
    count = predict_rows(
        registry,
        args.source,
        input=args.input,
        out=args.out,
        device=args.device,
        force=args.force,
        options=given_options(args),
        flags=getattr(args, PLUGIN_OPTIONS, None),
    )
    if args.out is not None:
        print(f"dltk: wrote {count} to {args.out}")
    return ExitCode.OK


def cmd_eval(args: argparse.Namespace) -> int:
    from dltoolkit._evaluate import evaluate_command

    _host, registry = _setup(args)
    return evaluate_command(registry, args)


def cmd_compare(args: argparse.Namespace) -> int:
    from dltoolkit._compare import compare, directions_from

    _host, registry = _setup(args)
    text, page = compare(args.runs, args.out, directions_from(registry))
    print(text)
    print(f"\ndltk: wrote {page} (open it in a browser)")
    return ExitCode.OK


def cmd_new(args: argparse.Namespace) -> int:
    from dltoolkit._new_plugin import new_plugin

    folder = new_plugin(args.name, kind=args.kind, out=args.out)
    print(
        f"dltk: wrote {folder}/; next: install it where dltk runs (pip install -e {folder}, or from a "
        f"dltoolkit checkout: uv pip install -e {folder}) and test it (pytest {folder})"
    )
    return ExitCode.OK


COMMANDS = {
    "run": cmd_run,
    "check": cmd_check,
    "list": cmd_list,
    "plugins": cmd_plugins,
    "generate": cmd_generate,
    "export": cmd_export,
    "predict": cmd_predict,
    "eval": cmd_eval,
    "compare": cmd_compare,
    "new": cmd_new,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``dltk``; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command, plugin_modules = command_and_plugins(argv)
    host = make_plugin_host(plugin_modules) if command in ("generate", "predict", "eval") else None
    parser = build_parser(host)  # with the options the installed plugins add to this command
    args, extra = parser.parse_known_args(argv)
    args.host = host
    if extra:  # overrides written after options: dltk run r.toml --run-dir d recipe.epochs=3
        if args.command == "run" and all("=" in e and not e.startswith("-") for e in extra):
            args.args = [*args.args, *extra]
        elif args.command == "check" and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        elif args.command in ("generate", "predict", "eval"):  # perhaps a flag of a plugin not installed: one line
            print(
                f"dltk {args.command}: unrecognized arguments: {' '.join(extra)} (dltk {args.command} --help "
                "lists its options, those of the installed plugins included)",
                file=sys.stderr,
            )
            return int(ExitCode.BAD_INPUT)
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.plugins = [*args.global_plugins, *getattr(args, "plugins", [])]
    try:
        _no_nul_bytes(args)
        return int(COMMANDS[args.command](args))
    except DltkError as exc:
        if exc.exit_code != ExitCode.BAD_INPUT or os.environ.get("RANK", "0") == "0":  # torchrun: rank 0 says it
            for line in map(one_line, exc.problems):
                print(line, file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("dltk: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except OSError as exc:  # a file system refusal outside a run's training (which reports its own)
        where = exc.filename if exc.filename is not None else "dltk"
        what = exc.strerror or str(exc)
        if exc.errno == errno.ENOSPC:
            what = f"disk full ({what}); free some space and try again"
        print(one_line(f"{where}: {what}"), file=sys.stderr)
        return int(ExitCode.BAD_INPUT)


def _no_nul_bytes(args: argparse.Namespace) -> None:
    """No argument may hold a NUL byte: no path can, and Python raises deep inside on one."""
    paths = [v for v in vars(args).values() if isinstance(v, Path)]
    if args.command == "run" and args.args and "=" not in args.args[0]:
        paths.append(args.args[0])  # the recipe file (overrides are checked with their key)
    for path in paths:
        if "\x00" in str(path):
            raise DltkError(f"{path}: a path may not contain a NUL byte")


def console_main() -> None:  # pragma: no cover - the console script
    sys.exit(main())
