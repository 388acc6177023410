"""``dltk compare``: several run directories side by side, from what every run writes.

It reads only generic records: ``recipe.toml`` (recipe, model, dataset, epochs), ``metrics.jsonl``
(``step``/``epoch`` scalars and ``eval`` scores with their protocol), ``run.json`` (parameters and
wall time) and the newest ``samples/grid_*.png``. It knows no model family: which way a score is
better comes from the components' declared :class:`~dltoolkit.Scalar`\\ s, looked up in the registry.

Scores of one name whose protocols differ (number of samples, reference, feature extractor,
resolution, ...) are kept in separate columns, and the page says which protocol keys differ.
"""

from __future__ import annotations

import html
import json
import math
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dltoolkit._config import RECIPE_NAME, read_toml
from dltoolkit._errors import DltkError
from dltoolkit._rundir import METRICS_NAME, SAMPLES, SUMMARY_NAME

PAGE_NAME = "compare.html"
_NOT_SCALARS = ("kind", "epoch", "iteration", "protocol")


def _volatile(score: str, key: str) -> bool:
    """Protocol entries that say how long or from where, not what was measured (and the score's
    own companion values such as ``isc_std``): ignored when protocols are compared."""
    return key.endswith("seconds") or key.endswith("cached") or key == "seed" or key.startswith(f"{score}_")


def protocol_key(score: str, protocol: Any) -> str:
    """A canonical text of the parts of a score's protocol that decide what it measures."""
    if not isinstance(protocol, Mapping):
        return "{}"
    kept = {k: v for k, v in protocol.items() if not _volatile(score, str(k))}
    return json.dumps(kept, sort_keys=True, default=str)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(_flatten(inner, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): value}


def protocol_difference(a: str, b: str) -> list[str]:
    """``key (x vs y)`` for each protocol entry in which two protocol keys differ."""
    left, right = _flatten(json.loads(a)), _flatten(json.loads(b))
    missing = "(none)"
    return [
        f"{key} ({json.dumps(left.get(key, missing))} vs {json.dumps(right.get(key, missing))})"
        for key in sorted(set(left) | set(right))
        if left.get(key, missing) != right.get(key, missing)
    ]


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
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # name -> (iteration, value)
    evals: dict[tuple[str, str], list[Evaluation]] = field(default_factory=dict)  # (name, protocol) -> ...
    grid: Path | None = None
    better: dict[str, str] = field(default_factory=dict)  # score name -> lower/higher/none


def _name_of(table: Any) -> str:
    return str(table.get("name", "?")) if isinstance(table, Mapping) else "-"


