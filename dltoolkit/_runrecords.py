"""Reading run directories for ``dltk compare``, as untrusted input.

A run directory may come from anyone, or be what a crash left: ``metrics.jsonl`` lines that do not
parse, hold impossible values (an epoch that is a string, ``null`` or ``1e400``, a line nested a
thousand levels deep) or ``run.json`` entries of the wrong type are skipped, each with one warning
naming the file and the line, and the comparison is made from the rest. Nothing is read through a
symbolic link that leads out of the run directory (a sample grid linked to ``~/.ssh/id_rsa`` would
otherwise be copied into a page the user may publish).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dltoolkit._config import read_toml
from dltoolkit._errors import DltkError
from dltoolkit._names import EVAL, TRAIN
from dltoolkit._rundir import METRICS_NAME, RECIPE_NAME, SAMPLES, SUMMARY_NAME

NOT_SCALARS = ("kind", "epoch", "iteration", "protocol")
MAX_DEPTH = 16
"""Deepest nesting of a metrics.jsonl record or run.json (dltk writes 3 levels)."""
MAX_COUNTER = 1 << 62
"""Largest epoch or iteration number believed."""


def printable(text: object) -> str:
    """``text`` with control and other unprintable characters shown as escapes (``\\x1b``), so that a
    name someone chose cannot drive the terminal it is printed on."""
    shown = str(text)
    if shown.isprintable():
        return shown
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in shown)


def protocol_key(score: str, protocol: Any) -> str:
    """A canonical text of the parts of a score's protocol that decide what it measures."""
    if not isinstance(protocol, Mapping):
        return "{}"
    kept = {k: v for k, v in protocol.items() if not _volatile(score, str(k))}
    return json.dumps(kept, sort_keys=True, default=str)


def _volatile(score: str, key: str) -> bool:
    """Protocol entries that say how long or from where, not what was measured (and the score's
    own companion values such as ``isc_std``): ignored when protocols are compared."""
    return key.endswith("seconds") or key.endswith("cached") or key == "seed" or key.startswith(f"{score}_")


@dataclass
class Evaluation:
    epoch: int
    iteration: int
    value: float


@dataclass
class RunRecord:
    """What ``dltk compare`` read from one run directory."""

    path: Path
    label: str
    recipe: str
    model: str
    dataset: str
    epochs_planned: int | None
    epochs_done: int
    epoch_length: int | None
    parameters: dict[str, int] | None
    trained_modules: list[str]
    seconds: float | None
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # train/<name> -> (iteration, value)
    evals: dict[tuple[str, str], list[Evaluation]] = field(default_factory=dict)  # (eval/<name>, protocol) -> ...
    grid: Path | None = None
    better: dict[str, str] = field(default_factory=dict)  # namespaced score name -> lower/higher/none


def depth(value: Any, level: int = 0) -> int:
    """How deeply ``value`` nests dicts and lists (stops counting past :data:`MAX_DEPTH`)."""
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((depth(v, level + 1) for v in value), default=level + 1)
    return level


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def finite(value: Any) -> float | None:
    """``value`` as a finite float, or None (not a number, infinite, NaN, or too large for a float)."""
    if not is_number(value):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def counter(record: Mapping[str, Any], key: str) -> int:
    """``record[key]`` (an epoch or iteration; 0 when absent) or a ValueError saying what is wrong."""
    value = record.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_COUNTER:
        raise ValueError(f"'{key}' is {printable(json.dumps(value)[:40])}, not a count")
    return value


def inside(path: Path, folder: Path) -> bool:
    """Whether ``path``, links resolved, lies inside ``folder`` (links resolved)."""
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # a link loop
        return False


def check_metrics_log(run_dir: Path) -> None:
    """Refuse to resume a run whose ``metrics.jsonl`` is not a file of UTF-8 text (a folder, a file
    garbled on disk): resuming rewrites it, so it is said in one line before anything is written."""
    path = Path(run_dir) / METRICS_NAME
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_file():
        raise DltkError(f"{path}: not a file (the run's log); move it away to resume the run")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DltkError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DltkError(
            f"{path}: line {line} is not UTF-8 text (byte {exc.start}); remove or repair that line to resume the run"
        ) from None


def _name_of(table: Any) -> str:
    return printable(table.get("name", "?")) if isinstance(table, Mapping) else "-"


