"""dltk --help, list, plugins and check import no torch: registration stays light, for every plugin here."""

from __future__ import annotations

import pytest
from runs import heavy_imports


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["run", "--help"],
        ["compare", "--help"],
        ["new", "--help"],
        ["new", "plugin", "--help"],
        ["list"],
        ["list", "-v"],
        ["plugins"],
        ["check", "{recipe}"],
        ["check", "{recipe}", "recipe.epochs=3", "callbacks=[]"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
@pytest.mark.slow
def test_commands_that_build_nothing_import_no_torch(args, tiny_recipe, tmp_path):
    """In a fresh interpreter (this test process has torch loaded already), with every installed plugin
    (the shipped recipes of the first-party plugins: tests/test_shipped.py)."""
    last = heavy_imports([a.format(recipe=tiny_recipe()) for a in args], tmp_path)
    assert last.startswith("EXIT 0 ")
    assert last.endswith("HEAVY -"), f"{args}: imported {last.split('HEAVY ')[1]}"
