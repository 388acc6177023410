"""Built-in datasets through the real loaders on tiny files in the real formats; the fast loader."""

from __future__ import annotations

import pytest
import torch

from dltoolkit import DataSpec, DltkError
from dltoolkit.builtin.datasets import (
    ImageDatasetConfig,
    ImageFolderConfig,
    cifar10,
    digits,
    digits_split_indices,
    fashion_mnist,
    image_folder,
    mnist,
)
from dltoolkit.data import EpochBatchSampler, InMemoryImages, make_loader
from dltoolkit.testing import use_cifar10_checksums, write_cifar10, write_image_folder, write_mnist


def test_mnist_reads_real_idx_files(tmp_path):
    write_mnist(tmp_path, n_train=20, n_test=6)
    ds = mnist(ImageDatasetConfig(root=str(tmp_path)))
    assert isinstance(ds, InMemoryImages) and len(ds) == 20 and ds.image_shape == (1, 28, 28)
    image, label = ds[0]
    assert image.dtype == torch.float32 and image.min() >= -1 and image.max() <= 1
    assert 0 <= int(label) <= 9
    assert len(mnist(ImageDatasetConfig(root=str(tmp_path), split="test"))) == 6
    resized = mnist(ImageDatasetConfig(root=str(tmp_path), image_size=32, channels=3))
    assert resized.image_shape == (3, 32, 32)


def test_fashion_mnist_reads_its_own_folder(tmp_path):
    write_mnist(tmp_path, n_train=12, folder="FashionMNIST")
    assert fashion_mnist(ImageDatasetConfig(root=str(tmp_path))).image_shape == (1, 28, 28)


def test_cifar10_reads_real_pickles_with_integrity_check(tmp_path):
    sums = write_cifar10(tmp_path, per_batch=4, n_test=3)
    with use_cifar10_checksums(sums):
        ds = cifar10(ImageDatasetConfig(root=str(tmp_path), image_size=64))
        assert len(ds) == 20 and ds.image_shape == (3, 64, 64)
        assert len(cifar10(ImageDatasetConfig(root=str(tmp_path), split="test"))) == 3
    # with torchvision's real checksums, the tiny files are reported as missing/corrupt
    with pytest.raises(DltkError, match=r"dataset.root: CIFAR-10 not found in '.*': put cifar-10-batches-py/"):
        cifar10(ImageDatasetConfig(root=str(tmp_path)))


@pytest.mark.parametrize(
    ("loader", "name"), [(mnist, "MNIST"), (fashion_mnist, "Fashion-MNIST"), (cifar10, "CIFAR-10")]
)
def test_missing_dataset_says_where_and_what(tmp_path, loader, name):
    with pytest.raises(DltkError) as info:
        loader(ImageDatasetConfig(root=str(tmp_path / "nowhere")))
    (line,) = info.value.problems
    assert line.startswith(f"dataset.root: {name} not found in '{tmp_path / 'nowhere'}': put ")
    assert line.endswith("or set dataset.download = true to fetch it")


