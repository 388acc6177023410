"""``dltk``'s arguments: the parser of every command, and the plugins a parsed command line loads."""

from __future__ import annotations

import argparse
from pathlib import Path

from dltoolkit._component import KINDS
from dltoolkit._manager import PluginHost, make_plugin_host
from dltoolkit._plugin_options import PLUGIN_OPTIONS, add_plugin_options
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
    options its plugins add (the ``dltk_add_options`` hook), and the commands its plugins add are
    there too (the ``dltk_register_commands`` hook)."""
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
    if host is not None:  # commands of plugins (dltk_register_commands), such as dltk sweep
        from dltoolkit._plugin_commands import add_plugin_commands

        add_plugin_commands(host, sub, set(sub.choices))
    return parser


def _add_plugin_options(host: PluginHost | None, command: str, parser: argparse.ArgumentParser) -> None:
    """The options plugins add to ``command``, remembered as ``{dest: flag}`` on the parsed arguments."""
    parser.set_defaults(**{PLUGIN_OPTIONS: add_plugin_options(host, command, parser) if host is not None else {}})


def host_and_registry(args: argparse.Namespace) -> tuple[PluginHost, Registry]:
    """The plugin host of a parsed command line (``main`` loaded it already for the commands whose
    parser takes plugins' options, else its ``-p`` modules are loaded now) and its registry."""
    host = getattr(args, "host", None) or make_plugin_host(args.plugins)
    return host, Registry(host)
