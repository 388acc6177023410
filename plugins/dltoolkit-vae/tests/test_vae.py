"""The vae plugin: its objective on hand-computed numbers, end-to-end runs on the bundled digits
(CPU), the held-out ELBO, generate/export, compatibility checks and bit-exact resume after SIGKILL."""

from __future__ import annotations

import json
import math
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from runs import ITERATION_CHECKPOINTS, log_lines, subprocess_run
from torch import nn

from dltoolkit._checkpoint import checkpoints_in, load_checkpoint
from dltoolkit.images import to_uint8
from dltoolkit_vae import (
    REPORTS,
    ConvVaeConfig,
    MlpVaeConfig,
    conv_vae,
    kl_divergence,
    kl_weight,
    make_eval_step,
    make_vae_step,
    mlp_vae,
    reconstruction_loss,
)

TINY_VAE = """
seed = 1

[run]
dir = "{runs}"
device = "cpu"

[recipe]
name = "vae"
epochs = 2
batch_size = 32
log_every = 5

[model]
name = "mlp-vae"
latent_dim = 4
hidden_dim = 16
depth = 1

[dataset]
name = "digits"

[[metrics]]
name = "negative-elbo"

[[callbacks]]
name = "samples"

[[callbacks]]
name = "progress-gif"

[[callbacks]]
name = "loss-plot"

[[callbacks]]
name = "real-samples"

[checkpoint]
every = 1
keep = 2
best_by = "eval/negative-elbo"
"""
NAMES = [s.name for s in REPORTS]


def write_recipe(folder: Path, name: str = "tiny_vae.toml") -> Path:
    path = folder / name
    path.write_text(TINY_VAE.format(runs=(folder / "runs").as_posix()), encoding="utf-8")
    return path


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image).copy()