def test_failed_download_names_dataset_and_root(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tvu

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(tvu, "urlretrieve", offline, raising=False)
    monkeypatch.setattr(tvu, "download_url", offline)
    import torchvision.datasets.cifar as tvc

    monkeypatch.setattr(tvc, "download_and_extract_archive", offline)
    with pytest.raises(DltkError) as info:
        cifar10(ImageDatasetConfig(root=str(tmp_path), download=True))
    (line,) = info.value.problems
    assert line.startswith("dataset.download: could not download CIFAR-10 (OSError: network is unreachable); ")
    assert f"place its files in dataset.root '{tmp_path}'" in line


def test_digits_are_real_and_offline():
    ds = digits(ImageDatasetConfig())
    assert len(ds) == 1437 and ds.image_shape == (1, 8, 8)
    assert set(ds.labels.tolist()) == set(range(10))
    assert ds.images.max() == 255 and ds.images.min() == 0
    assert ds.spec == DataSpec.images((1, 8, 8), class_names=[str(d) for d in range(10)])


def test_digits_test_split_is_held_out_stratified_and_fixed():
    train, test = digits(ImageDatasetConfig()), digits(ImageDatasetConfig(), split="test")
    assert len(test) == 360 and len(train) + len(test) == 1797
    assert torch.bincount(test.labels).tolist() == [36] * 10
    train_set = {
        bytes(img.numpy().tobytes()) + bytes([int(y)]) for img, y in zip(train.images, train.labels, strict=True)
    }
    shared = [
        i
        for i, (img, y) in enumerate(zip(test.images, test.labels, strict=True))
        if img.numpy().tobytes() + bytes([int(y)]) in train_set
    ]
    # sklearn's digits hold a few exact duplicate images; none is the same *sample* index in both splits
    assert len(shared) <= 3
    assert not set(digits_split_indices("train").tolist()) & set(digits_split_indices("test").tolist())
    assert torch.equal(digits(ImageDatasetConfig(), split="test").images, test.images)


def test_every_builtin_dataset_has_disjoint_splits(tmp_path):
    write_mnist(tmp_path, n_train=20, n_test=7)
    write_mnist(tmp_path, n_train=20, n_test=7, folder="FashionMNIST")
    for factory in (mnist, fashion_mnist):
        train, test = (
            factory(ImageDatasetConfig(root=str(tmp_path))),
            factory(ImageDatasetConfig(root=str(tmp_path)), "test"),
        )
        assert (len(train), len(test)) == (20, 7)
    sums = write_cifar10(tmp_path, per_batch=4, n_test=5)
    with use_cifar10_checksums(sums):
        assert (
            len(cifar10(ImageDatasetConfig(root=str(tmp_path)))),
            len(cifar10(ImageDatasetConfig(root=str(tmp_path)), "test")),
        ) == (20, 5)
    # image-folder without train/ and test/: a fixed tenth of the files is held out
    files = write_image_folder(tmp_path / "mine", n=20)
    config = ImageFolderConfig(root=str(tmp_path / "mine"), image_size=8)
    train, test, every = (image_folder(config, s) for s in ("train", "test", "all"))
    assert (len(train), len(test), len(every)) == (18, 2, 20)
    assert not set(train.files) & set(test.files) and set(train.files) | set(test.files) == set(files)
    assert image_folder(config, "test").files == test.files
    # with train/ and test/ folders those are the splits, and class sub-folders give labels
    for split, n in (("train", 4), ("test", 2)):
        for label in ("cat", "dog"):
            write_image_folder(tmp_path / "pets" / split / label, n=n, seed=n)
    pets = ImageFolderConfig(root=str(tmp_path / "pets"), image_size=8)
    train, test = image_folder(pets, "train"), image_folder(pets, "test")
    assert (len(train), len(test)) == (8, 4) and not set(train.files) & set(test.files)
    assert train.spec.class_names == ("cat", "dog") and sorted(int(train[i][1]) for i in range(8)) == [0] * 4 + [1] * 4


def test_image_folder_png_jpeg_gray_and_rgb(tmp_path):
    write_image_folder(tmp_path / "imgs", n=6)
    ds = image_folder(ImageFolderConfig(root=str(tmp_path / "imgs"), image_size=16, split="all"))
    assert len(ds) == 6 and ds.image_shape == (3, 16, 16)
    image, _ = ds[3]  # a grayscale file converted to RGB
    assert image.shape == (3, 16, 16) and image.min() >= -1 and image.max() <= 1
    gray = image_folder(ImageFolderConfig(root=str(tmp_path / "imgs"), image_size=8, channels=1, split="all"))
    assert gray[0][0].shape == (1, 8, 8)


def test_image_folder_errors_name_the_folder_or_file(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DltkError, match=r"dataset.root: no images \(.png, .jpg, .jpeg, .webp, .bmp\) under '.*empty'"):
        image_folder(ImageDatasetConfig(root=str(tmp_path / "empty")))
    bad = tmp_path / "bad"
    write_image_folder(bad, n=2)
    (bad / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(DltkError, match=r"dataset.root: cannot read image '.*broken.png'"):
        image_folder(ImageDatasetConfig(root=str(bad)))


def test_sampler_order_depends_on_seed_and_epoch_only():
    a = EpochBatchSampler(100, 10, seed=3)
    b = EpochBatchSampler(100, 10, seed=3)
    assert torch.equal(a.order(2), b.order(2))
    assert not torch.equal(a.order(1), a.order(2))
    batches = list(a)
    assert len(batches) == 10 and torch.equal(torch.cat(batches).sort().values, torch.arange(100))
    a.skip = 7
    assert [t.tolist() for t in a] == [t.tolist() for t in batches[7:]]


def test_sampler_shards_and_drop_last():
    shards = [EpochBatchSampler(10, 5, seed=0, rank=r, world_size=2) for r in range(2)]
    seen = torch.cat([torch.cat(list(s)) for s in shards])
    assert sorted(seen.tolist()) == list(range(10))
    assert len(EpochBatchSampler(10, 3, seed=0)) == 3
    assert len(EpochBatchSampler(10, 3, seed=0, drop_last=False)) == 4


def test_in_memory_loader_yields_float_batches():
    ds = InMemoryImages(torch.randint(0, 256, (50, 1, 8, 8), dtype=torch.uint8), torch.arange(50))
    loader = make_loader(ds, 16, seed=0)
    batches = list(loader)
    assert len(batches) == 3
    images, labels = batches[0]
    assert images.shape == (16, 1, 8, 8) and images.dtype == torch.float32 and labels.shape == (16,)
    assert torch.equal(images, ds.__getitems__(labels)[0])


def test_a_failed_mnist_download_is_one_line_and_leaves_no_empty_folders(tmp_path, monkeypatch):
    """torchvision's MNIST tries each mirror and raises one multi-line RuntimeError; it made
    data/MNIST/raw first (user trial: four lines with literal newlines, empty folders left)."""
    from urllib.error import URLError

    import torchvision.datasets.mnist as tvm

    from dltoolkit.builtin.datasets import mnist

    def offline(url, *args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tvm, "download_and_extract_archive", offline)
    (tmp_path / "kept").mkdir()  # what was there before stays
    root = tmp_path / "new" / "data"  # its parent is made too, and goes too
    with pytest.raises(DltkError) as info:
        mnist(ImageDatasetConfig(root=str(root), download=True))
    (line,) = info.value.problems
    assert "\n" not in line
    assert line == (
        "dataset.download: could not download MNIST (Error downloading train-images-idx3-ubyte.gz: "
        "<urlopen error [Errno -3] Temporary failure in name resolution>); place its files in dataset.root "
        f"'{root}' (MNIST/raw/{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte) and set download = false"
    )
    assert not (tmp_path / "new").exists() and (tmp_path / "kept").is_dir()


def test_load_torchvision_without_a_download_option_blames_no_download(tmp_path, monkeypatch):
    """A file that cannot be read, with nothing downloaded: dataset.root, not dataset.download."""
    import dltoolkit

    class Unreadable:
        def __init__(self, root, train, download):
            assert download is False
            raise PermissionError(13, "Permission denied", f"{root}/KMNIST/raw/train-images-idx3-ubyte")

    import torchvision.datasets as tvd

    monkeypatch.setattr(tvd, "Unreadable", Unreadable, raising=False)
    with pytest.raises(DltkError) as info:
        dltoolkit.data.load_torchvision("Unreadable", "KMNIST", "KMNIST/raw/*-ubyte", root=str(tmp_path), train=True)
    assert info.value.problems == (
        f"dataset.root: cannot read KMNIST in '{tmp_path}' (PermissionError: [Errno 13] Permission denied: "
        f"'{tmp_path}/KMNIST/raw/train-images-idx3-ubyte')",
    )