def read_run(path: Path, directions: Callable[[dict[str, Any]], dict[str, str]] | None = None) -> RunRecord:
    """Read one run directory; a folder that is not one is a :class:`DltkError` (one line)."""
    if not path.exists():
        raise DltkError(f"{path}: no such run directory")
    if not path.is_dir():
        raise DltkError(f"{path}: not a run directory (a file; give the folder dltk run wrote)")
    if not (path / RECIPE_NAME).is_file():
        raise DltkError(f"{path}: not a run directory (no {RECIPE_NAME})")
    if not (path / METRICS_NAME).is_file():
        raise DltkError(f"{path}: no {METRICS_NAME} (the run logged nothing yet): nothing to compare")
    recipe = read_toml(path / RECIPE_NAME)
    recipe_table = recipe.get("recipe", {})
    planned = recipe_table.get("epochs") if isinstance(recipe_table, Mapping) else None
    records = []
    try:
        lines = (path / METRICS_NAME).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DltkError(f"{path / METRICS_NAME}: cannot read: {exc}") from None
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:  # a line cut short by a killed run
            continue
        if isinstance(record, dict):
            records.append(record)
    summary: dict[str, Any] = {}
    if (path / SUMMARY_NAME).is_file():
        try:
            loaded = json.loads((path / SUMMARY_NAME).read_text(encoding="utf-8"))
            summary = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            summary = {}
    epochs = [r for r in records if r.get("kind") == "epoch"]
    steps = [r for r in records if r.get("kind") == "step"] or epochs
    epoch_length = None
    if epochs and int(epochs[0].get("epoch", 0)) > 0:
        epoch_length = max(1, int(epochs[0]["iteration"]) // int(epochs[0]["epoch"]))
    run = RunRecord(
        path=path,
        label=path.resolve().name,
        recipe=_name_of(recipe_table),
        model=_name_of(recipe.get("model")),
        dataset=_name_of(recipe.get("dataset")),
        epochs_planned=planned if isinstance(planned, int) else None,
        epochs_done=max((int(r.get("epoch", 0)) for r in epochs), default=0),
        epoch_length=epoch_length,
        parameters=summary.get("parameters") if isinstance(summary.get("parameters"), dict) else None,
        trained_modules=list(summary.get("trained_modules") or []),
        seconds=float(summary["train_seconds"]) if isinstance(summary.get("train_seconds"), (int, float)) else None,
    )
    for record in steps:
        for name, value in record.items():
            if name not in _NOT_SCALARS and _is_number(value):
                run.curves.setdefault(name, []).append((int(record.get("iteration", 0)), float(value)))
    for record in records:
        if record.get("kind") != "eval":
            continue
        protocols = record.get("protocol") if isinstance(record.get("protocol"), Mapping) else {}
        for name, value in record.items():
            if name not in _NOT_SCALARS and _is_number(value):
                key = (name, protocol_key(name, protocols.get(name)))
                run.evals.setdefault(key, []).append(
                    Evaluation(int(record.get("epoch", 0)), int(record.get("iteration", 0)), float(value))
                )
    grids = sorted((path / SAMPLES).glob("grid_*.png")) if (path / SAMPLES).is_dir() else []
    run.grid = grids[-1] if grids else None
    run.better = directions(recipe) if directions is not None else {}
    return run


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def directions_from(registry: Any) -> Callable[[dict[str, Any]], dict[str, str]]:
    """Which way each declared score of a recipe file is better, from its components' ``reports``."""

    def directions(recipe: dict[str, Any]) -> dict[str, str]:
        found: dict[str, str] = {}
        tables = [("recipe", recipe.get("recipe"))]
        tables += [("metric", t) for t in recipe.get("metrics", []) if isinstance(recipe.get("metrics"), list)]
        for kind, table in tables:
            name = table.get("name") if isinstance(table, Mapping) else None
            component = registry.find(kind, name) if isinstance(name, str) else None
            for scalar in getattr(component, "reports", ()):
                found.setdefault(scalar.name, scalar.better)
        return found

    return directions


# -- the comparison ------------------------------------------------------------------------


@dataclass
class ScoreColumn:
    """One column of the score table: a score name under one protocol."""

    name: str
    protocol: str
    tag: str  # "" when the name has one protocol, else "[1]", "[2]", ...


def score_columns(runs: Sequence[RunRecord]) -> list[ScoreColumn]:
    by_name: dict[str, list[str]] = {}
    for run in runs:
        for name, protocol in run.evals:
            if protocol not in by_name.setdefault(name, []):
                by_name[name].append(protocol)
    columns = []
    for name in sorted(by_name):
        protocols = by_name[name]
        for i, protocol in enumerate(protocols, 1):
            columns.append(ScoreColumn(name, protocol, f"[{i}]" if len(protocols) > 1 else ""))
    return columns


def protocol_notes(columns: Sequence[ScoreColumn]) -> list[str]:
    """Why scores of one name sit in separate columns: the protocol keys that differ."""
    notes = []
    names = sorted({c.name for c in columns if c.tag})
    for name in names:
        group = [c for c in columns if c.name == name]
        first = group[0]
        for other in group[1:]:
            diff = "; ".join(protocol_difference(first.protocol, other.protocol))
            notes.append(
                f"{name} {first.tag} and {name} {other.tag} were measured under different protocols, so they "
                f"are not one column and their values are not comparable: {diff}"
            )
    return notes


def best_and_last(run: RunRecord, column: ScoreColumn) -> tuple[Evaluation | None, Evaluation | None]:
    values = [e for e in run.evals.get((column.name, column.protocol), []) if math.isfinite(e.value)]
    if not values:
        return None, None
    better = run.better.get(column.name)
    best = None
    if better == "lower":
        best = min(values, key=lambda e: e.value)
    elif better == "higher":
        best = max(values, key=lambda e: e.value)
    return best, values[-1]


def _number(value: float) -> str:
    return f"{value:.4g}"


def count_text(n: int) -> str:
    """A parameter count as the table shows it: 7328, 271.4k, 1.25M."""
    if n >= 1_000_000:
        return f"{n / 1e6:.2f}M"
    if n >= 10_000:
        return f"{n / 1e3:.1f}k"
    return str(n)


def parameters_text(run: RunRecord) -> str:
    if not run.parameters:
        return "-"
    trained = [m for m in run.trained_modules if m in run.parameters]
    parts = [f"{name} {count_text(int(n))}" for name, n in run.parameters.items()]
    total = sum(int(n) for n in run.parameters.values())
    text = ", ".join(parts) if len(parts) > 1 else count_text(total)
    if len(parts) > 1 and trained and len(trained) < len(parts):
        text += f" (kept for inference: {', '.join(trained)})"
    return text


def seconds_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def epochs_text(run: RunRecord) -> str:
    return f"{run.epochs_done}/{run.epochs_planned}" if run.epochs_planned is not None else str(run.epochs_done)


def score_text(run: RunRecord, column: ScoreColumn) -> str:
    best, last = best_and_last(run, column)
    if last is None:
        return "-"
    shown_best = f"{_number(best.value)} (epoch {best.epoch})" if best is not None else "n/a"
    return f"{shown_best} / {_number(last.value)}"


def info_rows(runs: Sequence[RunRecord]) -> tuple[list[str], list[list[str]]]:
    header = ["run", "recipe", "model", "dataset", "epochs", "parameters", "wall time"]
    rows = [
        [
            run.label,
            run.recipe,
            run.model,
            run.dataset,
            epochs_text(run),
            parameters_text(run),
            seconds_text(run.seconds),
        ]
        for run in runs
    ]
    return header, rows


def score_rows(runs: Sequence[RunRecord], columns: Sequence[ScoreColumn]) -> tuple[list[str], list[list[str]]]:
    header = ["run", *[f"{c.name}{(' ' + c.tag) if c.tag else ''} best / last" for c in columns]]
    return header, [[run.label, *[score_text(run, c) for c in columns]] for run in runs]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *(line(r) for r in rows)])


