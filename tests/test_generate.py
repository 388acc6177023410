"""Artefacts of a run (GIF, loss plot) and images from a trained generator: generate and export
(of the core's test plugin, tests/helpers/toy_plugin.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dltoolkit._checkpoint import checkpoints_in

pytestmark = pytest.mark.slow  # every test reads a run trained by the module fixture

ARTEFACTS = """
[[callbacks]]
name = "progress-gif"

[[callbacks]]
name = "loss-plot"

[[callbacks]]
name = "real-samples"
num = 16
nrow = 4
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """The toy (tests/helpers/toy_plugin.py) trained for 3 epochs on the bundled digits."""
    from toy_plugin import TINY_RECIPE

    from dltoolkit.testing import run_cli

    folder = tmp_path_factory.mktemp("trained")
    recipe = folder / "tiny.toml"
    recipe.write_text(TINY_RECIPE.format(runs=folder.as_posix()) + ARTEFACTS)
    result = run_cli("run", recipe, "recipe.epochs=3", "--run-dir", folder / "run")
    assert result.exit_code == 0, result.err
    return folder / "run"


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image).copy()


def test_gif_has_one_frame_per_grid(trained):
    grids = sorted((trained / "samples").glob("grid_*.png"))
    assert len(grids) == 3
    with Image.open(trained / "samples" / "progress.gif") as gif:
        assert gif.format == "GIF" and gif.n_frames == 3
        gif.seek(2)
        last = np.asarray(gif.convert("L"))
    with Image.open(grids[-1]) as grid:
        expected = np.asarray(grid.convert("L")).astype(int)
    assert np.abs(last.astype(int) - expected).mean() < 8  # the last grid, palette-quantised


def test_loss_plot_is_a_png_of_the_logged_losses(trained):
    with Image.open(trained / "samples" / "losses.png") as plot:
        assert plot.format == "PNG" and plot.size == (900, 600)
        assert len(np.unique(np.asarray(plot.convert("L")))) > 10  # something was drawn
        rgb = np.asarray(plot.convert("RGB")).astype(int)
    # the two loss lines in matplotlib's first two colours, more than a legend's short samples of them
    for colour in ((0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)):
        assert (np.abs(rgb - colour).sum(axis=2) < 60).sum() > 300, colour


def test_real_grid_written_once(trained):
    with Image.open(trained / "samples" / "real.png") as real:
        assert real.size == (4 * 10 + 2, 4 * 10 + 2)  # 16 digits of 8x8 with 2-pixel padding


def test_generate_from_run_checkpoint_and_export_agree(trained, dltk, tmp_path):
    result = dltk("generate", trained, "--num", "10", "--out", tmp_path / "from-run", "--seed", "3", "--grid")
    assert result.exit_code == 0, result.err
    files = sorted(p.name for p in (tmp_path / "from-run").iterdir())
    assert files == [f"{i:04d}.png" for i in range(10)] + ["grid.png"]
    assert pixels(tmp_path / "from-run" / "0000.png").shape == (8, 8)

    assert dltk("export", trained, "--out", tmp_path / "g.safetensors").exit_code == 0
    assert (
        dltk(
            "generate", tmp_path / "g.safetensors", "--num", "10", "--out", tmp_path / "from-export", "--seed", "3"
        ).exit_code
        == 0
    )
    checkpoint = checkpoints_in(trained / "checkpoints")[0]  # the newest, which the run directory stands for
    assert (
        dltk(
            "generate", checkpoint, "--num", "10", "--out", tmp_path / "from-ckpt", "--seed", "3", "--batch-size", "3"
        ).exit_code
        == 0
    )
    for i in range(10):
        a = pixels(tmp_path / "from-run" / f"{i:04d}.png")
        assert np.array_equal(a, pixels(tmp_path / "from-export" / f"{i:04d}.png"))
        assert np.array_equal(a, pixels(tmp_path / "from-ckpt" / f"{i:04d}.png"))
    other = dltk("generate", trained, "--num", "2", "--out", tmp_path / "seed4", "--seed", "4")
    assert other.exit_code == 0
    assert not np.array_equal(pixels(tmp_path / "seed4" / "0000.png"), pixels(tmp_path / "from-run" / "0000.png"))


