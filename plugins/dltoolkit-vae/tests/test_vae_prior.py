"""The VAE's mixture prior (issue 24, item 2): the EM fit on hand-made clusters, the noise-to-code
map on hand-computed values, its options refused in one line each, and a run whose checkpoints and
export carry the prior fitted to their own weights, so `dltk generate` from either agrees."""

from __future__ import annotations

import json
import math
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from runs import ITERATION_CHECKPOINTS, subprocess_run

from dltoolkit._checkpoint import checkpoints_in, load_checkpoint
from dltoolkit_vae import MixturePrior, fit_mixture
from dltoolkit_vae.prior import Mixture

MIXTURE_VAE = """
seed = 1

[run]
dir = "{runs}"
device = "cpu"
threads = 1  # the in-process reference and the killed process add in the same order

[recipe]
name = "vae"
epochs = 2
batch_size = 32
log_every = 5
prior = "mixture"
prior_components = 4

[model]
name = "mlp-vae"
latent_dim = 3
hidden_dim = 16
depth = 1

[dataset]
name = "digits"

[[metrics]]
name = "negative-elbo"

[[callbacks]]
name = "samples"

[checkpoint]
every = 1
keep = 2
best_by = "eval/negative-elbo"
"""

MEANS = torch.tensor([[0.0, 0.0], [6.0, 0.0], [0.0, 8.0]])
COVARIANCES = torch.tensor([[[1.0, 0.5], [0.5, 1.0]], [[0.3, 0.0], [0.0, 2.0]], [[1.0, -0.8], [-0.8, 1.0]]])
COUNTS = (300, 600, 900)


def write_recipe(folder: Path) -> Path:
    path = folder / "mixture_vae.toml"
    path.write_text(MIXTURE_VAE.format(runs=(folder / "runs").as_posix()), encoding="utf-8")
    return path


def clusters(seed: int = 0) -> torch.Tensor:
    """1,800 points from three Gaussians of known means, covariances and weights 1/6, 1/3, 1/2."""
    generator = torch.Generator().manual_seed(seed)
    parts = [
        mean + torch.randn(count, 2, generator=generator) @ torch.linalg.cholesky(cov).T
        for mean, cov, count in zip(MEANS, COVARIANCES, COUNTS, strict=True)
    ]
    return torch.cat(parts)


