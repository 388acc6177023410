"""Reliability, round three (issue 25): one image-reading path (``dltoolkit.images.read_image``) with the
same limits and one-line refusals for training, ``dltk predict`` and ``dltk eval --real/--fake``.

Hostile files are made small: a decompression bomb is a PNG header that claims a huge image.
"""

from __future__ import annotations

import numpy as np
import pytest
from hostile_images import bomb_png, grey_png
from PIL import Image

from dltoolkit import DltkError
from dltoolkit.images import read_image

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
