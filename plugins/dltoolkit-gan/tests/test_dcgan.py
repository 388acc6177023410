"""DCGAN: shapes for every size and channel count, DCGAN's initialisation, the main recipe on a
tiny CIFAR-10 in the real format, training on a folder of images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from dltoolkit import DltkError
from dltoolkit.testing import use_cifar10_checksums, write_cifar10, write_image_folder
from dltoolkit_gan import DcganConfig, dcgan

ROOT = Path(__file__).resolve().parents[3]  # the repository


@pytest.mark.parametrize("size", [16, 32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_generator_and_discriminator_shapes(size, channels):
    model = dcgan(DcganConfig(latent_dim=10, base_channels=4), image_shape=(channels, size, size))
    z = torch.randn(2, 10)
    images = model.generator(z)
    assert images.shape == (2, channels, size, size)
    assert images.min() >= -1 and images.max() <= 1
    assert model.discriminator(images).shape == (2,)
    convs = [m for m in model.generator.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(convs) == int(torch.log2(torch.tensor(size))) - 1  # the depth follows the size


def test_architecture_follows_radford_et_al():
    model = dcgan(DcganConfig(), image_shape=(3, 64, 64))
    d_layers = list(model.discriminator.net)
    assert isinstance(d_layers[0], nn.Conv2d) and isinstance(d_layers[1], nn.LeakyReLU)  # no BN on D's first layer
    assert all(m.negative_slope == 0.2 for m in d_layers if isinstance(m, nn.LeakyReLU))
    assert not any(isinstance(m, nn.Sigmoid) for m in model.discriminator.modules())  # logits
    assert isinstance(list(model.generator.net)[-1], nn.Tanh)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.generator.modules())
    weights = torch.cat([m.weight.flatten() for m in model.generator.modules() if isinstance(m, nn.ConvTranspose2d)])
    assert abs(weights.mean()) < 0.002 and 0.018 < weights.std() < 0.022
    bn = [m for m in model.generator.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(m.bias, torch.zeros_like(m.bias)) for m in bn)
    assert 0.97 < torch.cat([m.weight for m in bn]).mean() < 1.03


def test_size_mismatches_are_explained():
    with pytest.raises(DltkError) as info:
        dcgan(DcganConfig(image_size=64, channels=3), image_shape=(1, 28, 28))
    assert info.value.problems == (
        "model: dcgan needs square images of 16, 32, 64 or 128 pixels, the dataset gives 28x28; "
        "set dataset.image_size (for example 32 or 64)",
        "model.image_size: 64 but the dataset gives 28x28 images; set dataset.image_size = 64",
        "model.channels: 3 but the dataset gives 1-channel images; set dataset.channels = 3",
    )


@pytest.mark.slow
def test_main_recipe_two_iterations_on_real_format_cifar10(dltk, tmp_path):
    sums = write_cifar10(tmp_path / "data", per_batch=52, n_test=4)  # 260 images: 2 batches of 128
    with use_cifar10_checksums(sums):
        result = dltk(
            "run",
            ROOT / "recipes" / "dcgan_cifar10.toml",
            "recipe.epochs=1",
            "dataset.download=false",
            f"dataset.root={tmp_path / 'data'}",
            "recipe.log_every=1",
            "metrics=[]",
            "checkpoint.best_by=loss_g",
            "--run-dir",
            tmp_path / "run",
        )
    assert result.exit_code == 0, result.err
    run = tmp_path / "run"
    steps = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"step"' in x]
    assert [s["iteration"] for s in steps] == [1, 2]
    samples = run / "samples"
    assert (samples / "grid_00000002.png").is_file() and (samples / "real.png").is_file()
    assert (samples / "progress.gif").is_file() and (samples / "losses.png").is_file()
    assert (run / "checkpoints" / "checkpoint_2.pt").is_file()
    assert list((run / "tb").glob("events.out.tfevents.*"))
    from PIL import Image

    with Image.open(samples / "grid_00000002.png") as grid:
        assert grid.size == (8 * 66 + 2, 8 * 66 + 2)  # 64 images of 64x64 with 2-pixel padding


@pytest.mark.slow
def test_train_on_a_folder_of_images(dltk, tmp_path):
    write_image_folder(tmp_path / "mine", n=10, size=(40, 24))
    result = dltk(
        "run",
        ROOT / "recipes" / "dcgan_cifar10.toml",
        "dataset.name=image-folder",
        f"dataset.root={tmp_path / 'mine'}",
        "dataset.image_size=16",
        "model.image_size=16",
        "model.base_channels=8",
        "recipe.batch_size=4",
        "recipe.epochs=1",
        "metrics=[]",
        "checkpoint.best_by=loss_g",
        "--run-dir",
        tmp_path / "run",
    )
    assert result.exit_code == 0, result.err
    assert (tmp_path / "run" / "checkpoints" / "checkpoint_2.pt").is_file()
    with __import__("PIL.Image").Image.open(tmp_path / "run" / "samples" / "real.png") as real:
        assert real.mode == "RGB"
