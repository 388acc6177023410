"""The sequence plugin's command-line options: text sampling for ``dltk generate`` (language models).

Registered as its own entry point, so the options reach ``dltk generate --help`` without loading
the recipes; the values go to the run's ``Trained.generate`` by name (see ``make_generate``).
"""

from __future__ import annotations

import argparse

from dltoolkit import hookimpl


@hookimpl
def dltk_add_options(command: str, parser: argparse._ArgumentGroup) -> None:
    """``--prompt``, ``--num-chars``, ``--temperature``, ``--top-k``, ``--top-p`` and ``--no-cache`` for
    ``dltk generate``."""
    if command != "generate":
        return
    parser.add_argument("--prompt", help="text to continue (language models)")
    parser.add_argument("--num-chars", type=int, help="characters to generate (language models; default 500)")
    parser.add_argument("--temperature", type=float, help="sampling temperature (language models; default 1.0)")
    parser.add_argument("--top-k", type=int, help="draw among the K most likely characters only (language models)")
    parser.add_argument(
        "--top-p", type=float, help="draw among the fewest most likely characters holding this share (language models)"
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="read the whole context again for each character instead of keeping a key/value cache "
        "(the same text, slower; language models)",
    )