def matched(mixture: Mixture) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fitted ``(weights, means, covariances)`` in the order of ``MEANS`` (nearest mean)."""
    order = torch.cdist(MEANS, mixture.means).argmin(dim=1)
    assert sorted(order.tolist()) == [0, 1, 2]  # one fitted component per cluster
    tril = mixture.scale_tril[order]
    return mixture.weights[order], mixture.means[order], tril @ tril.transpose(1, 2)


# --- the fit ----------------------------------------------------------------------------------


def test_full_mixture_recovers_hand_made_clusters():
    mixture = fit_mixture(clusters(), 3, covariance="full", seed=0)
    weights, means, covariances = matched(mixture)
    assert weights.tolist() == pytest.approx([1 / 6, 1 / 3, 1 / 2], abs=0.01)
    assert torch.allclose(means, MEANS, atol=0.15)
    assert torch.allclose(covariances, COVARIANCES, atol=0.2)


def test_diagonal_mixture_recovers_the_variances_and_no_correlation():
    mixture = fit_mixture(clusters(), 3, covariance="diagonal", seed=0)
    weights, means, covariances = matched(mixture)
    assert weights.tolist() == pytest.approx([1 / 6, 1 / 3, 1 / 2], abs=0.01)
    assert torch.allclose(means, MEANS, atol=0.15)
    assert torch.allclose(covariances.diagonal(dim1=1, dim2=2), COVARIANCES.diagonal(dim1=1, dim2=2), atol=0.2)
    assert (covariances - torch.diag_embed(covariances.diagonal(dim1=1, dim2=2))).abs().max() == 0


def test_the_fit_is_deterministic_and_raises_the_likelihood_over_one_gaussian():
    x = clusters()
    first, again = fit_mixture(x, 3, seed=5), fit_mixture(x, 3, seed=5)
    assert all(torch.equal(a, b) for a, b in zip(attrs_of(first), attrs_of(again), strict=True))
    one = fit_mixture(x, 1)
    assert torch.allclose(one.means[0], x.mean(dim=0), atol=1e-5)
    assert float(first.log_prob(x).mean()) > float(one.log_prob(x).mean()) + 0.5


def attrs_of(mixture: Mixture) -> tuple[torch.Tensor, ...]:
    return mixture.weights, mixture.means, mixture.scale_tril


def test_more_components_than_codes_or_another_covariance_is_refused():
    with pytest.raises(ValueError, match="components must be from 1 to the 2 codes, got 3"):
        fit_mixture(torch.zeros(2, 2), 3)
    with pytest.raises(ValueError, match="covariance must be 'full' or 'diagonal'"):
        fit_mixture(torch.zeros(2, 2), 1, covariance="spherical")


# --- noise to codes ---------------------------------------------------------------------------


def test_mixture_prior_picks_components_by_the_first_noise_number_on_hand_values():
    prior = MixturePrior(2, 2)
    assert prior.noise_dim == 3
    tril = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [1.0, 0.5]]])
    prior.set(Mixture(torch.tensor([0.25, 0.75]), torch.tensor([[-5.0, 0.0], [5.0, 1.0]]), tril))
    # Phi(-2) = 0.023 < 0.25: component 0; Phi(0) = 0.5 and Phi(1) = 0.84 >= 0.25: component 1
    noise = torch.tensor([[-2.0, 1.0, 2.0], [0.0, 1.0, 2.0], [1.0, -1.0, 0.0]])
    codes = prior(noise)
    expected = torch.tensor([[-5.0 + 1.0, 0.0 + 2.0], [5.0 + 2.0, 1.0 + 1.0 + 1.0], [5.0 - 2.0, 1.0 - 1.0]])
    assert torch.allclose(codes, expected)
    assert math.isclose(float(torch.special.ndtr(torch.tensor(-2.0))), 0.02275, abs_tol=1e-5)


def test_an_unfitted_prior_is_the_standard_normal():
    prior = MixturePrior(3, 4)
    noise = torch.randn(5, 5)
    assert torch.equal(prior(noise), noise[:, 1:])


def test_samples_follow_the_mixture():
    x = clusters()
    prior = MixturePrior(3, 2)
    prior.set(fit_mixture(x, 3, seed=0))
    z = prior(torch.randn(20_000, 3, generator=torch.Generator().manual_seed(1)))
    assert torch.allclose(z.mean(dim=0), x.mean(dim=0), atol=0.1)
    assert torch.allclose(torch.cov(z.T), torch.cov(x.T), rtol=0.05)


# --- options ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("recipe.prior=gaussian", "recipe.prior: must be one of ('normal', 'mixture'), got 'gaussian'"),
        ("recipe.prior_components=0", "recipe.prior_components: must be >= 1, got 0"),
        (
            "recipe.prior_covariance=spherical",
            "recipe.prior_covariance: must be one of ('full', 'diagonal'), got 'spherical'",
        ),
        (
            "recipe.prior_components=5",
            "recipe.prior_components: applies to the mixture prior, and recipe.prior is 'normal'; set "
            'recipe.prior = "mixture" or remove recipe.prior_components',
        ),
    ],
)
def test_bad_prior_options_are_one_line_each(dltk, tmp_path, override, message):
    recipe = write_recipe(tmp_path)
    extra = ["recipe.prior=normal"] if override.startswith("recipe.prior_components=5") else []
    result = dltk("check", recipe, *extra, override)
    assert (result.exit_code, result.err_lines) == (2, [f"{recipe}: {message}"])


@pytest.mark.slow
def test_more_components_than_training_images_is_refused_before_building(dltk, tmp_path):
    recipe = write_recipe(tmp_path)
    result = dltk("run", recipe, "recipe.prior_components=2000", "--run-dir", tmp_path / "run")
    assert (result.exit_code, result.err_lines) == (
        2,
        [
            f"{recipe}: recipe.prior_components: 2000 components for the 1437 training images' codes; lower it",
        ],
    )


# --- a run: checkpoints, export, generate, resume ----------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny MLP VAE with a 4-component mixture prior, 2 epochs, checkpoints every 10 iterations."""
    from dltoolkit.testing import run_cli

    folder = tmp_path_factory.mktemp("vae-prior")
    result = run_cli("run", write_recipe(folder), *ITERATION_CHECKPOINTS, "--run-dir", folder / "run")
    assert result.exit_code == 0, result.err
    return folder / "run"


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image).copy()


