"""Fixtures of every test of the repository: the core's (tests/) and each plugin's (plugins/*/tests).

The core's own tests add theirs in tests/conftest.py (a tiny inline plugin instead of the
first-party ones); what only one plugin's tests need lives in that plugin's tests/conftest.py.
Modules shared by the tests (the fault-injecting plugins, :mod:`runs`) are in tests/helpers,
importable here and in the ``dltk`` processes tests start (``PYTHONPATH``).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

pytest_plugins = ["dltoolkit.testing"]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one torch thread per test worker: on a 2-core machine two workers of one thread each finish
    # sooner than threads spinning against each other (tiny models gain nothing from more)
    import torch

    torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent
HELPERS = ROOT / "tests" / "helpers"
if str(HELPERS) not in sys.path:
    sys.path.insert(0, str(HELPERS))


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests see the installed plugins only, write under tmp_path, and never download."""
    # UV_RUN_RECURSION_DEPTH: set under `uv run pytest`; hints would say "uv run dltk" (tested apart)
    for var in ("DLTK_LOAD_PLUGINS", "DLTK_TRACE_PLUGINS", "UV_RUN_RECURSION_DEPTH"):
        monkeypatch.delenv(var, raising=False)
    for name in list(os.environ):
        if name.startswith("DLTK_FAULT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(HELPERS), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.chdir(tmp_path)
    os.environ.setdefault("MPLBACKEND", "Agg")

    def no_downloads(dest: Path) -> None:
        raise OSError("downloads are disabled in the test suite")

    if importlib.util.find_spec("dltoolkit_fidelity") is not None:  # the core's tests run without it too
        monkeypatch.setattr("dltoolkit_fidelity.weights.download_inception", no_downloads)


TINY_GAN = """
seed = 1

[run]
dir = "{runs}"
device = "cpu"

[recipe]
name = "gan"
epochs = 2
batch_size = 32
log_every = 5

[model]
name = "mlp-gan"
latent_dim = 8
hidden_dim = 16
depth = 1

[dataset]
name = "digits"

[[callbacks]]
name = "samples"

[checkpoint]
every = 1
keep = 2
"""


@pytest.fixture(scope="session")
def tiny_gan_text() -> str:
    """The TOML of :func:`tiny_gan` with a ``{runs}`` placeholder (for module-scoped fixtures)."""
    return TINY_GAN


@pytest.fixture
def tiny_gan(tmp_path: Path):
    """Write a tiny GAN recipe (digits, MLP; needs dltoolkit-gan) and return its path; ``tiny_gan(extra_toml)``."""

    def write(extra: str = "", name: str = "tiny.toml") -> Path:
        path = tmp_path / name
        path.write_text(TINY_GAN.format(runs=(tmp_path / "runs").as_posix()) + extra, encoding="utf-8")
        return path

    return write
