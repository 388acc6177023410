"""The translate plugin's command-line option: ``--direction`` of ``dltk predict`` (CycleGAN runs).

Registered as its own entry point, so the option reaches ``dltk predict --help`` without loading
the recipes; the value goes to the run's ``Trained.predict`` by name. A pix2pix run translates
one way only: its ``predict`` takes no ``direction``, so the core refuses the flag in one line.
"""

from __future__ import annotations

import argparse

from dltoolkit import hookimpl


@hookimpl
def dltk_add_options(command: str, parser: argparse._ArgumentGroup) -> None:
    """``--direction AtoB|BtoA`` for ``dltk predict``."""
    if command != "predict":
        return
    parser.add_argument(
        "--direction",
        choices=("AtoB", "BtoA"),
        help="which generator of a CycleGAN run translates the input (default AtoB)",
    )
