"""What the repository ships for the first-party plugins: every recipe file of recipes/ checks,
and docs/recipes.md is what their registrations generate. These need the five first-party
plugins installed (the core's own tests do not)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from runs import heavy_imports

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = ("gan", "vae", "vision", "sequence", "fidelity", "mlflow", "optuna", "detect", "translate")
MISSING = [f"dltoolkit-{name}" for name in FIRST_PARTY if importlib.util.find_spec(f"dltoolkit_{name}") is None]
# what the repository ships for the first-party plugins, so not the core's: checked where they are installed
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"the first-party plugins are not installed: {MISSING}")


@pytest.mark.parametrize("recipe", sorted((ROOT / "recipes").glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_recipe_checks(dltk, recipe):
    result = dltk("check", recipe)
    assert result.exit_code == 0, result.err


def test_recipes_reference_is_up_to_date():
    """docs/recipes.md contains exactly what `python -m dltoolkit._reference` generates."""
    from dltoolkit._reference import BEGIN, END, markdown_reference, registry_of

    docs = (ROOT / "docs" / "recipes.md").read_text(encoding="utf-8")
    current = docs[docs.index(BEGIN) : docs.index(END) + len(END)]
    expected = markdown_reference(registry_of(FIRST_PARTY))
    assert current == expected, f"regenerate: python -m dltoolkit._reference {' '.join(FIRST_PARTY)}"


@pytest.mark.parametrize(
    "args",
    [["check", "recipes/dcgan_cifar10.toml"], ["check", "recipes/quickstart.toml", "recipe.epochs=2"]],
    ids=lambda a: " ".join(a),
)
@pytest.mark.slow
def test_checking_a_shipped_recipe_imports_no_torch(args):
    """The first-party plugins' registration stays light (tests/test_startup.py: the core's)."""
    last = heavy_imports([str(ROOT / a) if a.startswith("recipes/") else a for a in args], ROOT)
    assert last == "EXIT 0 HEAVY -", last