def _records(path: Path, warn: Callable[[str], None]) -> list[dict[str, Any]]:
    """The usable records of ``metrics.jsonl``; each skipped line is one warning."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DltkError(f"{printable(path)}: cannot read: {printable(exc)}") from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except RecursionError:
            warn(f"{printable(path)}: line {number}: skipped: nested too deeply")
            continue
        except ValueError:
            if number < len(lines):  # the last line may be one a killed run cut short: said nothing of it
                warn(f"{printable(path)}: line {number}: skipped: not JSON")
            continue
        problem = _problem_with(record)
        if problem is not None:
            warn(f"{printable(path)}: line {number}: skipped: {problem}")
            continue
        records.append(record)
    return records


def _problem_with(record: Any) -> str | None:
    if not isinstance(record, dict):
        return "not a JSON object"
    if depth(record) > MAX_DEPTH:
        return f"nested more than {MAX_DEPTH} levels deep"
    try:
        counter(record, "epoch")
        counter(record, "iteration")
    except ValueError as exc:
        return str(exc)
    return None


def _summary(path: Path, warn: Callable[[str], None]) -> dict[str, Any]:
    """``run.json``, its entries of the wrong type left out (one warning each)."""
    if not path.is_file():
        return {}
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        warn(f"{printable(path)}: skipped: nested too deeply")
        return {}
    except (OSError, ValueError) as exc:
        warn(f"{printable(path)}: skipped: {printable(exc)}")
        return {}
    if not isinstance(loaded, dict) or depth(loaded) > MAX_DEPTH:
        warn(f"{printable(path)}: skipped: not a JSON object of at most {MAX_DEPTH} levels")
        return {}
    summary: dict[str, Any] = {}
    parameters = loaded.get("parameters")
    if parameters is not None:
        if isinstance(parameters, dict) and all(
            isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_COUNTER for n in parameters.values()
        ):
            summary["parameters"] = parameters
        else:
            warn(f"{printable(path)}: parameters: skipped: not a table of parameter counts")
    modules = loaded.get("trained_modules")
    if modules is not None:
        if isinstance(modules, list) and all(isinstance(m, str) for m in modules):
            summary["trained_modules"] = modules
        else:
            warn(f"{printable(path)}: trained_modules: skipped: not a list of module names")
    seconds = loaded.get("train_seconds")
    if seconds is not None:
        if finite(seconds) is not None and seconds >= 0:
            summary["train_seconds"] = float(seconds)
        else:
            warn(f"{printable(path)}: train_seconds: skipped: {printable(json.dumps(seconds)[:40])} is not a duration")
    return summary


def read_run(
    path: Path,
    directions: Directions | Callable[[dict[str, Any]], dict[str, str]] | None = None,
    warn: Callable[[str], None] | None = None,
) -> RunRecord:
    """Read one run directory; a folder that is not one is a :class:`DltkError` (one line). Records
    that do not parse or hold impossible values are skipped, each passed to ``warn`` in one line."""
    warn = warn or (lambda _line: None)
    shown = printable(path)
    if not path.exists():
        raise DltkError(f"{shown}: no such run directory")
    if not path.is_dir():
        raise DltkError(f"{shown}: not a run directory (a file; give the folder dltk run wrote)")
    for name in (RECIPE_NAME, METRICS_NAME):
        if (path / name).is_symlink() and not inside(path / name, path):
            raise DltkError(f"{shown}: {name} is a link out of the run directory; not read")
    if not (path / RECIPE_NAME).is_file():
        raise DltkError(f"{shown}: not a run directory (no {RECIPE_NAME})")
    if not (path / METRICS_NAME).is_file():
        raise DltkError(f"{shown}: no {METRICS_NAME} (the run logged nothing yet): nothing to compare")
    recipe = read_toml(path / RECIPE_NAME)
    recipe_table = recipe.get("recipe", {})
    planned = recipe_table.get("epochs") if isinstance(recipe_table, Mapping) else None
    records = _records(path / METRICS_NAME, warn)
    summary_path = path / SUMMARY_NAME
    if summary_path.is_symlink() and not inside(summary_path, path):
        warn(f"{printable(summary_path)}: skipped: a link out of the run directory")
        summary: dict[str, Any] = {}
    else:
        summary = _summary(summary_path, warn)
    epochs = [r for r in records if r.get("kind") == "epoch"]
    steps = [r for r in records if r.get("kind") == "step"] or epochs
    epoch_length = None
    if epochs and counter(epochs[0], "epoch") > 0:
        epoch_length = max(1, counter(epochs[0], "iteration") // counter(epochs[0], "epoch"))
    run = RunRecord(
        path=path,
        label=path.resolve().name,
        recipe=_name_of(recipe_table),
        model=_name_of(recipe.get("model")),
        dataset=_name_of(recipe.get("dataset")),
        epochs_planned=planned if isinstance(planned, int) and not isinstance(planned, bool) else None,
        epochs_done=max((counter(r, "epoch") for r in epochs), default=0),
        epoch_length=epoch_length,
        parameters=summary.get("parameters"),
        trained_modules=list(summary.get("trained_modules", [])),
        seconds=summary.get("train_seconds"),
    )
    renames = directions.renames(recipe) if hasattr(directions, "renames") else {}
    for record in steps:  # training scalars: train/<name>
        for name, value in record.items():
            number = finite(value)
            if name not in NOT_SCALARS and number is not None:
                shown = renames.get(f"train/{name}", f"train/{name}")
                run.curves.setdefault(shown, []).append((counter(record, "iteration"), number))
    for record in records:
        if record.get("kind") != "eval":
            continue
        protocols = record.get("protocol") if isinstance(record.get("protocol"), Mapping) else {}
        for name, value in record.items():
            if name not in NOT_SCALARS and is_number(value):
                number = finite(value)
                key = (renames.get(f"eval/{name}", f"eval/{name}"), protocol_key(name, protocols.get(name)))
                run.evals.setdefault(key, []).append(
                    Evaluation(
                        counter(record, "epoch"), counter(record, "iteration"), math.nan if number is None else number
                    )
                )
    run.grid = _last_grid(path, warn)
    run.better = directions(recipe) if directions is not None else {}
    return run


def _last_grid(path: Path, warn: Callable[[str], None]) -> Path | None:
    """The newest ``samples/grid_*.png`` that is a file inside the run directory."""
    samples = path / SAMPLES
    if not samples.is_dir() or not inside(samples, path):
        return None
    for grid in sorted(samples.glob("grid_*.png"), reverse=True):
        if not inside(grid, path):
            warn(f"{printable(grid)}: skipped: a link out of the run directory")
            continue
        if grid.is_file():
            return grid
    return None


class Directions:
    """Which way each declared score of a recipe file is better, from its components' ``reports``,
    by namespaced name (the recipe's scalars ``train/<name>``, its metrics' ``eval/<name>``); and
    :meth:`renames`, the former names of those scores (``formerly``), so that a run written before a
    rename lines up with a newer one."""

    def __init__(self, registry: Any):
        self.registry = registry

    def _scalars(self, recipe: dict[str, Any]) -> list[tuple[str, Any, tuple[str, ...]]]:
        """``(namespace, scalar, its former names)`` of a recipe file's recipe and metrics."""
        tables = [("recipe", TRAIN, recipe.get("recipe"))]
        metrics = recipe.get("metrics")
        tables += [("metric", EVAL, t) for t in metrics] if isinstance(metrics, list) else []
        found = []
        for kind, space, table in tables:
            name = table.get("name") if isinstance(table, Mapping) else None
            component = self.registry.find(kind, name) if isinstance(name, str) else None
            reports = getattr(component, "reports", ())
            renamed = (name,) if component is not None and name != component.name and len(reports) == 1 else ()
            found += [(space, scalar, (*scalar.formerly, *renamed)) for scalar in reports]
        return found

    def __call__(self, recipe: dict[str, Any]) -> dict[str, str]:
        found: dict[str, str] = {}
        for space, scalar, _ in self._scalars(recipe):
            found.setdefault(f"{space}/{scalar.name}", scalar.better)
        return found

    def renames(self, recipe: dict[str, Any]) -> dict[str, str]:
        """``{old namespaced name: current one}`` (``train/train_loss`` -> ``train/loss``)."""
        return {f"{space}/{old}": f"{space}/{s.name}" for space, s, former in self._scalars(recipe) for old in former}


def directions_from(registry: Any) -> Directions:
    """The :class:`Directions` of recipe files, from ``registry``."""
    return Directions(registry)
