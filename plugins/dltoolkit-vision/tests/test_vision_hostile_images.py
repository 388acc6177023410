"""Reliability, round three (issue 25): dltk predict and dltk eval of a classifier run read images through
the core's one reader (``dltoolkit.images.read_image``), with its limits and one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hostile_images import bomb_png, grey_png

from dltoolkit import DltkError
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


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    """One tiny classify run on digits (one epoch, a few hundred parameters): its run directory."""
    folder = tmp_path_factory.mktemp("classify")
    (folder / "tiny.toml").write_text(TINY)
    result = run_cli("run", folder / "tiny.toml", "--run-dir", folder / "run")
    assert result.exit_code == 0, result.err
    return folder / "run"


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


def test_a_text_flag_given_to_a_classifier_run_says_it_draws_nothing(classifier, dltk, tmp_path):
    """A classifier draws no samples at all: generate says so, not that it 'draws images from noise' (user trial)."""
    result = dltk("generate", classifier, "--out", tmp_path / "t", "--num", "2", "--prompt", "hi")
    assert result.exit_code == 2 and len(result.err_lines) == 1, result.err
    assert "the 'classify' recipe does not draw samples" in result.err_lines[0]
    assert not (tmp_path / "t").exists()
