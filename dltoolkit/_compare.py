"""``dltk compare``: several run directories side by side, from what every run writes.

It reads only generic records: ``recipe.toml`` (recipe, model, dataset, epochs), ``metrics.jsonl``
(``step``/``epoch`` scalars and ``eval`` scores with their protocol), ``run.json`` (parameters and
wall time) and the newest ``samples/grid_*.png``. It knows no model family: which way a score is
better comes from the components' declared :class:`~dltoolkit.Scalar`\\ s, looked up in the registry.

Scores of one name whose protocols differ (number of samples, reference, feature extractor,
resolution, ...) are kept in separate columns, and the page says which protocol keys differ.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import math
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dltoolkit._errors import DltkError
from dltoolkit._runrecords import (  # noqa: F401  (directions_from: cli imports it from here)
    Directions,
    Evaluation,
    RunRecord,
    directions_from,
    printable,
    read_run,
)

PAGE_NAME = "compare.html"
MAX_FILE_STEM = 80
"""Longest figure file name kept from a scalar or run name (longer ones are cut and given a hash)."""


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
        return "| " + " | ".join(printable(c).replace("|", "\\|") for c in cells) + " |"

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
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "_" for c in name)


class FileNames:
    """Distinct, length-bounded file names for figures: ``prefix_<name>.png`` when the name is safe
    as it is and short, else its safe part cut to :data:`MAX_FILE_STEM` and a hash of the whole
    (``a.b`` and ``a_b`` get two files; a 300-character name gets a short one)."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, prefix: str, name: str) -> str:
        safe = _safe(name)
        stem = f"{prefix}_{safe}"
        if safe != name or len(stem) > MAX_FILE_STEM or stem.lower() in self.used:
            digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
            stem = f"{prefix}_{safe[: MAX_FILE_STEM - len(prefix) - 12]}_{digest[:10]}"
            n = 1
            while stem.lower() in self.used:  # a name chosen to look like another's hashed one
                stem, n = f"{prefix}_{digest[:10]}_{n}", n + 1
        self.used.add(stem.lower())
        return f"{stem}.png"


def _plain(text: str) -> str:
    """``text`` for matplotlib: shown as written (a ``$`` starts no mathtext), control characters escaped."""
    return printable(text).replace("$", r"\$")


def draw_figures(
    runs: Sequence[RunRecord], columns: Sequence[ScoreColumn], out: Path, names: FileNames | None = None
) -> list[tuple[str, str]]:
    """One PNG per shared scalar and per score column two runs share: ``[(title, file name)]``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_epoch = all(run.epoch_length for run in runs)
    unit = "epoch" if by_epoch else "iteration"
    figures: list[tuple[str, str]] = []
    names = names or FileNames()

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
                ax.plot(
                    xs,
                    [v for _, v in points],
                    label=_plain(run.label),
                    linewidth=1,
                    marker="." if len(xs) < 20 else None,
                )
        ax.set_xlabel(unit)
        ax.set_ylabel(_plain(name))
        ax.set_title(_plain(name))
        ax.legend(fontsize="small")
        space, _, bare = name.partition("/")
        save(fig, names(space, bare), name)
    need = min(2, len(runs))
    for column in columns:
        having = [run for run in runs if (column.name, column.protocol) in run.evals]
        if len(having) < need:
            continue
        fig, ax = plt.subplots(figsize=(7, 3.2))
        for run in having:
            evals = run.evals[(column.name, column.protocol)]
            xs = [e.epoch if by_epoch else e.iteration for e in evals]
            ax.plot(xs, [e.value for e in evals], label=_plain(run.label), linewidth=1, marker="o")
        title = f"{column.name}{(' ' + column.tag) if column.tag else ''}"
        ax.set_xlabel(unit)
        ax.set_ylabel(_plain(column.name))
        ax.set_title(_plain(title))
        ax.legend(fontsize="small")
        space, _, bare = column.name.partition("/")
        save(fig, names(space, f"{bare}{_safe(column.tag)}"), title)
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


@contextlib.contextmanager
def _output_folder(out: Path) -> Iterator[Path]:
    """The folder to write into: a new folder is made under a temporary name beside ``out`` and
    renamed into place when everything is written; in an existing folder, the files written are
    removed again if anything fails."""
    if out.is_dir():
        before = set(out.iterdir())
        try:
            yield out
        except BaseException:
            for made in set(out.iterdir()) - before:
                with contextlib.suppress(OSError):
                    made.unlink()
            raise
        return
    missing = [p for p in [out.parent, *out.parent.parents] if not p.exists()]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = out.parent / f".tmp-{out.name[:100]}-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
    except OSError as exc:
        for folder in missing:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise DltkError(f"--out: cannot create '{printable(out)}': {exc.strerror}") from None
    try:
        yield staging
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in missing:  # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def compare(
    paths: Sequence[Path],
    out: Path | None,
    directions: Directions | Callable[[dict[str, Any]], dict[str, str]] | None = None,
    warn: Callable[[str], None] | None = None,
) -> tuple[str, Path]:
    """Read ``paths``, write ``compare.html`` and its PNGs into ``out``; return the Markdown and the page.

    All bad input is reported at once (one line each) before anything is written. Records of a run
    that cannot be used are skipped, each said in one line to ``warn`` (default: stderr). A failure
    while writing leaves no half-made folder (and no file of its own in an existing one).
    """
    problems: list[str] = []
    runs: list[RunRecord] = []
    seen: set[Path] = set()
    warn = warn or (lambda line: print(f"warning: {line}", file=sys.stderr))
    for path in paths:
        resolved = path.resolve()
        if resolved in seen:
            problems.append(f"{printable(path)}: given twice")
            continue
        seen.add(resolved)
        try:
            runs.append(read_run(path, directions, warn))
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
    columns = score_columns(runs)
    notes = protocol_notes(columns)
    with _output_folder(out) as folder:
        names = FileNames()
        figures = draw_figures(runs, columns, folder, names)
        grids: list[tuple[RunRecord, str | None]] = []
        for i, run in enumerate(runs, 1):
            if run.grid is None:
                grids.append((run, None))
                continue
            name = names(f"grid_{i}", run.label)
            tmp = folder / f".tmp-{name}"
            shutil.copyfile(run.grid, tmp, follow_symlinks=True)  # read_run kept only grids inside the run
            tmp.replace(folder / name)
            grids.append((run, name))
        write_page(runs, columns, notes, figures, grids, folder)
    page = out / PAGE_NAME
    text = [markdown_table(*info_rows(runs))]
    if columns:
        text += ["", markdown_table(*score_rows(runs, columns))]
    text += [f"\n{note}" for note in notes]
    return "\n".join(text), page
