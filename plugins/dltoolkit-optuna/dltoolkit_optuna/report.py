"""The end of a sweep: the best trial and its recipe file, a table of every trial (trials.csv and
trials.md), Optuna's parameter-importance and history plots (importance.png, history.png) and a
``dltk compare`` page of the best few trials (compare/compare.html)."""

from __future__ import annotations

import csv
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

from dltoolkit import ExitCode

BEST_FEW = 3
"""How many of the best finished trials the compare page shows."""


def trial_rows(study: Any) -> tuple[list[str], list[list[Any]]]:
    """The table of every trial: number, state, value, each searched key, epochs reported, run directory."""
    keys = [p.key for p in study.sweep.space]
    header = ["trial", "state", study.sweep.objective, *keys, "epochs", "run"]
    rows = []
    for trial in study.study.get_trials(deepcopy=False):
        value = trial.value if trial.value is not None else ""
        epochs = max(trial.intermediate_values) if trial.intermediate_values else ""
        params = [trial.params.get(k, "") for k in keys]
        run_dir = trial.user_attrs.get("run_dir", "")
        rows.append([trial.number, trial.state.name.lower(), value, *params, epochs, run_dir])
    return header, rows


def _markdown(header: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        text = f"{value:.6g}" if isinstance(value, float) else str(value)
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _plots(study: Any, folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as views

    written = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "experimental" warnings of optuna's matplotlib views
        views_by_file = (
            ("history.png", views.plot_optimization_history),
            ("importance.png", views.plot_param_importances),
        )
        for name, view in views_by_file:
            try:
                axes = view(study.study)
                figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
                figure.set_size_inches(8, 5)
                figure.tight_layout()
                figure.savefig(folder / name, dpi=100)
                plt.close(figure)
                written.append(name)
            except Exception as exc:  # too few finished trials for importances, say
                print(f"dltk sweep: no {name} ({type(exc).__name__}: {exc})", file=sys.stderr)
    return written


def write_report(study: Any) -> int:
    """Write the report of a finished sweep and print its best trial; exit 1 when no trial finished."""
    optuna = study.optuna
    folder: Path = study.folder
    header, rows = trial_rows(study)
    with (folder / "trials.csv").open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([header, *rows])
    (folder / "trials.md").write_text(_markdown(header, rows), encoding="utf-8")
    state = optuna.trial.TrialState
    finished = study.study.get_trials(deepcopy=False, states=(state.COMPLETE,))
    states = (state.COMPLETE, state.PRUNED, state.FAIL)
    counts = {s: len(study.study.get_trials(deepcopy=False, states=(s,))) for s in states}
    print(
        f"dltk sweep: {counts[state.COMPLETE] + counts[state.PRUNED]} trials ({counts[state.COMPLETE]} finished, "
        f"{counts[state.PRUNED]} pruned, {counts[state.FAIL]} failed) in {folder}/"
    )
    if not finished:
        print("dltk sweep: no trial finished; see the logs in " + str(folder / "logs"), file=sys.stderr)
        return int(ExitCode.RUN_FAILED)
    written = ["trials.csv", "trials.md", *_plots(study, folder)]
    best = study.study.best_trial
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.params.items())
    run_dir = Path(best.user_attrs["run_dir"])
    print(f"best trial {best.number}: {study.sweep.objective} = {best.value:.6g} ({shown})")
    print(f"its recipe file: {run_dir / 'recipe.toml'}")
    ranked = sorted(finished, key=lambda t: t.value, reverse=study.sweep.higher)[:BEST_FEW]
    page = _compare(study, [Path(t.user_attrs["run_dir"]) for t in ranked], folder / "compare")
    if page is not None:
        written.append(str(page.relative_to(folder)))
    print(f"wrote {', '.join(written)} in {folder}/")
    return int(ExitCode.OK)


def _compare(study: Any, runs: list[Path], out: Path) -> Path | None:
    """``dltk compare`` of the best runs (a process of its own, as a user would run it)."""
    extra = [arg for module in study.plugins for arg in ("-p", module)]
    command = [sys.executable, "-m", "dltoolkit", "compare", *map(str, runs), "--out", str(out), *extra]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"dltk sweep: no compare page ({done.stderr.strip().splitlines()[-1:]})", file=sys.stderr)
        return None
    return out / "compare.html"
