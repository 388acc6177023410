import contextlib
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

import dltoolkit
from dltoolkit.testing import (
    use_cifar10_checksums,
    write_cifar10,
    write_image_folder,
    write_mnist,
)
from dltoolkit_example.datasets import NpzImagesConfig, npz_images
from dltoolkit_example.kmnist import KmnistConfig, kmnist

EXAMPLE = ("dltoolkit-example", "0.4.0", {"example": "dltoolkit_example"})
GAN = ("dltoolkit-gan", "0.1.0", {"gan": "dltoolkit_gan.plugin"})


def test_npz_dataset_splits_never_share_an_image(tmp_path):
    path = tmp_path / "faces.npz"
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1).repeat(12, 1).repeat(10, 2)
    np.savez(path, images=images, labels=np.arange(10))
    config = NpzImagesConfig(path=str(path), test_fraction=0.2)
    train, test = npz_images(config), npz_images(config, split="test")
    assert (len(train), len(test)) == (8, 2)
    assert train.spec == dltoolkit.DataSpec.images((1, 12, 10), num_classes=10)
    train_labels = {int(train[i][1]) for i in range(len(train))}
    assert train_labels.isdisjoint(int(test[i][1]) for i in range(len(test)))
    image, _ = train[0]
    assert image.dtype == torch.float32 and -1.0 <= image.min() <= image.max() <= 1.0


def test_npz_dataset_missing_file(tmp_path):
    with pytest.raises(dltoolkit.DltkError, match=r"^dataset.path: '.*nope.npz' not found: "):
        npz_images(NpzImagesConfig(path=str(tmp_path / "nope.npz")))


def test_kmnist_reads_real_idx_files(tmp_path):
    write_mnist(tmp_path, n_train=20, n_test=6, folder="KMNIST")  # same IDX layout as MNIST
    train = kmnist(KmnistConfig(root=str(tmp_path)))
    assert len(train) == 20 and train.spec.kind == "images" and train.spec.shape == (1, 28, 28)
    assert len(kmnist(KmnistConfig(root=str(tmp_path)), split="test")) == 6


def test_kmnist_missing_files_say_where(tmp_path):
    with pytest.raises(dltoolkit.DltkError) as info:
        kmnist(KmnistConfig(root=str(tmp_path / "nowhere")))
    assert info.value.problems == (
        f"dataset.root: KMNIST not found in '{tmp_path / 'nowhere'}': put KMNIST/raw/*-ubyte there",
    )


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist", "cifar10", "image-folder"])
def test_model_trains_on_every_builtin_loader(dltk, fake_plugins, recipe_file, tmp_path, dataset):
    fake_plugins(EXAMPLE, GAN)
    root = tmp_path / "data"
    sums = {}
    if dataset == "mnist":
        write_mnist(root, n_train=32)
    elif dataset == "fashion-mnist":
        write_mnist(root, n_train=32, folder="FashionMNIST")
    elif dataset == "cifar10":
        sums = write_cifar10(root, per_batch=8)  # 5 batches of 8 training images
    else:
        write_image_folder(root, n=20)  # 18 training images, 2 held out (test_fraction 0.1)
    path = recipe_file(f"""
[run]
device = "cpu"
[recipe]
name = "gan"
epochs = 1
batch_size = 8
[model]
name = "tiny-gan"
width = 8
[dataset]
name = "{dataset}"
root = "{root.as_posix()}"
image_size = 16
""")
    with use_cifar10_checksums(sums) if sums else contextlib.nullcontext():
        result = dltk("run", path, "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.err
    # one epoch over every training image (the last partial batch dropped), losses that are numbers,
    # and a generator that draws images of the loader's size and channels
    run = tmp_path / "run"
    steps = {"mnist": 32 // 8, "fashion-mnist": 32 // 8, "cifar10": 40 // 8, "image-folder": 18 // 8}[dataset]
    assert (run / "checkpoints" / f"checkpoint_{steps}.pt").is_file()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    (epoch,) = [r for r in records if r["kind"] == "epoch"]
    assert epoch["iteration"] == steps and math.isfinite(epoch["loss_d"]) and math.isfinite(epoch["loss_g"])
    generated = dltk("generate", run, "--num", "2", "--out", tmp_path / "drawn")
    assert generated.exit_code == 0, generated.err
    with Image.open(tmp_path / "drawn" / "0001.png") as image:
        channels = 1 if dataset in ("mnist", "fashion-mnist") else 3
        assert image.size == (16, 16) and len(image.getbands()) == channels
