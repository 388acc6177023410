"""End-to-end runs of pix2pix and CycleGAN on the bundled digits (CPU, tiny nets): grids and held-out
scores at each evaluation, ``dltk predict`` from a run and from its export (the same pixels),
``--direction``, and bit-exact resume after SIGKILL."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from runs import ITERATION_CHECKPOINTS, log_lines, subprocess_run

from dltoolkit._checkpoint import checkpoints_in, load_checkpoint
from dltoolkit.images import save_png
from dltoolkit_translate.data import digits_outline
from dltoolkit_translate.options import DigitsOutlineConfig

pytestmark = pytest.mark.slow

CLASSIFIER = """
seed = 0
[run]
device = "cpu"
threads = 1  # the killed run is a process of its own: the same thread count, the same sums
[recipe]
name = "classify"
epochs = 2
batch_size = 64
lr = 0.05
[model]
name = "lenet"
[dataset]
name = "digits"
[[metrics]]
name = "accuracy"
"""

PIX2PIX = """
seed = 1
[run]
device = "cpu"
threads = 1  # the killed run is a process of its own: the same thread count, the same sums
[recipe]
name = "pix2pix"
epochs = 2
decay_epochs = 1
batch_size = 64
log_every = 5
preview_images = 4
[model]
name = "pix2pix-gan"
ngf = 4
ndf = 4
d_layers = 1
[dataset]
name = "digits-outline"
[[metrics]]
name = "label-preservation"
classifier = "{classifier}"
[[metrics]]
name = "l1"
[[metrics]]
name = "psnr"
[[metrics]]
name = "ssim"
[[metrics]]
name = "translation-fid"
classifier = "{classifier}"
"""

CYCLEGAN = """
seed = 2
[run]
device = "cpu"
threads = 1  # the killed run is a process of its own: the same thread count, the same sums
[recipe]
name = "cyclegan"
epochs = 2
decay_epochs = 1
batch_size = 64
pool_size = 8
log_every = 5
preview_images = 3
[model]
name = "cycle-gan"
ngf = 4
ndf = 4
blocks = 1
d_layers = 1
[dataset]
name = "digits-strokes"
[[metrics]]
name = "label-preservation"
classifier = "{classifier}"
[[metrics]]
name = "label-preservation-ba"
classifier = "{classifier}"
"""


def write(folder: Path, name: str, text: str, classifier: Path) -> Path:
    path = folder / name
    path.write_text(text.format(classifier=classifier.as_posix()), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    from dltoolkit.testing import run_cli

    folder = tmp_path_factory.mktemp("classifier")
    (folder / "c.toml").write_text(CLASSIFIER, encoding="utf-8")
    result = run_cli("run", folder / "c.toml", "--run-dir", folder / "run")
    assert result.exit_code == 0, result.err
    return folder / "run"


def trained(tmp_path_factory, classifier: Path, name: str, text: str) -> tuple[Path, Path]:
    from dltoolkit.testing import run_cli

    folder = tmp_path_factory.mktemp(name)
    recipe = write(folder, f"{name}.toml", text, classifier)
    result = run_cli("run", recipe, *ITERATION_CHECKPOINTS, "--run-dir", folder / "run")
    assert result.exit_code == 0, result.err
    return recipe, folder / "run"


@pytest.fixture(scope="module")
def pix2pix(tmp_path_factory, classifier) -> tuple[Path, Path]:
    return trained(tmp_path_factory, classifier, "pix2pix", PIX2PIX)


@pytest.fixture(scope="module")
def cyclegan(tmp_path_factory, classifier) -> tuple[Path, Path]:
    return trained(tmp_path_factory, classifier, "cyclegan", CYCLEGAN)


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image).copy()


def evaluations(run: Path) -> list[dict]:
    return [line for line in log_lines(run) if line["kind"] == "eval"]


def test_pix2pix_writes_grids_and_scores_at_each_evaluation(pix2pix):
    _, run = pix2pix
    evals = evaluations(run)
    assert [e["iteration"] for e in evals] == [22, 44]
    for name in ("label-preservation", "l1", "psnr", "ssim", "translation-fid"):
        assert all(np.isfinite(e[name]) for e in evals), name
    assert 0.0 <= evals[-1]["label-preservation"] <= 1.0 and evals[-1]["psnr"] > 5
    for iteration in (22, 44):
        grid = pixels(run / "samples" / f"translations_{iteration:08d}.png")
        # 4 rows of input | translation | target, 16 pixels each, with the grid's 2-pixel padding
        assert grid.shape[:2] == (4 * 18 + 2, 3 * 16 + 4)


def outline_files(folder: Path, count: int = 5) -> Path:
    data = digits_outline(DigitsOutlineConfig(), "test")
    folder.mkdir(parents=True)
    for i in range(count):
        a = data[i][0]
        save_png(((a + 1) * 127.5).round().to(torch.uint8).expand(3, -1, -1).contiguous(), folder / f"digit{i}.png")
    return folder


def test_pix2pix_predict_from_the_run_and_its_export_gives_the_same_pixels(pix2pix, dltk, tmp_path):
    _, run = pix2pix
    inputs = outline_files(tmp_path / "outlines")
    result = dltk("predict", run, "--input", inputs, "--out", tmp_path / "from_run")
    assert result.exit_code == 0, result.err
    assert dltk("export", run, "--out", tmp_path / "g.safetensors").exit_code == 0
    result = dltk("predict", tmp_path / "g.safetensors", "--input", inputs, "--out", tmp_path / "from_export")
    assert result.exit_code == 0, result.err
    names = sorted(p.name for p in (tmp_path / "from_run").glob("*.png"))
    assert names == [f"digit{i}.png" for i in range(5)]
    for name in names:
        left, right = pixels(tmp_path / "from_run" / name), pixels(tmp_path / "from_export" / name)
        assert left.shape[:2] == (16, 16) and np.array_equal(left, right), name
    from safetensors import safe_open

    with safe_open(str(tmp_path / "g.safetensors"), "pt") as handle:
        assert {key.split(".")[0] for key in handle.keys()} == {"generator"}  # noqa: SIM118


def test_pix2pix_refuses_a_direction_in_one_line(pix2pix, dltk, tmp_path):
    _, run = pix2pix
    inputs = outline_files(tmp_path / "outlines", 1)
    result = dltk("predict", run, "--input", inputs, "--out", tmp_path / "o", "--direction", "BtoA")
    assert result.exit_code == 2 and len(result.err_lines) == 1 and "--direction" in result.err_lines[0]


def test_cyclegan_scores_both_directions_and_predicts_either_way(cyclegan, dltk, tmp_path):
    _, run = cyclegan
    last = evaluations(run)[-1]
    assert 0.0 <= last["label-preservation"] <= 1.0 and 0.0 <= last["label-preservation-ba"] <= 1.0
    grid = pixels(run / "samples" / f"translations_{last['iteration']:08d}.png")
    assert grid.shape[:2] == (3 * 18 + 2, 6 * 16 + 4)  # a | ab | aba | b | ba | bab
    inputs = outline_files(tmp_path / "inputs", 2)
    for direction in ("AtoB", "BtoA"):
        result = dltk("predict", run, "--input", inputs, "--out", tmp_path / direction, "--direction", direction)
        assert result.exit_code == 0, result.err
    ab, ba = pixels(tmp_path / "AtoB" / "digit0.png"), pixels(tmp_path / "BtoA" / "digit0.png")
    assert ab.shape == ba.shape and not np.array_equal(ab, ba)
    assert dltk("export", run, "--out", tmp_path / "c.safetensors").exit_code == 0
    export = tmp_path / "c.safetensors"
    result = dltk("predict", export, "--input", inputs, "--out", tmp_path / "e", "--direction", "BtoA")
    assert result.exit_code == 0, result.err
    assert np.array_equal(pixels(tmp_path / "e" / "digit0.png"), ba)


def final_state(run: Path, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
    data = load_checkpoint(checkpoints_in(run / "checkpoints")[0])
    state: dict[str, torch.Tensor] = {}
    for name in names:
        entry = data[name]
        if "state" in entry and "param_groups" in entry:  # an optimiser
            for index, moments in entry["state"].items():
                state.update({f"{name}.{index}.{k}": v for k, v in moments.items() if isinstance(v, torch.Tensor)})
        else:
            state.update({f"{name}.{k}": v for k, v in entry.items()})
    return state


def records(run: Path) -> list[dict]:
    lines = log_lines(run)
    for line in lines:
        for protocol in line.get("protocol", {}).values():
            protocol.pop("seconds", None)
    return lines


CYCLEGAN_STATE = (
    "generator_ab",
    "generator_ba",
    "discriminator_a",
    "discriminator_b",
    "optimizer_g",
    "optimizer_d",
    "pool_a",
    "pool_b",
)


@pytest.mark.parametrize(
    ("which", "kill_at", "resumed_from", "names"),
    [
        ("pix2pix", "27", "checkpoint_20.pt", ("generator", "discriminator", "optimizer_g", "optimizer_d")),
        (
            "cyclegan",
            "15",
            "checkpoint_10.pt",
            CYCLEGAN_STATE,
        ),
    ],
)
def test_sigkill_mid_epoch_then_resume_is_bit_identical(which, kill_at, resumed_from, names, request, dltk, tmp_path):
    recipe, reference = request.getfixturevalue(which)
    run = tmp_path / "killed"
    killed = subprocess_run(recipe, run, *ITERATION_CHECKPOINTS, env={"DLTK_FAULT_KILL_AT": kill_at})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert checkpoints_in(run / "checkpoints")[0].name == resumed_from
    result = dltk("run", "--resume", run)
    assert result.exit_code == 0, result.err
    left, right = final_state(reference, names), final_state(run, names)
    assert left.keys() == right.keys()
    assert not [k for k in left if not torch.equal(left[k], right[k])]
    assert records(run) == records(reference)
    grids = sorted(p.name for p in (reference / "samples").glob("translations_*.png"))
    assert grids == sorted(p.name for p in (run / "samples").glob("translations_*.png"))
    for name in grids:
        assert np.array_equal(pixels(reference / "samples" / name), pixels(run / "samples" / name)), name


def test_compare_puts_translation_runs_side_by_side(pix2pix, cyclegan, dltk, tmp_path):
    result = dltk("compare", pix2pix[1], cyclegan[1], "--out", tmp_path / "compare")
    assert result.exit_code == 0, result.err
    assert (tmp_path / "compare" / "compare.html").is_file()
    for recipe, model in (
        ("pix2pix", "pix2pix-gan"),
        ("cyclegan", "cycle-gan"),
    ):  # a row each, named as compare names it
        assert re.search(rf"^\| [^|]+ \| {recipe} \| {model} \|", result.out, flags=re.M), result.out