def gray(path: Path) -> np.ndarray:
    """A grid of grayscale images (written with three equal channels) as one channel."""
    image = pixels(path)
    assert (image == image[..., :1]).all()
    return image[..., 0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny MLP VAE trained for 2 epochs (44 iterations each) on the bundled digits, checkpointed
    every 10 iterations: also the uninterrupted reference of the resume test."""
    from dltoolkit.testing import run_cli

    folder = tmp_path_factory.mktemp("vae")
    result = run_cli("run", write_recipe(folder), *ITERATION_CHECKPOINTS, "--run-dir", folder / "run")
    assert result.exit_code == 0, result.err
    return folder / "run"


# --- the objective, on numbers worked out by hand ---------------------------------------------


def test_kl_of_the_prior_is_zero_and_known_values():
    assert kl_divergence(torch.zeros(3, 5), torch.zeros(3, 5)).tolist() == [0.0, 0.0, 0.0]
    # 0.5 * (mu^2 + sigma^2 - 1 - log sigma^2), summed over dimensions
    mu, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(2.0)]])
    assert kl_divergence(mu, logvar).item() == pytest.approx(0.5 + 0.5 * (1.0 - math.log(2.0)))


def test_reconstruction_losses_are_summed_over_pixels():
    images = torch.tensor([[[[-1.0, 1.0], [0.0, 1.0]]]])  # one 1x2x2 image in [-1, 1]
    zero = torch.zeros_like(images)
    assert reconstruction_loss(zero, images, "bce").item() == pytest.approx(4 * math.log(2.0))  # p = 1/2 everywhere
    assert reconstruction_loss(zero, images, "mse").item() == pytest.approx(3.0)  # decoded 0: 1 + 1 + 0 + 1
    confident = torch.tensor([[[[-30.0, 30.0], [0.0, 30.0]]]])
    assert reconstruction_loss(confident, images, "bce").item() == pytest.approx(math.log(2.0), abs=1e-6)
    assert reconstruction_loss(confident, images, "mse").item() == pytest.approx(0.0, abs=1e-6)


class _Encoder(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = torch.zeros(x.shape[0], 2)
        return zeros, zeros  # q(z|x) = N(0, I): the prior, so KL = 0


class _Decoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, 1, 2, 2))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(z.shape[0], -1, -1, -1)  # logits 0: p = 1/2 for every pixel


def test_eval_step_gives_the_negative_elbo_per_image():
    images = torch.tensor([[[[-1.0, 1.0], [0.0, 1.0]]], [[[1.0, 1.0], [1.0, 1.0]]]])
    out = make_eval_step(_Encoder(), _Decoder(), torch.device("cpu"))((images, torch.tensor([0, 1])))
    assert out["kl"].tolist() == [0.0, 0.0]
    assert out["elbo"].tolist() == pytest.approx([4 * math.log(2.0)] * 2)
    assert torch.equal(out["elbo"], out["reconstruction"] + out["kl"])


def test_train_step_returns_the_declared_scalars_and_weights_the_kl():
    encoder, decoder = _Encoder(), _Decoder()
    optimizer = torch.optim.SGD(decoder.parameters(), lr=0.0)
    step = make_vae_step(
        encoder, decoder, optimizer, device=torch.device("cpu"), reconstruction="bce", beta=2.0, kl_warmup_epochs=1
    )
    images = torch.ones(4, 1, 2, 2)
    engine = SimpleNamespace(state=SimpleNamespace(iteration=6, epoch_length=10))
    out = step(engine, (images, torch.zeros(4)))
    assert list(out) == NAMES and all(v.dim() == 0 for v in out.values())
    assert out["beta"].item() == pytest.approx(1.0)  # half-way through a 10-iteration warm-up to 2.0
    assert out["reconstruction"].item() == pytest.approx(4 * math.log(2.0))
    assert out["loss"].item() == pytest.approx(out["reconstruction"].item() + 1.0 * out["kl"].item())


def test_kl_warmup_rises_linearly_from_zero_to_beta():
    assert [kl_weight(i, 0.5, 4) for i in (1, 2, 3, 4, 5, 6, 100)] == [0.0, 0.125, 0.25, 0.375, 0.5, 0.5, 0.5]
    assert kl_weight(1, 0.5, 0) == 0.5  # no warm-up


@pytest.mark.parametrize("size", [16, 32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_conv_vae_fits_every_power_of_two_size(size, channels):
    model = conv_vae(ConvVaeConfig(latent_dim=3, base_channels=2), image_shape=(channels, size, size))
    mu, logvar = model.encoder(torch.zeros(2, channels, size, size))
    assert mu.shape == logvar.shape == (2, 3)
    assert model.decoder(mu).shape == (2, channels, size, size)


def test_mlp_vae_shapes():
    model = mlp_vae(MlpVaeConfig(latent_dim=3, hidden_dim=8, depth=2), image_shape=(1, 8, 8))
    mu, logvar = model.encoder(torch.zeros(5, 1, 8, 8))
    assert mu.shape == logvar.shape == (5, 3)
    assert model.decoder(mu).shape == (5, 1, 8, 8)


# --- compatibility and bad input -------------------------------------------------------------


@pytest.mark.slow
def test_checking_a_vae_recipe_imports_no_torch(tmp_path):
    """Registration is light: `dltk check` of a vae recipe file loads no torch, in a fresh interpreter."""
    probe = (
        "import sys; from dltoolkit.cli import main; code = main(sys.argv[1:]); "
        "print(code, sorted(m for m in ('torch', 'ignite', 'torchvision') if m in sys.modules))"
    )
    recipe = Path(__file__).resolve().parents[3] / "recipes" / "vae_digits.toml"
    result = subprocess.run(
        [sys.executable, "-c", probe, "check", str(recipe)], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert result.stdout.strip().splitlines()[-1] == "0 []", result.stdout + result.stderr


def test_check_refuses_models_of_the_other_family(dltk, tmp_path):
    recipe = write_recipe(tmp_path)
    result = dltk("check", recipe, "model.name=mlp-gan")
    assert (result.exit_code, len(result.err_lines)) == (2, 1)
    assert result.err_lines[0] == (
        f"{recipe}: model.name: model 'mlp-gan' provides 'gan', but the recipe 'vae' needs a model "
        "that provides 'vae' (models that do: conv-vae, mlp-vae)"
    )
    result = dltk("check", recipe, "recipe.name=gan", "metrics=[]", "checkpoint.best_by=loss_g", "model.name=mlp-vae")
    assert (result.exit_code, len(result.err_lines)) == (2, 1)
    assert result.err_lines[0].startswith(f"{recipe}: model.name: model 'mlp-vae' provides 'vae', but the recipe 'gan'")
    result = dltk("check", recipe, "recipe.name=gan", "model.name=mlp-gan")  # elbo scores VAE runs only
    assert (result.exit_code, len(result.err_lines)) == (2, 1)
    assert result.err_lines[0].startswith(f"{recipe}: metrics.0.name: recipe 'gan' provides 'sample' + 'export', but")


def test_conv_vae_refuses_sizes_it_cannot_build(dltk, tmp_path):
    recipe = write_recipe(tmp_path)
    model = "model={name='conv-vae',latent_dim=4,base_channels=4}"
    result = dltk("run", recipe, model)
    assert result.exit_code == 2
    assert result.err_lines == [
        f"{recipe}: model: conv-vae needs square images of 16, 32, 64 or 128 pixels, the dataset gives 8x8; "
        "set dataset.image_size (for example 32 or 64)"
    ]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.slow
def test_conv_vae_trains_on_colour_images(dltk, tmp_path):
    model = "model={name='conv-vae',latent_dim=4,base_channels=4,channels=3}"
    run = tmp_path / "run"
    result = dltk(
        "run",
        write_recipe(tmp_path),
        model,
        "dataset.image_size=16",
        "dataset.channels=3",
        "recipe.epochs=1",
        "recipe.batch_size=128",
        "callbacks=[]",
        "--run-dir",
        run,
    )
    assert result.exit_code == 0, result.err
    assert pixels(run / "samples" / "reconstructions_00000011.png").shape == (8 * 18 + 2, 8 * 18 + 2, 3)


# --- a run, its artefacts, and what it offers ------------------------------------------------


@pytest.mark.slow
def test_run_writes_checkpoints_scalars_and_the_held_out_elbo(trained):
    names = [p.name for p in checkpoints_in(trained / "checkpoints")]
    assert names == ["checkpoint_88.pt", "checkpoint_80.pt", "checkpoint_70.pt"]
    assert list((trained / "checkpoints").glob("best_checkpoint_*_eval-negative-elbo=*.pt"))
    data = load_checkpoint(trained / "checkpoints" / "checkpoint_88.pt")
    assert set(data) >= {"encoder", "decoder", "optimizer", "trainer", "rng", "meta", "stats"}
    assert data["meta"]["recipe"] == "vae" and data["meta"]["model"] == "mlp-vae"

    records = log_lines(trained)
    steps = [r for r in records if r["kind"] == "step"]
    assert steps and all(r["iteration"] % 5 == 0 and set(NAMES) <= set(r) for r in steps)
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2] and all(set(NAMES) <= set(r) for r in epochs)
    assert all(r["beta"] == 1.0 and r["kl"] > 0 for r in epochs)
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["epoch"] for r in evals] == [1, 2]
    assert all(math.isfinite(r["negative-elbo"]) and r["negative-elbo"] > 0 for r in evals)
    assert (
        evals[1]["protocol"]["negative-elbo"]["split"] == "test"
        and evals[1]["protocol"]["negative-elbo"]["count"] == 360
    )


def test_run_draws_reconstructions_interpolations_and_the_builtin_artefacts(trained):
    samples = trained / "samples"
    assert sorted(p.name for p in samples.glob("reconstructions_*.png")) == [
        "reconstructions_00000044.png",
        "reconstructions_00000088.png",
    ]
    assert sorted(p.name for p in samples.glob("grid_*.png")) == ["grid_00000044.png", "grid_00000088.png"]
    for name in ("progress.gif", "losses.png", "real.png", "interpolation.png"):
        assert (samples / name).is_file(), name
    grid = gray(samples / "reconstructions_00000088.png")
    assert grid.shape == (8 * 10 + 2, 8 * 10 + 2)  # 32 held-out digits and their 32 reconstructions
    from dltoolkit.builtin.datasets import ImageDatasetConfig, digits

    first_test_digit = to_uint8(digits(ImageDatasetConfig(), split="test")[0][0])[0].numpy()
    assert np.array_equal(grid[2:10, 2:10], first_test_digit)  # odd rows: the held-out images themselves
    assert not np.array_equal(grid[12:20, 2:10], first_test_digit)  # the row below: its reconstruction
    strip = gray(samples / "interpolation.png")
    assert strip.shape == (6 * 10 + 2, 12 * 10 + 2)  # 6 pairs: a, 10 steps, b
    assert np.array_equal(strip[2:10, 2:10], first_test_digit)


@pytest.mark.slow
def test_eval_command_gives_the_elbo_logged_by_the_run(trained, dltk, tmp_path):
    result = dltk("eval", trained, "--json", tmp_path / "scores.json")
    assert result.exit_code == 0, result.err
    scores = json.loads((tmp_path / "scores.json").read_text())
    last = [r for r in log_lines(trained) if r["kind"] == "eval"][-1]
    assert scores["negative-elbo"]["value"] == pytest.approx(
        last["negative-elbo"], rel=1e-6
    )  # the best checkpoint is the last
    assert "elbo" in result.out and "Bernoulli decoder" in result.out


@pytest.mark.slow
def test_generate_from_the_run_and_from_its_export_agree(trained, dltk, tmp_path):
    result = dltk("generate", trained, "--num", "64", "--grid", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.err
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == [f"{i:04d}.png" for i in range(64)] + ["grid.png"]
    assert dltk("export", trained, "--out", tmp_path / "f.safetensors").exit_code == 0
    from safetensors import safe_open

    with safe_open(str(tmp_path / "f.safetensors"), framework="pt") as handle:
        meta, keys = handle.metadata(), list(handle.keys())
    assert meta["recipe"] == "vae" and json.loads(meta["modules"]) == ["encoder", "decoder"]
    assert {k.split(".")[0] for k in keys} == {"encoder", "decoder"}
    result = dltk("generate", tmp_path / "f.safetensors", "--num", "64", "--grid", "--out", tmp_path / "export")
    assert result.exit_code == 0, result.err
    for name in files:
        assert np.array_equal(pixels(tmp_path / "run" / name), pixels(tmp_path / "export" / name)), name


@pytest.mark.slow
def test_kl_warmup_changes_the_weight(dltk, tmp_path):
    run = tmp_path / "run"
    result = dltk(
        "run", write_recipe(tmp_path), "recipe.epochs=1", "recipe.kl_warmup_epochs=2", "callbacks=[]", "--run-dir", run
    )
    assert result.exit_code == 0, result.err
    betas = [r["beta"] for r in log_lines(run) if r["kind"] == "step"]
    assert betas == sorted(betas) and len(set(betas)) == len(betas)
    assert betas[0] == pytest.approx(2 / 88)  # the mean of 0/88 ... 4/88 over the first 5 iterations
    assert betas[-1] < 0.5  # one epoch of a two-epoch warm-up


@pytest.mark.slow
def test_resume_takes_a_new_learning_rate(trained, dltk, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    result = dltk("run", "--resume", run, "recipe.epochs=3", "recipe.lr=5e-4")
    assert result.exit_code == 0, result.err
    data = load_checkpoint(checkpoints_in(run / "checkpoints")[0])
    assert data["trainer"]["iteration"] == 132 and data["optimizer"]["param_groups"][0]["lr"] == 5e-4


# --- bit-exact resume after SIGKILL ----------------------------------------------------------


def records(run: Path) -> list[dict]:
    """metrics.jsonl without what may differ between two runs: evaluation timings, dataset roots."""
    lines = log_lines(run)
    for line in lines:
        for protocol in line.get("protocol", {}).values():
            protocol.pop("seconds", None)
            protocol["reference"].pop("root", None)
    return lines


def final_state(run: Path) -> dict[str, torch.Tensor]:
    data = load_checkpoint(checkpoints_in(run / "checkpoints")[0])
    state = {}
    for name in ("encoder", "decoder"):
        state.update({f"{name}.{k}": v for k, v in data[name].items()})
    for index, entry in data["optimizer"]["state"].items():
        state.update({f"optimizer.{index}.{k}": v for k, v in entry.items() if isinstance(v, torch.Tensor)})
    state.update({f"stats.{k}": v for k, v in data["stats"].items() if isinstance(v, torch.Tensor)})
    return state


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bit_identical(trained, dltk, tmp_path):
    reference, run = trained, tmp_path / "killed"
    recipe = write_recipe(tmp_path)
    killed = subprocess_run(recipe, run, *ITERATION_CHECKPOINTS, env={"DLTK_FAULT_KILL_AT": "57"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert checkpoints_in(run / "checkpoints")[0].name == "checkpoint_50.pt"
    result = dltk("run", "--resume", run)
    assert result.exit_code == 0, result.err

    left, right = final_state(reference), final_state(run)
    assert left.keys() == right.keys()
    assert not [k for k in left if not torch.equal(left[k], right[k])]
    assert records(run) == records(reference)  # the same losses and held-out ELBO, nothing twice
    for name in ("reconstructions_00000044.png", "reconstructions_00000088.png", "interpolation.png"):
        assert np.array_equal(pixels(reference / "samples" / name), pixels(run / "samples" / name)), name
