"""``dltk``: the command line. User errors print one line per problem and exit 2, no traceback.

This module is the entry point (:func:`main`) and dispatches each command to the function that runs
it: the parser is in :mod:`dltoolkit._cli_args`, ``run`` in :mod:`dltoolkit._launch`, ``list`` and
``plugins`` in :mod:`dltoolkit._listing`; the other commands' work is in their own modules
(``_generate``, ``_predict``, ``_evaluate``, ``_compare``, ``_new_plugin``).
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from dltoolkit._cli_args import build_parser, host_and_registry
from dltoolkit._compat import component_problems
from dltoolkit._config import RecipeFile
from dltoolkit._errors import DltkError, ExitCode
from dltoolkit._launch import run_command
from dltoolkit._listing import list_command, plugins_command
from dltoolkit._manager import make_plugin_host
from dltoolkit._paths import one_line
from dltoolkit._plugin_options import PLUGIN_OPTIONS, command_and_plugins, given_options

__all__ = ["COMMANDS", "build_parser", "console_main", "main"]


def check_command(args: argparse.Namespace) -> int:
    """``dltk check RECIPE [KEY=VALUE ...]``: the recipe file validated, each component's own check, nothing built."""
    _host, registry = host_and_registry(args)
    recipe_file = RecipeFile.from_toml(args.recipe, registry, args.overrides)
    from dltoolkit._limits import check_device

    check_device(recipe_file)  # what dltk run would refuse at once
    problems = component_problems(recipe_file, stage="check", registry=registry)  # each component's own check
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


def generate_command(args: argparse.Namespace) -> int:
    """``dltk generate SOURCE --out DIR``: samples (or outputs from ``--input``) of a trained model."""
    from dltoolkit._generate import generate_images

    _host, registry = host_and_registry(args)
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


def export_command(args: argparse.Namespace) -> int:
    """``dltk export SOURCE --out FILE.safetensors``: inference weights and the metadata that rebuilds them."""
    from dltoolkit._generate import export_trained

    _host, registry = host_and_registry(args)
    source = export_trained(registry, args.run_dir, args.out, force=args.force)
    print(f"dltk: exported {source} to {args.out}")
    return ExitCode.OK


def predict_command(args: argparse.Namespace) -> int:
    """``dltk predict SOURCE --input PATH``: a trained model's predictions, CSV rows or files."""
    from dltoolkit._predict import predict_rows

    _host, registry = host_and_registry(args)
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


def eval_command(args: argparse.Namespace) -> int:
    """``dltk eval``: score a trained model, or two folders of images."""
    from dltoolkit._evaluate import evaluate_command

    _host, registry = host_and_registry(args)
    return evaluate_command(registry, args)


def compare_command(args: argparse.Namespace) -> int:
    """``dltk compare RUN ...``: the runs side by side, as Markdown tables and a page."""
    from dltoolkit._compare import compare, directions_from

    _host, registry = host_and_registry(args)
    text, page = compare(args.runs, args.out, directions_from(registry))
    print(text)
    print(f"\ndltk: wrote {page} (open it in a browser)")
    return ExitCode.OK


def new_command(args: argparse.Namespace) -> int:
    """``dltk new plugin NAME``: a plugin distribution written from a template."""
    from dltoolkit._new_plugin import new_plugin

    folder = new_plugin(args.name, kind=args.kind, out=args.out)
    print(
        f"dltk: wrote {folder}/; next: install it where dltk runs (pip install -e {folder}, or from a "
        f"dltoolkit checkout: uv pip install -e {folder}) and test it (pytest {folder})"
    )
    return ExitCode.OK


COMMANDS = {
    "run": run_command,
    "check": check_command,
    "list": list_command,
    "plugins": plugins_command,
    "generate": generate_command,
    "export": export_command,
    "predict": predict_command,
    "eval": eval_command,
    "compare": compare_command,
    "new": new_command,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``dltk``; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command, plugin_modules = command_and_plugins(argv)
    # plugins are loaded to parse the commands whose options they extend, and for a command that is
    # not built in (a plugin's, such as sweep) or a bare `dltk --help`, which lists plugins' commands
    with_plugins = command in ("generate", "predict", "eval") or command not in COMMANDS
    host = make_plugin_host(plugin_modules) if with_plugins else None
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
        if args.command not in COMMANDS:  # a plugin's command
            from dltoolkit._plugin_commands import run_plugin_command

            return run_plugin_command(args, lambda a: host_and_registry(a)[1])
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
