"""The fidelity plugin's command-line options: the feature extractor and its weights for ``dltk eval``.

Registered as its own entry point, so ``dltk eval --help`` lists them without loading torch; each
value goes to every named metric whose options have that name (``weights_path``...).
"""

from __future__ import annotations

import argparse

from dltoolkit import hookimpl


@hookimpl
def dltk_add_options(command: str, parser: argparse._ArgumentGroup) -> None:
    """``--feature-extractor``, ``--weights-path`` and ``--weights-sha256`` for ``dltk eval``."""
    if command != "eval":
        return
    parser.add_argument(
        "--feature-extractor", help="feature extractor of fid, isc, kid, prc (default: torch-fidelity's Inception)"
    )
    parser.add_argument("--weights-path", help="local weights file of the feature extractor")
    parser.add_argument("--weights-sha256", help="sha256 of weights other than the official file")
