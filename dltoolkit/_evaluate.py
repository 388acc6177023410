"""``dltk eval``: score a finished run (or its export) against its dataset, or two folders of images."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import Tensor

from dltoolkit._config import read_toml, validate_options
from dltoolkit._errors import DltkError, ExitCode
from dltoolkit._plugin_options import PLUGIN_OPTIONS, flag_of, given_options
from dltoolkit._registry import Registry
from dltoolkit._run import cache_dir, dataset_identity, evaluate_metrics
from dltoolkit._rundir import RECIPE_NAME


class DatasetSampler:
    """Images of a dataset served like generated ones (``batches(n, seed=, batch_size=)``)."""

    def __init__(self, dataset: Any):
        self.dataset = dataset

    def batches(self, n: int, *, seed: int, batch_size: int = 256) -> Iterator[Tensor]:
        n = min(n, len(self.dataset))
        for start in range(0, n, batch_size):
            yield torch.stack([self.dataset[i][0] for i in range(start, min(n, start + batch_size))])


class EvalSource:
    """What metric components need from a run, for scoring outside one."""

    def __init__(
        self,
        sampler: Any,
        device: torch.device,
        reference: Any,
        seed: int = 0,
        trained: Any = None,
        registry: Registry | None = None,
        data: Any = None,
    ):
        self.sampler = sampler
        self.data = data  # the DataSpec the model was trained on (metrics check their options against it)
        self.registry = registry  # the components installed, as a run's (metrics may rebuild other runs' models)
        self.trained = trained
        self.device = device
        self.seed = seed
        self.cache_dir = cache_dir()
        self._reference = reference

    def reference(self, split: str) -> tuple[Any, dict[str, Any]]:
        return self._reference(split)


def _folder_dataset(registry: Registry, folder: Path, size: int | None, flag: str) -> Any:
    """A folder of images at one square size (the first real image's shorter side, at most 512)."""
    from dltoolkit._imageio import image_size

    if not folder.is_dir():
        raise DltkError(f"{flag}: '{folder}' is not a folder of images")
    component = registry.get("dataset", "image-folder")
    folder_config = component.config  # the built-in image-folder's options, without importing the plugin
    try:
        if size is None:
            probe = component.build(folder_config(root=str(folder), image_size=8, channels=3, split="all"))
            size = max(4, min(512, min(image_size(probe.files[0], what="dataset.root"))))
        return component.build(folder_config(root=str(folder), image_size=size, channels=3, split="all")), size
    except DltkError as exc:
        raise DltkError(
            line.replace("dataset.root:", f"{flag}:", 1).replace("dataset.max_pixels:", f"{flag}:", 1)
            for line in exc.problems
        ) from None


def _source_for_run(
    registry: Registry, args: argparse.Namespace, device: torch.device, tables: list[tuple[str, dict[str, Any]]]
) -> EvalSource:
    from dltoolkit._generate import load_trained

    trained, meta, _path = load_trained(registry, args.source, device)
    _refuse_unfit_metrics(registry, meta, trained, [name for name, _options in tables])
    try:
        table = json.loads(meta.get("dataset") or "")
        name = table.pop("name")
    except (ValueError, KeyError, AttributeError):
        raise DltkError(f"{args.source}: no dataset recorded with this model; use --real DIR --fake DIR") from None
    component = registry.get("dataset", name)
    options = {k: v for k, v in table.items() if k != "split"}
    config = validate_options(component, options, str(args.source))
    built: dict[str, tuple[Any, dict[str, Any]]] = {}

    def reference(split: str) -> tuple[Any, dict[str, Any]]:
        if split not in built:
            built[split] = (component.build(config, split=split), dataset_identity(name, table, split))
        return built[split]

    from dltoolkit._generate import _data_of

    data = _data_of(meta, Path(args.source))
    seed = int(meta.get("seed", 0) or 0)
    return EvalSource(trained.sampler, device, reference, seed=seed, trained=trained, data=data, registry=registry)


def _metric_tables(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    """``(name, options)`` of each metric: ``--metrics`` (no options), or else the ``[[metrics]]``
    tables of SOURCE's recipe when it is a run directory (with their options)."""
    if args.metrics is not None:
        return [(n.strip(), {}) for n in args.metrics.split(",") if n.strip()]
    recipe = Path(args.source) / RECIPE_NAME if args.source is not None else None
    if recipe is not None and recipe.is_file():
        try:
            tables = read_toml(recipe).get("metrics", [])
            return [
                (t["name"], {k: v for k, v in t.items() if k != "name"})
                for t in tables
                if isinstance(t, dict) and isinstance(t.get("name"), str)
            ]
        except (DltkError, AttributeError, TypeError):
            return []
    return []


def _refuse_unfit_metrics(registry: Registry, meta: dict[str, Any], trained: Any, names: list[str]) -> None:
    """The compatibility rules of ``dltk check`` for a finished run: each metric's needs against the
    run's recipe, model and dataset (one line per metric), and a metric drawing samples from a run
    that draws none refused before it is built (so nothing is downloaded for it)."""
    from types import SimpleNamespace

    from dltoolkit._compat import mismatches

    try:
        dataset = json.loads(meta.get("dataset") or "").get("name")
    except (ValueError, AttributeError):
        dataset = None
    parts = {}
    for kind, name in (("recipe", meta.get("recipe")), ("model", meta.get("model")), ("dataset", dataset)):
        if isinstance(name, str) and registry.problem_with(kind, name) is None:
            parts[kind] = SimpleNamespace(name=name, component=registry.get(kind, name), path=kind)
    problems: list[str] = []
    for name in dict.fromkeys(names):
        component = registry.get("metric", name)
        owner = SimpleNamespace(name=name, component=component, path="--metrics")
        found = [what for _where, what in mismatches(registry, parts, [owner])]
        samples = "sample" in component.needs.get("recipe", ())
        if not found and samples and trained.sampler is None:
            recipe = meta.get("recipe")
            found = [f"the metric '{name}' scores images drawn from noise, and this '{recipe}' run draws none"]
        problems += [f"--metrics: {what}" for what in found]
    if problems:
        raise DltkError(problems)


CORE_FLAGS = {"num_samples": "num-samples", "reference": "reference", "batch_size": "batch-size"}
"""Metric options dltk eval has a flag for (the flag, not --set, gives them); plugins add more."""


def _flagged(args: argparse.Namespace) -> dict[str, str]:
    """``{metric option: flag without its dashes}``: the core's and those plugins added."""
    plugin = {dest: flag_of(dest, getattr(args, PLUGIN_OPTIONS, None)).lstrip("-") for dest in _plugin_dests(args)}
    return {**CORE_FLAGS, **plugin}


def _plugin_dests(args: argparse.Namespace) -> list[str]:
    return list(getattr(args, PLUGIN_OPTIONS, None) or {})


def _untaken_plugin_options(
    registry: Registry, args: argparse.Namespace, names: list[str], given: dict[str, Any]
) -> list[str]:
    """One problem per plugin option given that none of the named metrics has (unknown metrics
    are reported on their own)."""
    if not names or any(registry.problem_with("metric", n) is not None for n in names):
        return []
    known = {f.name for n in names for f in attrs.fields(registry.get("metric", n).config)}
    problems = []
    for dest in given:
        if dest not in known:
            flag = flag_of(dest, getattr(args, PLUGIN_OPTIONS, None))
            whose = f"the metric {names[0]} does not" if len(names) == 1 else f"none of the metrics {', '.join(names)}"
            problems.append(f"{flag}: {whose} take{'s' if len(names) > 1 else ''} it")
    return problems


def _settings(registry: Registry, args: argparse.Namespace, names: list[str]) -> tuple[dict[str, Any], list[str]]:
    """``--set KEY=VALUE`` options: ``(key -> value, problems)``; a key none of the named metrics
    has is a problem."""
    from dltoolkit._suggest import did_you_mean
    from dltoolkit._toml import parse_override

    known: set[str] = set()
    for name in names:
        if registry.problem_with("metric", name) is None:
            known |= {f.name for f in attrs.fields(registry.get("metric", name).config)}
    settings: dict[str, Any] = {}
    problems = []
    for text in getattr(args, "set", None) or []:
        try:
            parts, value = parse_override(text)
        except ValueError:
            problems.append(
                "--set: expected KEY=VALUE, an option of the named metrics (for example classifier=RUN_DIR), "
                f"got {text!r}"
            )
            continue
        key = ".".join(str(p) for p in parts)
        flagged = _flagged(args)
        if key in flagged:
            problems.append(f"--set: {key}: use --{flagged[key]}")
            continue
        if key not in known and names:
            shown = ", ".join(names)
            problems.append(f"--set: {key}: no option of {shown}{did_you_mean(key, sorted(known))}")
            continue
        settings[key] = value
    return settings, problems


def evaluate_command(registry: Registry, args: argparse.Namespace) -> int:
    """Score SOURCE (or --real/--fake folders) with the named metrics; print a table, maybe write JSON."""
    tables = _metric_tables(args)
    names = [name for name, _options in tables]
    problems = [registry.problem_with("metric", n) for n in names]
    problems = [f"--metrics: {p}" for p in problems if p]
    if args.source is not None and not Path(args.source).exists():
        raise DltkError(f"{args.source}: no such run directory or file")  # before asking for --metrics
    not_a_run = (
        args.source is not None and Path(args.source).is_dir() and not (Path(args.source) / RECIPE_NAME).is_file()
    )
    if not_a_run:  # said beside the other problems, instead of asking for --metrics it cannot read
        problems.append(f"{args.source}: not a run directory (no {RECIPE_NAME}; give the folder dltk run wrote)")
    elif not names:
        installed = ", ".join(registry.names("metric")) or "none installed"
        recipe = Path(args.source) / RECIPE_NAME if args.source is not None else None
        said_none = args.metrics is None and recipe is not None and recipe.is_file()
        why = f"{args.source}'s recipe file has no [[metrics]]; " if said_none else ""
        problems.append(f"--metrics: {why}name at least one metric (installed: {installed})")
    settings, set_problems = _settings(registry, args, names)
    problems += set_problems
    if args.json is not None and (args.json.is_dir() or (args.json.exists() and not getattr(args, "force", False))):
        why = "is a folder" if args.json.is_dir() else "exists; pass --force to replace it"
        problems.append(f"--json: '{args.json}' {why}")
    plugin_options = given_options(args)
    problems += _untaken_plugin_options(registry, args, names, plugin_options)
    if args.num_samples is not None and args.num_samples < 2:
        problems.append(f"--num-samples: must be at least 2, got {args.num_samples}")
    folders = args.real is not None or args.fake is not None
    if folders and (args.real is None or args.fake is None or args.source is not None):
        problems.append("dltk eval: give SOURCE, or both --real DIR and --fake DIR")
    if not folders and args.source is None:
        problems.append("dltk eval: give SOURCE (a run directory, checkpoint or export) or --real/--fake")
    if problems:
        raise DltkError(problems)
    from dltoolkit._generate import device_option

    device = device_option(args.device)

    if folders:
        real, size = _folder_dataset(registry, args.real, None, "--real")
        fake, _ = _folder_dataset(registry, args.fake, size, "--fake")
        identity = {"dataset": "image-folder", "root": str(args.real.resolve()), "image_size": size}
        source = EvalSource(
            DatasetSampler(fake), device, lambda split: (real, {**identity, "split": "all"}), registry=registry
        )
        num_samples = len(fake) if args.num_samples is None else min(args.num_samples, len(fake))
    else:
        source = _source_for_run(registry, args, device, tables)
        num_samples = args.num_samples

    metrics = []
    for name, table_options in tables:
        component = registry.get("metric", name)
        known = {f.name for f in attrs.fields(component.config)}
        options = dict(table_options)  # the run's own metric options, then what the command line says
        options.update({k: v for k, v in settings.items() if k in known})
        flags = {"num_samples": num_samples, "reference": args.reference, "batch_size": args.batch_size}
        flags.update(plugin_options)  # options plugins added (dltk_add_options), for the metrics that take them
        options.update({k: v for k, v in flags.items() if v is not None})
        try:
            config = validate_options(component, {k: v for k, v in options.items() if k in known}, "dltk eval")
        except DltkError as exc:  # say how to give a metric option on this command line
            raise DltkError(
                f"{line}; give it with --set {line.split(': ')[-2].rsplit('.', 1)[-1]}=VALUE"
                if line.endswith("missing required key")
                else line
                for line in exc.problems
            ) from None
        try:
            metrics.append(component.build(config, run=source))
        except DltkError as exc:  # "top-k.k: ..." is about what the user typed: --set k=...
            raise DltkError(_as_flags(line, settings, _flagged(args)) for line in exc.problems) from None
    results = evaluate_metrics(source, metrics)

    summaries = {m.name: getattr(m, "summary", None) for m in metrics}
    width = max([8, *(len(name) for name in results)])
    print(f"{'metric':<{width}} {'value':>12}  protocol")
    for name, result in results.items():
        summary = summaries.get(name)
        print(f"{name:<{width}} {result['value']:>12.6g}  {summary(result) if summary else protocol_summary(result)}")
    if args.json is not None:
        from dltoolkit._atomic import atomic_write

        text = json.dumps(results, indent=2, default=str) + "\n"
        try:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(args.json, lambda handle: handle.write(text.encode("utf-8")))
        except OSError as exc:
            raise DltkError(f"--json: cannot write '{args.json}': {exc.strerror or exc}") from None
    return ExitCode.OK


def _as_flags(line: str, settings: dict[str, Any], flagged: dict[str, str]) -> str:
    """A metric's message about ``metric.key`` said about the flag that gave ``key``."""
    where, sep, rest = line.partition(": ")
    key = where.rsplit(".", 1)[-1]
    if not sep or " " in where:
        return line
    if key in settings:
        return f"--set {key}: {rest}"
    if key in flagged:
        return f"--{flagged[key]}: {rest}"
    return line


def protocol_summary(result: dict[str, Any]) -> str:
    """A generic one-line protocol: every plain value recorded beside the score."""
    shown = [f"{k}={v}" for k, v in result.items() if k != "value" and isinstance(v, (str, int, float, bool))]
    return ", ".join(shown)