@pytest.mark.slow
def test_each_checkpoint_holds_the_mixture_of_its_own_codes(trained):
    from dltoolkit.builtin.datasets import ImageDatasetConfig, digits
    from dltoolkit_vae import MlpVaeConfig, mlp_vae

    data = load_checkpoint(checkpoints_in(trained / "checkpoints")[0])
    assert json.loads(data["meta"]["modules"]) == ["encoder", "decoder", "prior"]
    model = mlp_vae(MlpVaeConfig(latent_dim=3, hidden_dim=16, depth=1), image_shape=(1, 8, 8))
    model.encoder.load_state_dict(data["encoder"])
    dataset = digits(ImageDatasetConfig(), split="train")
    with torch.no_grad():
        codes = model.encoder(dataset.__getitems__(list(range(len(dataset))))[0])[0]
    expected = fit_mixture(codes, 4, covariance="full", seed=1)
    assert torch.allclose(data["prior"]["means"], expected.means, atol=1e-5)
    assert torch.allclose(data["prior"]["weights"], expected.weights, atol=1e-6)
    assert torch.allclose(data["prior"]["scale_tril"], expected.scale_tril, atol=1e-5)
    assert not torch.equal(data["prior"]["scale_tril"], torch.eye(3).repeat(4, 1, 1))  # fitted, not the default


@pytest.mark.slow
def test_generate_from_the_run_and_from_its_export_agree(trained, dltk, tmp_path):
    result = dltk("generate", trained, "--num", "32", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.err
    again = dltk("generate", trained, "--num", "32", "--out", tmp_path / "again")
    assert again.exit_code == 0, again.err
    assert dltk("export", trained, "--out", tmp_path / "f.safetensors").exit_code == 0
    from safetensors import safe_open

    with safe_open(str(tmp_path / "f.safetensors"), framework="pt") as handle:
        meta, keys = handle.metadata(), list(handle.keys())
    assert json.loads(meta["modules"]) == ["encoder", "decoder", "prior"]
    assert {"prior.weights", "prior.means", "prior.scale_tril"} <= set(keys)
    result = dltk("generate", tmp_path / "f.safetensors", "--num", "32", "--out", tmp_path / "export")
    assert result.exit_code == 0, result.err
    other = dltk("generate", trained, "--num", "32", "--seed", "1", "--out", tmp_path / "seed1")
    assert other.exit_code == 0, other.err
    names = [f"{i:04d}.png" for i in range(32)]
    for name in names:
        run = pixels(tmp_path / "run" / name)
        assert np.array_equal(run, pixels(tmp_path / "again" / name)), name  # the same seed, the same samples
        assert np.array_equal(run, pixels(tmp_path / "export" / name)), name
    assert any(not np.array_equal(pixels(tmp_path / "run" / n), pixels(tmp_path / "seed1" / n)) for n in names)


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_same_weights_and_prior(trained, dltk, tmp_path):
    run = tmp_path / "killed"
    killed = subprocess_run(write_recipe(tmp_path), run, *ITERATION_CHECKPOINTS, env={"DLTK_FAULT_KILL_AT": "57"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    result = dltk("run", "--resume", run)
    assert result.exit_code == 0, result.err
    left = load_checkpoint(checkpoints_in(trained / "checkpoints")[0])
    right = load_checkpoint(checkpoints_in(run / "checkpoints")[0])
    for name in ("encoder", "decoder", "prior"):
        assert left[name].keys() == right[name].keys()
        assert all(torch.equal(left[name][k], right[name][k]) for k in left[name]), name
