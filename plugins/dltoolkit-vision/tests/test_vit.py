"""``vit``, the Vision Transformer of the classify recipe: shapes for any image size the patches
divide, class token or mean pooling, one-line refusals, light registration, and a tiny run on the
digits (held-out accuracy, predict, export) that resumes bit-exactly after SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from runs import ITERATION_CHECKPOINTS, log_lines, subprocess_run

from dltoolkit import DataSpec, DltkError
from dltoolkit._checkpoint import checkpoints_in, load_checkpoint
from dltoolkit_vision.vit import VitConfig, vit

TINY_VIT = """
seed = 2

[run]
device = "cpu"
threads = 1
writers = []

[recipe]
name = "classify"
epochs = 3
batch_size = 64
optimizer = "adamw"
lr = 3e-3
label_smoothing = 0.1
crop_padding = 1
log_every = 10

[model]
name = "vit"
patch_size = 2
width = 32
layers = 2
heads = 4
dropout = 0.1

[dataset]
name = "digits"

[[metrics]]
name = "accuracy"
"""


@pytest.mark.parametrize(
    ("shape", "patch", "pooling"), [((1, 8, 8), 2, "cls"), ((3, 32, 32), 4, "mean"), ((3, 12, 20), 4, "cls")]
)
def test_vit_classifies_any_image_size_its_patches_divide(shape, patch, pooling):
    data = DataSpec("images", shape, num_classes=7, class_names=[str(i) for i in range(7)])
    model = vit(VitConfig(patch_size=patch, width=16, layers=1, heads=2, pooling=pooling), data=data)
    images = torch.rand(3, *shape) * 2 - 1
    assert model(images).shape == (3, 7) and model.spec == data
    tokens = (shape[1] // patch) * (shape[2] // patch) + (pooling == "cls")
    assert model.position.shape == (1, tokens, 16)
    assert (model.cls_token is not None) == (pooling == "cls")


def test_vit_refuses_patches_that_do_not_divide_the_images_and_unlabelled_data():
    data = DataSpec("images", (1, 8, 8), num_classes=10)
    with pytest.raises(DltkError, match=r"^model.patch_size: 3 does not divide the 8x8 images; choose a divisor"):
        vit(VitConfig(patch_size=3), data=data)
    with pytest.raises(DltkError, match=r"^model.name: the model 'vit' classifies, but the data"):
        vit(VitConfig(), data=DataSpec("images", (1, 8, 8)))


def test_check_pairs_vit_with_classify_and_refuses_bad_options_in_one_line(dltk, tmp_path):
    recipe = tmp_path / "vit.toml"
    recipe.write_text(TINY_VIT, encoding="utf-8")
    assert dltk("check", recipe).exit_code == 0
    result = dltk("check", recipe, "model.heads=3")
    assert (result.exit_code, result.err_lines) == (
        2,
        [f"{recipe}: model.heads: 3 heads do not divide model.width = 32 (each head gets width / heads)"],
    )
    other = tmp_path / "other.toml"
    other.write_text('[recipe]\nname = "sequence-classify"\n[model]\nname = "vit"\n[dataset]\nname = "digit-rows"\n')
    result = dltk("check", other)
    assert result.exit_code == 2
    assert result.err_lines[0].startswith(
        f"{other}: model.name: model 'vit' provides 'classifier', but the recipe 'sequence-classify' needs a model "
        "that provides 'sequence-model'"
    )


def test_registering_vit_imports_no_torch():
    probe = "import sys, dltoolkit_vision.plugin; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory) -> Path:
    from dltoolkit.testing import run_cli

    folder = tmp_path_factory.mktemp("vit")
    recipe = folder / "vit.toml"
    recipe.write_text(TINY_VIT, encoding="utf-8")
    result = run_cli("run", recipe, *ITERATION_CHECKPOINTS, "--run-dir", folder / "run")
    assert result.exit_code == 0, result.err
    return folder / "run"


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    data = load_checkpoint(checkpoints_in(run / "checkpoints")[0])
    state = {f"classifier.{k}": v for k, v in data["classifier"].items()}
    for index, entry in data["optimizer"]["state"].items():
        state.update({f"optimizer.{index}.{k}": v for k, v in entry.items() if isinstance(v, torch.Tensor)})
    return state


@pytest.mark.slow
def test_a_tiny_vit_learns_the_digits_and_predicts_from_its_export(vit_run, dltk, tmp_path):
    evals = [r for r in log_lines(vit_run) if r["kind"] == "eval"]
    assert [r["epoch"] for r in evals] == [1, 2, 3] and evals[-1]["accuracy"] > 0.15  # chance: 0.1 (0.18 here)
    assert dltk("export", vit_run, "--out", tmp_path / "vit.safetensors").exit_code == 0
    for source, out in [(vit_run, "run.csv"), (tmp_path / "vit.safetensors", "export.csv")]:
        result = dltk("predict", source, "--input", "test", "--out", tmp_path / out)
        assert result.exit_code == 0, result.err
    assert (tmp_path / "run.csv").read_text() == (tmp_path / "export.csv").read_text()


@pytest.mark.slow
def test_vit_sigkill_mid_epoch_then_resume_is_bit_identical(vit_run, dltk, tmp_path):
    run = tmp_path / "killed"
    killed = subprocess_run(vit_run.parent / "vit.toml", run, *ITERATION_CHECKPOINTS, env={"DLTK_FAULT_KILL_AT": "27"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert checkpoints_in(run / "checkpoints")[0].name == "checkpoint_20.pt"
    assert dltk("run", "--resume", run).exit_code == 0
    left, right = final_weights(vit_run), final_weights(run)
    assert left.keys() == right.keys() and not [k for k in left if not torch.equal(left[k], right[k])]
