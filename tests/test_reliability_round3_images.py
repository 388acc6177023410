"""Reliability, round three (issue 25): one image-reading path (``dltoolkit.images.read_image``) with the
same limits and one-line refusals for training, ``dltk predict`` and ``dltk eval --real/--fake``.

Hostile files are made small: a decompression bomb is a PNG header that claims a huge image.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dltoolkit import DltkError
from dltoolkit.images import read_image
from dltoolkit.testing import run_cli

TINY = """
seed = 3
[run]
device = "cpu"
threads = 1
[recipe]
name = "classify"
epochs = 1
batch_size = 128
log_every = 100
[model]
name = "lenet"
channels = [2, 4]
hidden = [8, 8]
[dataset]
name = "digits"
"""


def bomb_png(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A valid-looking PNG of a few dozen bytes whose header claims ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    body = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def grey_png(path: Path, height: int, width: int, value: int = 128) -> Path:
    Image.fromarray(np.full((height, width), value, dtype=np.uint8), mode="L").save(path)
    return path


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    """One tiny classify run on digits (one epoch, a few hundred parameters): its run directory."""
    folder = tmp_path_factory.mktemp("classify")
    (folder / "tiny.toml").write_text(TINY)
    result = run_cli("run", folder / "tiny.toml", "--run-dir", folder / "run")
    assert result.exit_code == 0, result.err
    return folder / "run"


# --- the reader itself -------------------------------------------------------------------------------------------


def test_read_image_resizes_and_centre_crops_to_the_size_asked(tmp_path):
    rgb = np.zeros((20, 40, 3), dtype=np.uint8)
    rgb[:, 10:30] = 255  # the centre half is white
    Image.fromarray(rgb).save(tmp_path / "wide.png")
    image = read_image(tmp_path / "wide.png", channels=3, size=10)
    assert image.shape == (3, 10, 10) and image.dtype.is_floating_point is False
    assert image.float().mean() > 240  # the centred square is the white part
    assert read_image(tmp_path / "wide.png", channels=1).shape == (1, 20, 40)
    assert read_image(tmp_path / "wide.png", channels=3, size=(4, 6)).shape == (3, 4, 6)


def test_read_image_refuses_a_decompression_bomb_in_one_line_naming_the_flag(tmp_path):
    bomb = bomb_png(tmp_path / "bomb.png")
    with pytest.raises(DltkError) as info:
        read_image(bomb, channels=3, size=8, what="--input")
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(f"--input: image '{bomb}' ")


def test_read_image_refuses_images_over_the_pixel_and_aspect_limits_by_name(tmp_path):
    tall = grey_png(tmp_path / "tall.png", 3000, 1)
    with pytest.raises(DltkError, match=r"^--input: image '.*tall.png' is 1x3000 \(3000 pixels\), more than 1000; "):
        read_image(tall, channels=1, size=8, what="--input", max_pixels=1000)
    with pytest.raises(DltkError, match=r"^x: image '.*tall.png' is 1x3000, its longer side more than 100 times"):
        read_image(tall, channels=1, size=8, what="x", max_aspect=100)


def test_read_image_refuses_an_output_size_no_image_should_have(tmp_path):
    small = grey_png(tmp_path / "small.png", 8, 8)
    with pytest.raises(DltkError, match=r"^--input: cannot resize '.*small.png' to 60000x60000"):
        read_image(small, channels=1, size=(60000, 60000), what="--input")


def test_read_image_says_what_is_wrong_with_a_file_that_is_not_an_image(tmp_path):
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(DltkError, match=r"^dataset.root: cannot read image '.*notes.png': "):
        read_image(tmp_path / "notes.png", what="dataset.root")
    truncated = tmp_path / "cut.png"
    grey_png(tmp_path / "whole.png", 64, 64, value=7)
    data = (tmp_path / "whole.png").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DltkError, match=r"^--input: cannot read image '.*cut.png': "):
        read_image(truncated, what="--input")


def test_a_one_pixel_wide_very_tall_image_is_read_without_a_huge_intermediate(tmp_path):
    """Resizing only the source box that becomes the output: 1 x 2,000,000 to 64 x 64 RGB costs kilobytes
    (resizing the whole image first meant 64 x 128,000,000 x 3 bytes, about 24 GB)."""
    tall = grey_png(tmp_path / "tall.png", 2_000_000, 1, value=200)
    image = read_image(tall, channels=3, size=(64, 64))
    assert image.shape == (3, 64, 64) and int(image.float().mean()) == 200


# --- dltk predict -------------------------------------------------------------------------------------------------


def test_predict_refuses_a_decompression_bomb_given_alone_in_one_line(classifier, dltk, tmp_path):
    bomb = bomb_png(tmp_path / "bomb.png")
    result = dltk("predict", classifier, "--input", bomb, "--out", tmp_path / "p.csv")
    assert result.exit_code == 2, result.err
    assert "Traceback" not in result.err and len(result.err_lines) == 1
    assert result.err_lines[0].startswith(f"--input: image '{bomb}' ")
    assert not (tmp_path / "p.csv").exists()


def test_predict_refuses_a_decompression_bomb_inside_a_folder_and_writes_nothing(classifier, dltk, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    grey_png(folder / "a.png", 8, 8)
    bomb = bomb_png(folder / "b.png")
    grey_png(folder / "c.png", 8, 8)
    result = dltk("predict", classifier, "--input", folder, "--out", tmp_path / "p.csv")
    assert result.exit_code == 2 and "Traceback" not in result.err
    assert len(result.err_lines) == 1 and result.err_lines[0].startswith(f"--input: image '{bomb}' ")
    assert not (tmp_path / "p.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]  # no temporary file left behind


def test_predict_reads_a_one_pixel_wide_very_tall_image(classifier, dltk, tmp_path):
    tall = grey_png(tmp_path / "tall.png", 2_000_000, 1)
    result = dltk("predict", classifier, "--input", tall, "--out", tmp_path / "p.csv")
    assert result.exit_code == 0, result.err
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 2


def test_predict_from_a_tampered_export_claiming_a_huge_input_is_refused(tmp_path):
    """A model whose weights do not depend on the input size (global pooling) rebuilds from an export
    whose data description claims 60000x60000: predict refused to resize an 8x8 image to it."""
    import torch

    from dltoolkit import DataSpec
    from dltoolkit_vision.predict import make_predict

    model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(1, 2))
    predict = make_predict(model, torch.device("cpu"), DataSpec.images((1, 60000, 60000)))
    grey_png(tmp_path / "small.png", 8, 8)
    with pytest.raises(DltkError) as info:
        list(predict(tmp_path / "small.png", None))
    assert info.value.problems == (
        "--input: the model records an input of 1x60000x60000, which no image is read as (a damaged or tampered "
        "export?); predict on a split (test) or re-export the run",
    )


# --- training and dltk eval use the same reader ---------------------------------------------------------------


def test_training_refuses_a_decompression_bomb_with_the_same_words(dltk, tmp_path):
    from dltoolkit.builtin.datasets import ImageFolderConfig, image_folder

    folder = tmp_path / "images"
    folder.mkdir()
    grey_png(folder / "a.png", 8, 8)
    bomb = bomb_png(folder / "b.png")
    with pytest.raises(DltkError) as info:
        image_folder(ImageFolderConfig(root=str(folder), image_size=8, split="all"))
    assert info.value.problems == (info.value.problems[0],)
    assert info.value.problems[0].startswith(f"dataset.root: image '{bomb}' ")


def test_eval_real_fake_refuses_a_decompression_bomb_naming_the_flag(dltk, tmp_path):
    real, fake = tmp_path / "real", tmp_path / "fake"
    real.mkdir()
    fake.mkdir()
    for i in range(3):
        grey_png(real / f"{i}.png", 8, 8)
        grey_png(fake / f"{i}.png", 8, 8)
    bomb = bomb_png(fake / "z.png")
    result = dltk("eval", "--real", real, "--fake", fake, "--metrics", "fid")
    assert result.exit_code == 2 and "Traceback" not in result.err, result.err
    assert len(result.err_lines) == 1 and result.err_lines[0].startswith(f"--fake: image '{bomb}' ")


# --- dltk eval of a classifier ----------------------------------------------------------------------------------------


def test_eval_json_refuses_to_replace_a_file_without_force(classifier, dltk, tmp_path):
    scores = tmp_path / "scores.json"
    scores.write_text("the user's own file")
    result = dltk("eval", classifier, "--metrics", "accuracy", "--json", scores)
    assert (result.exit_code, result.err_lines) == (2, [f"--json: '{scores}' exists; pass --force to replace it"])
    assert scores.read_text() == "the user's own file"
    result = dltk("eval", classifier, "--metrics", "accuracy", "--json", scores, "--force")
    assert result.exit_code == 0, result.err
    assert "accuracy" in json.loads(scores.read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.json"]  # no temporary file left


def test_eval_set_k_above_the_class_count_names_the_flag(classifier, dltk, tmp_path):
    result = dltk("eval", classifier, "--metrics", "top-k", "--set", "k=11")
    assert (result.exit_code, result.err_lines) == (
        2,
        ["--set k: 11 is more than the 10 classes of the data; lower it"],
    )
