"""The dltoolkit-optuna plugin: the ``dltk sweep`` command (the ``dltk_register_commands`` hook).

Registration is light: this module builds the command's parser and names its handler by a
``"module:attr"`` string, so ``dltk --help`` never imports Optuna.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dltoolkit import hookimpl


@hookimpl
def dltk_register_commands(subparsers: Any) -> None:
    sweep = subparsers.add_parser(
        "sweep",
        help="search hyperparameters with Optuna: each trial an ordinary run",
        description=(
            "Search the hyperparameters a sweep file names (any recipe key: float, log-scale float, int, "
            "categorical) with Optuna. Each trial is a run directory under the sweep's folder; poor trials "
            "are pruned at their evaluations. The study is kept in a database, so a sweep stopped at any "
            "moment and started again continues to the asked number of trials. At the end: the best "
            "trial and its recipe file, trials.csv/trials.md, importance.png, history.png and a "
            "dltk compare page of the best trials."
        ),
    )
    sweep.add_argument("sweep", type=Path, metavar="SWEEP", help="the sweep file (TOML; docs/sweeps.md)")
    sweep.add_argument(
        "--trials", type=int, metavar="N", help="finished or pruned trials to reach (default: the file's)"
    )
    sweep.add_argument("--jobs", type=int, default=1, metavar="J", help="trials run at once, each its own process")
    sweep.add_argument(
        "--storage",
        metavar="URL",
        help="the study's database: sqlite:///FILE.db (default: study.db in the sweep's folder) or an RDB URL "
        "shared by several machines (postgresql://USER:PASSWORD@HOST/DB)",
    )
    sweep.add_argument(
        "--out", type=Path, metavar="DIR", help="the sweep's folder (default: runs/sweeps/<the sweep file's stem>)"
    )
    sweep.set_defaults(handler="dltoolkit_optuna.command:sweep_command")
