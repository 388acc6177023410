"""Self-conditioned GANs (``model.clusters``): k-means on the training images, training on the
clusters instead of labels, sampling by the clusters' shares, and checkpoints and exports that
carry those shares."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dltoolkit._checkpoint import checkpoints_in, load_checkpoint
from dltoolkit_gan.clusters import ClusterLabelled, ClusterShares, kmeans, pooled_images
from runs import ITERATION_CHECKPOINTS, subprocess_run

SELF_CONDITIONED = ["model.clusters=4", "run.threads=1"]


def _blobs() -> tuple[torch.Tensor, torch.Tensor]:
    """Three tight groups of 2-d points around (0, 0), (10, 0) and (0, 10), of 5, 7 and 9 points."""
    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    truth = torch.tensor([0] * 5 + [1] * 7 + [2] * 9)
    return centres[truth] + 0.1 * torch.randn(len(truth), 2, generator=generator), truth


def test_kmeans_finds_separated_groups_whatever_their_order():
    x, truth = _blobs()
    found = kmeans(x, 3, seed=0)
    # the same partition up to the clusters' numbering: each group is one cluster, and no two share one
    assert sorted({(int(t), int(f)) for t, f in zip(truth, found, strict=True)}) == sorted(
        {(g, int(found[truth == g][0])) for g in range(3)}
    )
    assert len(set(found.tolist())) == 3
    shuffled = torch.randperm(len(x), generator=torch.Generator().manual_seed(1))
    again = kmeans(x[shuffled], 3, seed=5)
    for g in range(3):
        assert len(set(again[truth[shuffled] == g].tolist())) == 1


def test_kmeans_is_seeded_and_leaves_the_global_rng_alone():
    x = torch.randn(200, 5, generator=torch.Generator().manual_seed(2))
    before = torch.random.get_rng_state()
    a, b = kmeans(x, 6, seed=3), kmeans(x, 6, seed=3)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert torch.equal(a, b)
    # a Lloyd fixed point: every row is nearest to the mean of its own cluster
    centres = torch.stack([x[a == j].mean(0) for j in range(6)])
    assert torch.equal(torch.cdist(x.double(), centres.double()).argmin(1), a)


@pytest.mark.parametrize(
    ("rows", "k"),
    [
        ([[0.0], [0.0], [0.0], [1.0], [1.0], [5.0]], 4),  # three distinct values, four clusters
        ([[0.0], [0.0], [0.0], [0.0], [1.0], [1.0]], 4),  # two values: two clusters start empty, no distance
        ([[2.0]] * 5, 5),  # one value, as many clusters as rows
    ],
)
def test_kmeans_keeps_every_cluster_when_points_repeat(rows, k):
    x = torch.tensor(rows)
    for seed in range(4):
        counts = torch.bincount(kmeans(x, k, seed=seed), minlength=k)
        assert counts.min() >= 1 and counts.sum() == len(x), (seed, counts.tolist())


def test_kmeans_refuses_more_clusters_than_rows():
    x = torch.tensor([[0.0], [0.0], [0.0], [1.0], [1.0], [5.0]])
    with pytest.raises(ValueError, match=r"k-means of 6 images into 7 clusters: k must be in \[1, 6\]"):
        kmeans(x, 7, seed=0)


def test_shares_draw_each_cluster_in_proportion_in_contiguous_blocks():
    shares = ClusterShares(3)
    shares.set(torch.tensor([0, 0, 0, 0, 1, 1, 2, 2]))
    assert shares.shares.tolist() == [0.5, 0.25, 0.25]
    assert shares.labels(8).tolist() == [0, 0, 0, 0, 1, 1, 2, 2]
    assert torch.bincount(shares.labels(1000), minlength=3).tolist() == [500, 250, 250]


def test_images_are_pooled_to_sixteen_pixels_a_side_before_clustering():
    from dltoolkit.data import InMemoryImages

    images = torch.zeros(3, 1, 32, 32, dtype=torch.uint8)
    images[1, :, :16] = 255  # top half white
    pooled = pooled_images(InMemoryImages(images))
    assert pooled.shape == (3, 256)
    assert pooled[1].view(16, 16)[:8].eq(1).all() and pooled[1].view(16, 16)[8:].eq(-1).all()
    labelled = ClusterLabelled(InMemoryImages(images), torch.tensor([2, 0, 1]))
    batch, labels = labelled.__getitems__([2, 0])
    assert labels.tolist() == [1, 2] and batch.shape == (2, 1, 32, 32)


# --- a run ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_gan_text) -> Path:
    """A tiny self-conditioned MLP GAN (4 clusters) on the digits, 2 epochs, checkpoints every 10 iterations."""
    from dltoolkit.testing import run_cli

    folder = tmp_path_factory.mktemp("self-conditioned")
    recipe = folder / "tiny.toml"
    recipe.write_text(tiny_gan_text.format(runs=folder.as_posix()))
    result = run_cli("run", recipe, *SELF_CONDITIONED, *ITERATION_CHECKPOINTS, "--run-dir", folder / "run")
    assert result.exit_code == 0, result.err
    return folder / "run"


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image).copy()


def test_a_run_trains_on_the_kmeans_clusters_of_its_images(trained):
    from dltoolkit.builtin.datasets import ImageDatasetConfig, digits

    data = load_checkpoint(checkpoints_in(trained / "checkpoints")[0])
    assert json.loads(data["meta"]["modules"]) == ["generator", "clusters"]
    expected = kmeans(pooled_images(digits(ImageDatasetConfig(), split="train")), 4, seed=1)  # the recipe's seed
    assert torch.equal(data["cluster_assignment"]["assignment"], expected)
    counts = torch.bincount(expected, minlength=4).float()
    assert torch.equal(data["clusters"]["shares"], counts / counts.sum())
    assert data["generator"]["net.0.weight"].shape[1] == 8 + 4  # z and the one-hot cluster


def test_generate_from_the_run_and_its_export_agree_and_follow_the_shares(trained, dltk, tmp_path):
    result = dltk("generate", trained, "--num", "16", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.err
    assert dltk("export", trained, "--out", tmp_path / "f.safetensors").exit_code == 0
    from safetensors import safe_open

    with safe_open(str(tmp_path / "f.safetensors"), framework="pt") as handle:
        assert json.loads(handle.metadata()["modules"]) == ["generator", "clusters"]
        assert "clusters.shares" in list(handle.keys())
    result = dltk("generate", tmp_path / "f.safetensors", "--num", "16", "--out", tmp_path / "export")
    assert result.exit_code == 0, result.err
    for i in range(16):
        name = f"{i:04d}.png"
        assert np.array_equal(pixels(tmp_path / "run" / name), pixels(tmp_path / "export" / name)), name
    from dltoolkit._generate import load_trained
    from dltoolkit._manager import make_plugin_host
    from dltoolkit._registry import Registry

    loaded, _, _ = load_trained(Registry(make_plugin_host([])), trained)
    saved = load_checkpoint(checkpoints_in(trained / "checkpoints")[0])["clusters"]["shares"]
    assert torch.equal(loaded.modules["clusters"].shares, saved)
    assert not torch.equal(saved, torch.full((4,), 0.25))  # the digits' clusters are not of one size
    expected = torch.searchsorted(torch.cumsum(saved.double(), 0), (torch.arange(16) + 0.5) / 16)
    assert torch.equal(loaded.sampler.labels(16), expected)  # rows drawn by the shares, in blocks
    one = dltk("generate", trained, "--num", "4", "--label", "cluster 2", "--out", tmp_path / "one")
    assert one.exit_code == 0, one.err
    drawn = loaded.sampler.generate(loaded.sampler.noise(4, 0, label=2))
    assert torch.equal(loaded.sampler.noise(4, 0, label=2)[:, -1], torch.full((4,), 2.0))
    assert drawn.shape == (4, 1, 8, 8)
    bad = dltk("generate", trained, "--num", "4", "--label", "7", "--out", tmp_path / "bad")
    assert bad.exit_code == 2
    assert "cluster 0" in bad.err


def test_a_loaded_assignment_is_what_the_batches_carry():
    from dltoolkit.data import InMemoryImages
    from dltoolkit_gan.clusters import ClusterAssignment

    assignment = torch.tensor([0, 1, 2, 0])
    labelled = ClusterLabelled(InMemoryImages(torch.zeros(4, 1, 8, 8, dtype=torch.uint8)), assignment)
    saved = ClusterAssignment(assignment)
    saved.load_state_dict({"assignment": torch.tensor([2, 2, 1, 0])})  # what a resume does
    assert labelled.__getitems__([0, 1, 2, 3])[1].tolist() == [2, 2, 1, 0]
    assert labelled[2][1] == 1
    with pytest.raises(Exception, match="the checkpoint's clusters are of 3 images, the dataset has 4"):
        saved.load_state_dict({"assignment": torch.tensor([0, 1, 2])})


@pytest.mark.slow
def test_sigkill_then_resume_trains_on_the_same_clusters_bit_exactly(trained, tiny_gan_text, dltk, tmp_path):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(tiny_gan_text.format(runs=tmp_path.as_posix()))
    run = tmp_path / "killed"
    options = [*SELF_CONDITIONED, *ITERATION_CHECKPOINTS]
    killed = subprocess_run(recipe, run, *options, env={"DLTK_FAULT_KILL_AT": "57"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    result = dltk("run", "--resume", run)
    assert result.exit_code == 0, result.err
    left = load_checkpoint(checkpoints_in(trained / "checkpoints")[0])
    right = load_checkpoint(checkpoints_in(run / "checkpoints")[0])
    for name in ("generator", "discriminator", "clusters", "cluster_assignment"):
        assert left[name].keys() == right[name].keys()
        assert all(torch.equal(left[name][k], right[name][k]) for k in left[name]), name


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.clusters=1"], "model.clusters: must be from 2 to 1000 clusters, or 0 for none, got 1"),
        (["model.clusters=1001"], "model.clusters: must be from 2 to 1000 clusters, or 0 for none, got 1001"),
        (
            ["model.name=cgan", "model.clusters=4"],
            "model.clusters: cgan is conditioned on the dataset's labels; clusters are for the unconditional "
            "models (mlp-gan, dcgan, stylegan2), which they make self-conditioned",
        ),
        (
            ["model.clusters=500", "dataset.split=test"],
            "model.clusters: 500 clusters of 360 training images; use at most 360",
        ),
    ],
)
def test_wrong_clusters_are_one_line_each_before_training(dltk, tiny_gan, tmp_path, overrides, message):
    recipe = tiny_gan()
    result = dltk("run", recipe, *overrides)
    assert (result.exit_code, result.err_lines) == (2, [f"{recipe}: {message}"])
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_the_unconditional_models_build_their_conditional_networks_with_clusters_and_not_with_zero():
    from dltoolkit_gan import DcganConfig, MlpGanConfig, StyleGan2Config, dcgan, mlp_gan
    from dltoolkit_gan.stylegan2 import stylegan2

    for factory, config in (
        (mlp_gan, MlpGanConfig(latent_dim=4, hidden_dim=8, depth=1)),
        (dcgan, DcganConfig(latent_dim=4, base_channels=4)),
        (stylegan2, StyleGan2Config(latent_dim=8, mapping_layers=1, channel_base=64, channel_max=16)),
    ):
        plain = factory(config.__class__(**{**_fields(config), "clusters": 0}), image_shape=(1, 16, 16))
        assert (plain.num_classes, plain.self_conditioned) == (None, False)
        model = factory(config.__class__(**{**_fields(config), "clusters": 5}), image_shape=(1, 16, 16))
        assert (model.num_classes, model.self_conditioned) == (5, True)
        z, labels = torch.randn(2, model.latent_dim), torch.tensor([0, 4])
        images = model.generator(z, labels)
        assert images.shape == (2, 1, 16, 16)
        assert model.discriminator(images, labels).shape[0] == 2


def _fields(config):
    import attrs

    return attrs.asdict(config)


@pytest.mark.slow
def test_two_processes_train_on_rank_zeros_clusters_as_one_process_does(tiny_gan_text, dltk, tmp_path):
    """2 processes x 16 train as 1 x 32 only if rank 1 batches carry the clusters rank 0 found."""
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(tiny_gan_text.format(runs=tmp_path.as_posix()))
    options = [*SELF_CONDITIONED, "recipe.epochs=1"]
    one = dltk("run", recipe, *options, "--run-dir", tmp_path / "one")
    assert one.exit_code == 0, one.err
    two = dltk("run", recipe, *options, "--run-dir", tmp_path / "two", "--nproc-per-node", "2")
    assert two.exit_code == 0, two.err
    left = load_checkpoint(checkpoints_in(tmp_path / "one" / "checkpoints")[0])
    right = load_checkpoint(checkpoints_in(tmp_path / "two" / "checkpoints")[0])
    assert torch.equal(left["cluster_assignment"]["assignment"], right["cluster_assignment"]["assignment"])
    for name in ("generator", "discriminator"):
        for key, value in left[name].items():
            torch.testing.assert_close(value, right[name][key], rtol=1e-4, atol=1e-5, msg=f"{name}.{key}")
