"""Validation covers what would fail later, `dltk check` rejects what `dltk run` rejects, and inputs
that ask for more memory than there is are refused before any allocation (issue 13, items 6-8)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

GOOD = """seed = 0
[run]
dir = "runs"
device = "cpu"
[recipe]
name = "toy"
epochs = 1
batch_size = 32
[model]
name = "toy-mlp"
latent_dim = 4
hidden_dim = 8
depth = 1
[dataset]
name = "digits"
"""


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.toml"
    path.write_text(GOOD)
    return path


def assert_refused(result, expected: list[str]) -> None:
    assert result.exit_code == 2, result.err
    assert "Traceback" not in result.err
    assert result.err_lines == expected


@pytest.mark.parametrize(
    ("override", "line"),
    [
        ("recipe.lr_g=inf", "recipe.lr_g: expected a finite number, got inf"),
        ("recipe.lr_d=nan", "recipe.lr_d: expected a finite number, got nan"),
        ("recipe.epochs=99999999999999999999", "recipe.epochs: expected an integer from -2**63 to 2**63 - 1, got "),
    ],
    ids=["lr-inf", "lr-nan", "int-overflow"],
)
def test_check_and_run_refuse_values_that_fail_later(dltk, good, tmp_path, override, line):
    for command in ("check", "run"):
        result = dltk(command, good, override)
        assert result.exit_code == 2, result.err
        assert len(result.err_lines) == 1 and result.err_lines[0].startswith(f"{good}: {line}"), result.err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("device", ["mps", "cuda", "cuda:3"])
def test_check_refuses_a_device_this_machine_lacks_as_run_does(dltk, good, device):
    import torch

    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("this machine has an accelerator")
    checked, ran = dltk("check", good, f"run.device={device}"), dltk("run", good, f"run.device={device}")
    assert checked.exit_code == ran.exit_code == 2
    assert checked.err_lines == ran.err_lines and len(checked.err_lines) == 1
    assert checked.err_lines[0].startswith(f"{good}: run.device: '{device}' requested but ")


def test_a_model_too_large_for_its_options_is_refused_before_allocating(dltk, good, tmp_path):
    result = dltk("run", good, "model.hidden_dim=4000000000")
    assert result.exit_code == 2, result.err
    assert "Traceback" not in result.err
    assert len(result.err_lines) == 1
    assert result.err_lines[0].startswith(f"{good}: model: 'toy-mlp' with these options needs ")
    assert "of parameters; this machine has " in result.err_lines[0]
    assert not (tmp_path / "runs").exists()
    result = dltk("run", good, "model.latent_dim=9223372036854775807")
    assert result.exit_code == 2 and "Traceback" not in result.err, result.err
    assert result.err_lines[0].startswith(f"{good}: model: 'toy-mlp' cannot be built with these options: ")


def test_an_image_size_beyond_memory_is_refused_by_name(dltk, good, tmp_path, monkeypatch):
    monkeypatch.setattr("dltoolkit._limits.available_memory", lambda: 1 << 30)  # 1 GiB free
    result = dltk("run", good, "dataset.image_size=1024")
    assert result.exit_code == 2, result.err
    assert result.err_lines == [
        f"{good}: dataset.image_size: 1024 would hold 1437 images of 1x1024x1024 in memory and need 7.0 GiB "
        "while resizing; this machine has 1.0 GiB available (use a smaller image_size, or image-folder, "
        "which reads images one at a time)"
    ]
    assert not (tmp_path / "runs").exists()


def test_deeply_nested_toml_is_one_line(dltk, tmp_path):
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 3000 + "]" * 3000 + "\n")
    result = dltk("check", deep)
    assert_refused(result, [f"{deep}: not valid TOML: nested too deeply"])
    result = dltk("check", tmp_path / "deep.toml", "seed=" + "[" * 3000 + "]" * 3000)
    assert result.exit_code == 2 and "Traceback" not in result.err


def test_a_named_pipe_as_recipe_file_does_not_hang_check(dltk, tmp_path):
    pipe = tmp_path / "pipe.toml"
    os.mkfifo(pipe)
    results = []
    worker = threading.Thread(target=lambda: results.append(dltk("check", pipe)), daemon=True)
    worker.start()
    worker.join(30)
    assert results, "dltk check hung on a named pipe"
    assert_refused(results[0], [f"{pipe}: not a regular file (a named pipe?); give a recipe file"])


def test_odd_paths_are_one_line(dltk, tmp_path, good):
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    (tmp_path / "dangling.toml").symlink_to(tmp_path / "nowhere.toml")
    long = tmp_path / ("x" * 300 + ".toml")
    assert_refused(dltk("check", tmp_path / "loop1"), [f"{tmp_path / 'loop1'}: symlink loop"])
    assert_refused(
        dltk("check", tmp_path / "dangling.toml"),
        [f"{tmp_path / 'dangling.toml'}: dangling symlink to {tmp_path / 'nowhere.toml'}"],
    )
    assert_refused(dltk("check", long), [f"{long}: File name too long"])
    assert_refused(dltk("check", "bad\x00name.toml"), ["bad\\x00name.toml: a path may not contain a NUL byte"])
    assert_refused(dltk("run", good, "run.dir=runs\x00x"), [f"{good}: run.dir: a path may not contain a NUL byte"])
    result = dltk("run", good, "dataset.name=image-folder", f"dataset.root={tmp_path / ('y' * 300)}")
    assert result.exit_code == 2 and "Traceback" not in result.err, result.err
    assert len(result.err_lines) == 1 and "File name too long" in result.err_lines[0]


def test_control_characters_in_names_are_shown_escaped_on_one_line(dltk, tmp_path):
    odd = tmp_path / "two\nlines\x1b[31m.toml"
    result = dltk("check", odd)
    assert result.exit_code == 2
    assert result.err == f"{tmp_path}/two\\nlines\\x1b[31m.toml: no such file\n"


FOLDER = """seed = 0
[run]
device = "cpu"
[recipe]
name = "toy"
epochs = 1
batch_size = 2
[model]
name = "toy-mlp"
latent_dim = 4
hidden_dim = 8
depth = 1
[dataset]
name = "image-folder"
root = "{root}"
image_size = 8
split = "all"
"""


def test_images_above_the_pixel_limit_are_refused_by_name(dltk, tmp_path):
    from dltoolkit.testing import write_image_folder

    paths = write_image_folder(tmp_path / "images", 4, size=(40, 30))
    recipe = tmp_path / "folder.toml"
    recipe.write_text(FOLDER.format(root=(tmp_path / "images").as_posix()))
    result = dltk("run", recipe, "dataset.max_pixels=1000", "--run-dir", tmp_path / "run")
    assert result.exit_code == 2, result.err
    assert result.err_lines == [
        f"{recipe}: dataset.max_pixels: image '{p}' is 40x30 (1200 pixels), more than 1000; "
        "shrink it, remove it, or raise dataset.max_pixels"
        for p in sorted(paths)
    ]
    assert not (tmp_path / "run").exists()


def test_pillows_decompression_bomb_error_is_one_line(dltk, tmp_path, monkeypatch):
    from PIL import Image

    from dltoolkit.testing import write_image_folder

    write_image_folder(tmp_path / "images", 2, size=(40, 30))
    recipe = tmp_path / "folder.toml"
    recipe.write_text(FOLDER.format(root=(tmp_path / "images").as_posix()))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # 1200 pixels > 2 x 500: Pillow refuses
    result = dltk("run", recipe, "--run-dir", tmp_path / "run")
    assert result.exit_code == 2, result.err
    assert "Traceback" not in result.err and len(result.err_lines) == 2
    assert all("refused by Pillow: Image size (1200 pixels) exceeds limit" in line for line in result.err_lines)


def test_a_long_thin_image_is_resized_without_a_huge_intermediate(tmp_path):
    """A 1 x 2,000,000 image resized to 64 once meant a 64 x 128,000,000 intermediate (8 GB as RGB)."""
    import numpy as np
    from PIL import Image

    from dltoolkit.builtin.datasets import ImageFolderConfig, image_folder

    (tmp_path / "thin").mkdir()
    Image.fromarray(np.full((1, 2_000_000), 200, dtype=np.uint8)).save(tmp_path / "thin" / "a.png")
    Image.fromarray(np.full((8, 8), 10, dtype=np.uint8)).save(tmp_path / "thin" / "b.png")
    dataset = image_folder(ImageFolderConfig(root=str(tmp_path / "thin"), image_size=64, channels=1, split="all"))
    image, _ = dataset[0]
    assert image.shape == (1, 64, 64)
