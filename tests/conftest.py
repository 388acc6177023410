"""The core's tests: they train the tiny inline plugin of tests/helpers/toy_plugin.py (recipe
``toy``, model ``toy-mlp``), never a first-party plugin, so that they pass with none installed.

The toy is seen as an installed distribution, ``dltoolkit-toy`` (tests/helpers/toy-site holds its
``*.dist-info``), in this process and in the ``dltk`` processes tests start (``PYTHONPATH``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from toy_plugin import TINY_RECIPE

TOY_SITE = Path(__file__).resolve().parent / "helpers" / "toy-site"


@pytest.fixture(scope="module", autouse=True)
def _toy_installed() -> Iterator[None]:
    """For each module of the core's tests (module-scoped fixtures that run ``dltk`` included)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(TOY_SITE))
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TOY_SITE), os.environ.get("PYTHONPATH")])))
        yield


@pytest.fixture
def tiny_recipe(tmp_path: Path):
    """Write the toy's tiny recipe file (digits, MLPs) and return its path; ``tiny_recipe(extra_toml)``."""

    def write(extra: str = "", name: str = "tiny.toml") -> Path:
        path = tmp_path / name
        path.write_text(TINY_RECIPE.format(runs=(tmp_path / "runs").as_posix()) + extra, encoding="utf-8")
        return path

    return write
