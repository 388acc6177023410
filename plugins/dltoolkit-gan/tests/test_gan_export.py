"""Exports of dltoolkit 0.1 (the GAN plugin's legacy format, ``dltoolkit-generator/1``) still load
(moved from the core's tests/test_generate.py: the format is the GAN plugin's)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_gan_text) -> Path:
    """A tiny MLP GAN trained for one epoch on the bundled digits."""
    from dltoolkit.testing import run_cli

    folder = tmp_path_factory.mktemp("trained")
    recipe = folder / "tiny.toml"
    recipe.write_text(tiny_gan_text.format(runs=folder.as_posix()))
    result = run_cli("run", recipe, "recipe.epochs=1", "--run-dir", folder / "run")
    assert result.exit_code == 0, result.err
    return folder / "run"


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image).copy()


@pytest.mark.slow
def test_exports_of_dltoolkit_0_1_still_load(trained, dltk, tmp_path):
    """The old format held the generator's state dict alone, with model, options and image shape."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    assert dltk("export", trained, "--out", tmp_path / "new.safetensors").exit_code == 0
    with safe_open(str(tmp_path / "new.safetensors"), framework="pt") as handle:
        meta = dict(handle.metadata())
    state = {k.removeprefix("generator."): v for k, v in load_file(str(tmp_path / "new.safetensors")).items()}
    old_meta = {
        "format": "dltoolkit-generator/1",
        "model": meta["model"],
        "model_options": meta["model_options"],
        "image_shape": "[1, 8, 8]",
        "latent_dim": "8",
        "dataset": meta["dataset"],
        "seed": meta["seed"],
    }
    save_file(state, str(tmp_path / "old.safetensors"), metadata=old_meta)
    for name in ("new", "old"):
        result = dltk(
            "generate", tmp_path / f"{name}.safetensors", "--num", "4", "--out", tmp_path / name, "--seed", "2"
        )
        assert result.exit_code == 0, result.err
    for i in range(4):
        assert np.array_equal(pixels(tmp_path / "old" / f"{i:04d}.png"), pixels(tmp_path / "new" / f"{i:04d}.png"))