def shared_scalars(runs: Sequence[RunRecord]) -> list[str]:
    """Scalars logged by at least two runs (by every run when only one is given)."""
    need = min(2, len(runs))
    counts: dict[str, int] = {}
    for run in runs:
        for name in run.curves:
            counts[name] = counts.get(name, 0) + 1
    return sorted(n for n, c in counts.items() if c >= need)


def _x(run: RunRecord, iteration: int, by_epoch: bool) -> float:
    return iteration / run.epoch_length if by_epoch and run.epoch_length else float(iteration)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def draw_figures(runs: Sequence[RunRecord], columns: Sequence[ScoreColumn], out: Path) -> list[tuple[str, str]]:
    """One PNG per shared scalar and per score column two runs share: ``[(title, file name)]``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_epoch = all(run.epoch_length for run in runs)
    unit = "epoch" if by_epoch else "iteration"
    figures: list[tuple[str, str]] = []

    def save(fig: Any, file_name: str, title: str) -> None:
        fig.tight_layout()
        tmp = out / f".tmp-{file_name}"
        fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)
        tmp.replace(out / file_name)
        figures.append((title, file_name))

    for name in shared_scalars(runs):
        fig, ax = plt.subplots(figsize=(7, 3.2))
        for run in runs:
            points = run.curves.get(name)
            if points:
                xs = [_x(run, it, by_epoch) for it, _ in points]
                ax.plot(xs, [v for _, v in points], label=run.label, linewidth=1, marker="." if len(xs) < 20 else None)
        ax.set_xlabel(unit)
        ax.set_ylabel(name)
        ax.set_title(f"{name} (training)")
        ax.legend(fontsize="small")
        save(fig, f"scalar_{_safe(name)}.png", f"{name} (training)")
    need = min(2, len(runs))
    for column in columns:
        having = [run for run in runs if (column.name, column.protocol) in run.evals]
        if len(having) < need:
            continue
        fig, ax = plt.subplots(figsize=(7, 3.2))
        for run in having:
            evals = run.evals[(column.name, column.protocol)]
            xs = [e.epoch if by_epoch else e.iteration for e in evals]
            ax.plot(xs, [e.value for e in evals], label=run.label, linewidth=1, marker="o")
        title = f"{column.name}{(' ' + column.tag) if column.tag else ''} (evaluation)"
        ax.set_xlabel(unit)
        ax.set_ylabel(column.name)
        ax.set_title(title)
        ax.legend(fontsize="small")
        save(fig, f"score_{_safe(column.name)}{_safe(column.tag)}.png", title)
    return figures


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }
th { background: #f3f3f3; }
.figures img { max-width: 48%; margin: 0.3em; border: 1px solid #eee; }
.grids { display: flex; flex-wrap: wrap; gap: 1.5em; }
.grids figure { margin: 0; }
.grids img { image-rendering: pixelated; width: 320px; border: 1px solid #eee; }
.note { background: #fff6dd; padding: 0.5em 0.8em; border-left: 4px solid #e0b400; }
"""