def test_export_holds_weights_and_rebuild_metadata(trained, dltk, tmp_path):
    from safetensors import safe_open

    assert dltk("export", trained, "--out", tmp_path / "g.safetensors").exit_code == 0
    with safe_open(str(tmp_path / "g.safetensors"), framework="pt") as handle:
        meta = handle.metadata()
        keys = list(handle.keys())
    assert meta["format"] == "dltoolkit-export/1" and meta["recipe"] == "toy" and meta["model"] == "toy-mlp"
    assert json.loads(meta["model_options"])["latent_dim"] == 8
    assert json.loads(meta["data"])["shape"] == [1, 8, 8] and json.loads(meta["modules"]) == ["generator"]
    assert keys and all(k.startswith("generator.net.") for k in keys)  # the generator only, no discriminator


def test_export_with_unknown_model_is_refused_by_name(trained, dltk, tmp_path):
    from safetensors.torch import load_file, save_file

    assert dltk("export", trained, "--out", tmp_path / "g.safetensors").exit_code == 0
    from safetensors import safe_open

    with safe_open(str(tmp_path / "g.safetensors"), framework="pt") as handle:
        meta = dict(handle.metadata())
    save_file(
        load_file(str(tmp_path / "g.safetensors")),
        str(tmp_path / "bad.safetensors"),
        metadata={**{k: v for k, v in meta.items() if k != "sha256"}, "model": "stylegan9"},  # foreign: no hash
    )
    result = dltk("generate", tmp_path / "bad.safetensors", "--num", "1", "--out", tmp_path / "x")
    assert result.exit_code == 2
    assert result.err_lines[0].startswith(f"{tmp_path / 'bad.safetensors'}: model: unknown model 'stylegan9'")
    assert not (tmp_path / "x").exists()


def test_generate_errors(dltk, tmp_path, trained):
    not_run = tmp_path / "folder"
    not_run.mkdir()
    cases = [
        ((tmp_path / "missing",), f"{tmp_path / 'missing'}: no such run directory or file"),
        ((not_run,), f"{not_run}: not a run directory (no checkpoints/ folder)"),
    ]
    for (source,), message in cases:
        result = dltk("generate", source, "--num", "1", "--out", tmp_path / "out")
        assert (result.exit_code, result.err_lines) == (2, [message])
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint")
    result = dltk("generate", junk, "--num", "1", "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert result.err_lines[0].startswith(f"{junk}: not a readable checkpoint (truncated or corrupt?)")
    result = dltk("generate", trained, "--num", "0", "--out", tmp_path / "out")
    assert (result.exit_code, result.err_lines) == (2, ["--num: must be at least 1, got 0"])
    assert not (tmp_path / "out").exists()


class _Payload:
    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(__file__).parent / "PWNED",))


def test_checkpoint_with_pickle_payload_is_refused_and_never_runs(dltk, tmp_path, trained, monkeypatch):
    marker = Path(__file__).parent / "PWNED"
    marker.unlink(missing_ok=True)
    evil = tmp_path / "evil.pt"
    data = torch.load(sorted((trained / "checkpoints").glob("checkpoint_*.pt"))[-1], weights_only=True)
    data["meta"]["surprise"] = _Payload()
    with open(evil, "wb") as handle:
        torch.save(data, handle)
    result = dltk("generate", evil, "--num", "1", "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert result.err_lines[0].startswith(
        f"{evil}: refused: the file holds pickled objects that safe loading does not allow"
    )
    assert result.err_lines[0].endswith("dltoolkit never loads checkpoints unsafely")
    assert not marker.exists()


def test_device_errors_name_the_flag(dltk, trained, tmp_path):
    result = dltk("generate", trained, "--num", "1", "--out", tmp_path / "o", "--device", "tpu9")
    assert (result.exit_code, result.err_lines) == (
        2,
        ["--device: unknown device 'tpu9': use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"],
    )
    if not torch.cuda.is_available():
        result = dltk("generate", trained, "--num", "1", "--out", tmp_path / "o", "--device", "cuda")
        assert result.err_lines == ["--device: 'cuda' requested but CUDA is not available here"]