def write_page(
    runs: Sequence[RunRecord],
    columns: Sequence[ScoreColumn],
    notes: Sequence[str],
    figures: Sequence[tuple[str, str]],
    grids: Sequence[tuple[RunRecord, str | None]],
    out: Path,
) -> Path:
    info_header, info = info_rows(runs)
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>dltk compare</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>dltk compare: {len(runs)} run{'s' if len(runs) != 1 else ''}</h1>",
        "<ul>" + "".join(f"<li>{html.escape(r.label)}: <code>{html.escape(str(r.path))}</code></li>" for r in runs),
        "</ul><h2>Runs</h2>",
        _html_table(info_header, info),
        "<p>Wall time: training time from <code>run.json</code>, summed over resumes. Parameters: per "
        "module the run checkpointed.</p>",
        "<h2>Scores</h2>",
    ]
    if columns:
        score_header, scores = score_rows(runs, columns)
        parts.append(_html_table(score_header, scores))
        parts.append(
            "<p>Best (epoch) / last evaluation of each score; best follows the direction the metric "
            "declares (n/a: no direction).</p>"
        )
    else:
        parts.append("<p>No run has evaluation records (add <code>[[metrics]]</code> to a recipe file).</p>")
    for note in notes:
        parts.append(f"<p class='note'>{html.escape(note)}</p>")
    parts.append("<h2>Scalars over training</h2>")
    if figures:
        parts.append(
            "<div class='figures'>"
            + "".join(
                f"<img src='{html.escape(f)}' alt='{html.escape(t)}' title='{html.escape(t)}'>" for t, f in figures
            )
            + "</div>"
        )
    else:
        parts.append("<p>These runs share no scalar; each run's own are in its <code>samples/losses.png</code>.</p>")
    only = [(run.label, sorted(set(run.curves) - set(shared_scalars(runs)))) for run in runs]
    only = [(label, names) for label, names in only if names]
    if only and len(runs) > 1:
        parts.append(
            "<p>Logged by one run only: "
            + "; ".join(f"{html.escape(label)}: {html.escape(', '.join(names))}" for label, names in only)
            + ".</p>"
        )
    parts.append("<h2>Last sample grids</h2><div class='grids'>")
    for run, file_name in grids:
        shown = f"<img src='{html.escape(file_name)}' alt='{html.escape(run.label)}'>" if file_name else "(no grid)"
        parts.append(f"<figure>{shown}<figcaption>{html.escape(run.label)}</figcaption></figure>")
    parts.append(f"</div><p><small>dltk compare, {time.strftime('%Y-%m-%d %H:%M:%S')}</small></p></body></html>")
    page = out / PAGE_NAME
    tmp = out / f".tmp-{PAGE_NAME}"
    tmp.write_text("\n".join(parts), encoding="utf-8")
    tmp.replace(page)
    return page


def check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise DltkError(f"--out: '{out}' is a file; give a folder for compare.html and its figures")
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise DltkError(f"--out: cannot create '{out}' ({probe} is a file)")


def compare(
    paths: Sequence[Path],
    out: Path | None,
    directions: Callable[[dict[str, Any]], dict[str, str]] | None = None,
) -> tuple[str, Path]:
    """Read ``paths``, write ``compare.html`` and its PNGs into ``out``; return the Markdown and the page.

    All bad input is reported at once (one line each) before anything is written.
    """
    problems: list[str] = []
    runs: list[RunRecord] = []
    seen: set[Path] = set()
    for path in paths:
        resolved = path.resolve()
        if resolved in seen:
            problems.append(f"{path}: given twice")
            continue
        seen.add(resolved)
        try:
            runs.append(read_run(path, directions))
        except DltkError as exc:
            problems.extend(exc.problems)
    if out is None:
        first = paths[0].resolve().parent if paths else Path.cwd()
        out = first / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        check_out(out)
    except DltkError as exc:
        problems.extend(exc.problems)
    if problems:
        raise DltkError(problems)
    labels = [run.label for run in runs]
    for run in runs:  # two runs of one name (a/run, b/run): tell them apart by their parent
        if labels.count(run.label) > 1:
            run.label = f"{run.path.resolve().parent.name}/{run.label}"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DltkError(f"--out: cannot create '{out}': {exc.strerror}") from None
    columns = score_columns(runs)
    notes = protocol_notes(columns)
    figures = draw_figures(runs, columns, out)
    grids: list[tuple[RunRecord, str | None]] = []
    for i, run in enumerate(runs, 1):
        if run.grid is None:
            grids.append((run, None))
            continue
        name = f"grid_{i}_{_safe(run.label)}.png"
        tmp = out / f".tmp-{name}"
        shutil.copyfile(run.grid, tmp)
        tmp.replace(out / name)
        grids.append((run, name))
    page = write_page(runs, columns, notes, figures, grids, out)
    text = [markdown_table(*info_rows(runs))]
    if columns:
        text += ["", markdown_table(*score_rows(runs, columns))]
    text += [f"\n{note}" for note in notes]
    return "\n".join(text), page
