"""The dltoolkit-vision plugin: the classify recipe, its models, metrics, predict and transfer learning.

Tiny real runs on scikit-learn's digits (22 iterations an epoch at batch 64), through the command line.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from dltoolkit.files import sha256_file
from dltoolkit.testing import run_cli

HELPERS = Path(__file__).resolve().parents[3] / "tests" / "helpers"  # fault_plugin
DLTK = Path(sys.executable).parent / "dltk"
SUFFIXES = ".png, .jpg, .jpeg, .webp, .bmp"

TINY = """
seed = 3

[run]
device = "cpu"
threads = 1

[recipe]
name = "classify"
epochs = 2
batch_size = 64
optimizer = "adamw"
lr = 0.01
log_every = 10

[model]
name = "lenet"
channels = [8, 16]
hidden = [64, 32]
batch_norm = true

[dataset]
name = "digits"

[[metrics]]
name = "accuracy"

[[metrics]]
name = "loss"

[[metrics]]
name = "class-accuracy"

[[metrics]]
name = "top-k"
k = 3

[checkpoint]
best_by = "eval/accuracy"
"""


def records(run: Path, kind: str | None = None) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    found = [json.loads(line) for line in lines]
    return [r for r in found if kind is None or r["kind"] == kind]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def digit_pngs(folder: Path, count: int) -> list[Path]:
    """The first ``count`` images of the digits' test split as 8x8 PNG files."""
    from PIL import Image

    from dltoolkit.builtin.datasets import ImageDatasetConfig, digits

    test = digits(ImageDatasetConfig(), split="test")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"digit_{index:03d}.png"
        Image.fromarray(test.images[index, 0].numpy(), mode="L").save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, str]:
    """One tiny classify run on digits: (recipe file, run directory, stderr)."""
    folder = tmp_path_factory.mktemp("classify")
    recipe = folder / "tiny.toml"
    recipe.write_text(TINY)
    result = run_cli("run", recipe, "--run-dir", folder / "run")
    assert result.exit_code == 0, result.err
    return recipe, folder / "run", result.err


# --- registration ---------------------------------------------------------------------------------


def test_the_plugin_registers_its_components_with_their_declarations(dltk):
    from dltoolkit._manager import make_plugin_host
    from dltoolkit._registry import Registry
    from dltoolkit_vision import recipe

    registry = Registry(make_plugin_host([]))
    classify = registry.get("recipe", "classify")
    assert classify.plugin == "vision"
    assert classify.requires == ("model", "dataset")
    assert dict(classify.needs) == {"model": ("classifier",), "dataset": ("images",)}
    assert set(classify.provides) >= {"evaluate", "predict", "export"}
    assert [s.name for s in classify.reports] == list(recipe.STAT_NAMES) == ["loss", "accuracy", "lr"]
    for name in ("lenet", "resnet", "torchvision"):
        assert registry.get("model", name).provides == ("classifier",)
    better = {n: registry.get("metric", n).reports[0].better for n in ("accuracy", "top-k", "loss", "class-accuracy")}
    assert better == {"accuracy": "higher", "top-k": "higher", "loss": "lower", "class-accuracy": "higher"}
    rows = {line.split()[0]: line for line in dltk("list").out.splitlines() if line.startswith("  ")}
    assert "(for: classify)" in rows["lenet"] and "[dltoolkit-vision]" in rows["torchvision"]
    assert "  A CIFAR-style ResNet: ResNet-20 (depth 6n+2, He et al. 2016) or ResNet-18" in rows["resnet"]


def test_metrics_of_classifiers_are_refused_with_other_recipes(dltk, tiny_gan):
    """The core's class-logits metrics (accuracy, top-k, loss, class-accuracy) fit classify, not gan."""
    path = tiny_gan('[[metrics]]\nname = "accuracy"\n')
    result = dltk("check", path)
    assert result.exit_code == 2 and len(result.err_lines) == 1
    assert result.err_lines[0].startswith(
        f"{path}: metrics.0.name: recipe 'gan' provides 'sample' + 'export', but the metric 'accuracy' needs "
        "a recipe that provides 'evaluate' + 'class-logits' (recipes that do: classify"
    )  # and the sequence classifier, when dltoolkit-sequence is installed


# --- the recipe, end to end -------------------------------------------------------------------------


@pytest.mark.slow
def test_a_classify_run_reports_held_out_scores_and_keeps_the_best(trained):
    _recipe, run, err = trained
    kinds = [r["kind"] for r in records(run) if r["kind"] != "step"]
    assert kinds == ["epoch", "classes", "eval", "epoch", "classes", "eval"]
    evals = records(run, "eval")
    last = evals[-1]
    assert 0.7 < last["accuracy"] <= last["top-k"] <= 1.0 and last["loss"] < evals[0]["loss"]
    assert last["protocol"]["accuracy"]["split"] == "test" and last["protocol"]["accuracy"]["count"] == 360
    classes = records(run, "classes")[-1]
    assert (
        classes["split"] == "test" and classes["count"] == 360 and list(classes["class_accuracy"]) == list("0123456789")
    )
    per_class = list(classes["class_accuracy"].values())
    assert sum(per_class) / 10 == pytest.approx(last["class-accuracy"], abs=1e-5)
    assert "eval/accuracy=" in err and "train/loss=" in err and "eval/class-accuracy=" in err
    best_score = max(e["accuracy"] for e in evals)
    best = list((run / "checkpoints").glob("best_checkpoint_*_eval-accuracy=*.pt"))
    assert len(best) == 1 and best[0].name.endswith(f"accuracy={best_score:.4f}.pt")
    assert sorted(p.name for p in (run / "samples").glob("confusion_*.png")) == [
        "confusion_00000022.png",
        "confusion_00000044.png",
    ]
    train = records(run, "epoch")[-1]
    assert 0.0 < train["lr"] < 0.05 and 0.0 < train["accuracy"] <= 1.0


@pytest.mark.slow
def test_predict_labels_a_folder_of_digit_pngs_from_a_run_a_checkpoint_or_an_export(trained, dltk, tmp_path):
    _recipe, run, _err = trained
    pngs = digit_pngs(tmp_path / "pngs", 30)
    result = dltk("predict", run, "--input", tmp_path / "pngs", "--out", tmp_path / "run.csv")
    assert result.exit_code == 0, result.err
    assert result.out.strip() == f"dltk: wrote 30 predictions to {tmp_path / 'run.csv'}"
    rows = read_csv(tmp_path / "run.csv")
    assert list(rows[0]) == ["input", "label", "probability"]
    assert [r["input"] for r in rows] == [str(p) for p in pngs]
    assert all(r["label"] in "0123456789" and 0.1 <= float(r["probability"]) <= 1.0 for r in rows)
    # the same images from the recorded test split: the same classes (the PNGs hold the same pixels)
    result = dltk("predict", run, "--input", "test", "--out", tmp_path / "test.csv")
    assert result.exit_code == 0, result.err
    split = read_csv(tmp_path / "test.csv")
    assert len(split) == 360 and list(split[0]) == ["input", "label", "probability", "true_label"]
    assert [r["label"] for r in split[:30]] == [r["label"] for r in rows]
    right = sum(r["label"] == r["true_label"] for r in split) / 360
    best = max(e["accuracy"] for e in records(run, "eval"))
    assert right == pytest.approx(best)  # a run directory predicts with its best checkpoint
    # an existing --out is kept unless --force says to replace it
    result = dltk("predict", run, "--input", pngs[0], "--out", tmp_path / "test.csv")
    assert result.exit_code == 2 and "Traceback" not in result.err
    assert result.err_lines == [f"--out: '{tmp_path / 'test.csv'}' exists; pass --force to replace it"]
    assert len(read_csv(tmp_path / "test.csv")) == 360
    result = dltk("predict", run, "--input", pngs[0], "--out", tmp_path / "test.csv", "--force")
    assert result.exit_code == 0, result.err
    assert len(read_csv(tmp_path / "test.csv")) == 1
    # one image; an export; a checkpoint file: the same answers
    assert dltk("export", run, "--out", tmp_path / "model.safetensors").exit_code == 0
    checkpoint = next((run / "checkpoints").glob("best_checkpoint_*.pt"))
    for source in (tmp_path / "model.safetensors", checkpoint):
        result = dltk("predict", source, "--input", pngs[0])
        assert result.exit_code == 0, result.err
        assert result.out.splitlines() == [
            "input,label,probability",
            f"{pngs[0]},{rows[0]['label']},{rows[0]['probability']}",
        ]


@pytest.mark.slow
def test_class_folders_give_the_labels_and_predict_names_them(dltk, recipe_file, tmp_path):
    """image-folder data with a sub-folder per class: predictions are labelled by the folder names."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, level in (("dark", 40), ("light", 215)):
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(12):
            pixels = np.clip(level + rng.integers(-30, 30, size=(10, 12, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "images" / name / f"{i}.png")
    path = recipe_file(TINY)
    folder = "dataset={name='image-folder',root='images',image_size=8,test_fraction=0.25}"
    result = dltk(
        "run", path, folder, "recipe.batch_size=6", "recipe.epochs=3", "metrics.3.k=2", "--run-dir", tmp_path / "r"
    )
    assert result.exit_code == 0, result.err
    assert records(tmp_path / "r", "classes")[-1]["class_accuracy"].keys() == {"dark", "light"}
    result = dltk("predict", tmp_path / "r", "--input", tmp_path / "images", "--out", tmp_path / "p.csv")
    assert result.exit_code == 0, result.err
    rows = read_csv(tmp_path / "p.csv")
    assert len(rows) == 24 and {r["label"] for r in rows} <= {"dark", "light"}
    right = sum(r["label"] == Path(r["input"]).parent.name for r in rows)
    assert right >= 20


@pytest.mark.slow
def test_dltk_eval_scores_the_run_as_the_run_did(trained, dltk, tmp_path):
    _recipe, run, _err = trained
    result = dltk("eval", run, "--json", tmp_path / "scores.json")
    assert result.exit_code == 0, result.err
    scores = json.loads((tmp_path / "scores.json").read_text())
    best = max(records(run, "eval"), key=lambda r: r["accuracy"])
    for name in ("accuracy", "loss", "class-accuracy", "top-k"):
        assert scores[name]["value"] == pytest.approx(best[name], abs=1e-6)


@pytest.mark.parametrize(
    "overrides",
    [
        ("model={name='resnet',depth=8,width=4}", "recipe.optimizer='sgd'", "recipe.lr=0.1", "recipe.crop_padding=1",
         "recipe.channels_last=true"),
        ("recipe.precision='bf16'", "recipe.batch_size=64", "recipe.schedule='step'", "recipe.milestones=[1]",
         "recipe.warmup_epochs=1", "recipe.horizontal_flip=true", "recipe.label_smoothing=0.1",
         "recipe.confusion_matrix=false"),
        ("recipe.precision='fp16'", "recipe.batch_size=64", "recipe.schedule='constant'"),
    ],
    ids=["resnet-sgd-channels-last", "lenet-bf16-step-warmup", "lenet-fp16-gradscaler"],
)  # fmt: skip
@pytest.mark.slow
def test_recipe_options_train(dltk, recipe_file, tmp_path, overrides):
    """Each combination learns: two epochs take every one past half right on ten classes (chance is 0.1)."""
    path = recipe_file(TINY)
    result = dltk(
        "run", path, "recipe.epochs=2", "metrics=[{name='accuracy'}]", *overrides, "--run-dir", tmp_path / "r"
    )
    assert result.exit_code == 0, result.err
    accuracy = [r["accuracy"] for r in records(tmp_path / "r", "eval")]
    assert accuracy[-1] > 0.5 and accuracy[-1] > accuracy[0], accuracy
    confusion = list((tmp_path / "r" / "samples").glob("confusion_*.png"))
    assert len(confusion) == (0 if "recipe.confusion_matrix=false" in overrides else 2)  # one an evaluation
    saved = next((tmp_path / "r" / "checkpoints").glob("checkpoint_*.pt"))
    assert ("scaler" in torch.load(saved, weights_only=True)) == ("recipe.precision='fp16'" in overrides)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.slow
def test_mixed_precision_and_channels_last_on_cuda(dltk, recipe_file, tmp_path, precision):
    path = recipe_file(TINY)
    overrides = ("run.device='cuda'", f"recipe.precision='{precision}'", "recipe.channels_last=true")
    model = "model={name='resnet',depth=8,width=16}"
    result = dltk(
        "run", path, *overrides, model, "recipe.optimizer='sgd'", "recipe.lr=0.1", "--run-dir", tmp_path / "r"
    )
    assert result.exit_code == 0, result.err
    assert records(tmp_path / "r", "eval")[-1]["accuracy"] > 0.7
    result = dltk("predict", tmp_path / "r", "--input", "test", "--device", "cuda", "--out", tmp_path / "p.csv")
    assert result.exit_code == 0, result.err
    assert len(read_csv(tmp_path / "p.csv")) == 360


@pytest.mark.slow
def test_a_non_finite_loss_stops_with_exit_1_and_a_hint(dltk, recipe_file, tmp_path):
    path = recipe_file(TINY)
    result = dltk(
        "run", path, "recipe.lr=1e30", "metrics=[]", "checkpoint.best_by='train/loss'", "--run-dir", tmp_path / "r"
    )
    assert result.exit_code == 1
    assert result.err_lines[-1].startswith(f"{tmp_path / 'r'}: non-finite loss at iteration ")
    assert result.err_lines[-1].endswith("(a lower recipe.lr, or recipe.warmup_epochs, often helps)")


# --- bad input: one line each, nothing written --------------------------------------------------------


def test_bad_recipe_options_are_one_line_each(dltk, recipe_file):
    path = recipe_file(TINY)
    result = dltk(
        "check",
        path,
        "recipe.optimizer='adam'",
        "recipe.milestones=[5, 2]",
        "model={name='resnet',depth=19}",
        "metrics.3.k=0",
    )
    assert result.exit_code == 2
    assert result.err_lines == [
        f"{path}: recipe.optimizer: must be one of ('sgd', 'adamw'), got 'adam'",
        f"{path}: recipe.milestones: must be increasing epochs, got [5, 2]",
        f"{path}: model.depth: must be 6n+2 (8, 14, 20, 32, 44, 56, 110: CIFAR ResNets) or 18 (ResNet-18), got 19",
        f"{path}: metrics.3.k: must be >= 1, got 0",
    ]
    result = dltk("check", path, "model={name='torchvision',freeze_backbone=true,weights_sha256='abc'}")
    assert result.err_lines == [
        f"{path}: model.weights_sha256: must be 64 hexadecimal digits, got 'abc'",
        f"{path}: model.freeze_backbone: needs model.weights_path: a frozen backbone of random weights learns nothing",
    ]


def test_bad_data_for_the_recipe_is_refused_before_training(dltk, recipe_file, tmp_path):
    from dltoolkit.testing import write_image_folder

    path = recipe_file(TINY)
    write_image_folder(tmp_path / "flat", n=8)
    flat = "dataset={name='image-folder',root='flat',image_size=8}"
    result = dltk("run", path, flat, "recipe.batch_size=4", "--run-dir", tmp_path / "a")
    assert (result.exit_code, result.err_lines) == (
        2,
        [
            f"{path}: dataset.name: dataset 'image-folder' gives images 3x8x8 without labels, but the recipe "
            "'classify' needs 'labels' (image-folder: put each class's images in a sub-folder of its own)"
        ],
    )
    result = dltk("run", path, "recipe.batch_size=2000", "--run-dir", tmp_path / "b")
    assert result.err_lines == [
        f"{path}: recipe.batch_size: 2000 is more than the 1437 training images (the last partial batch is dropped); "
        "lower it"
    ]
    result = dltk("run", path, "metrics.3.k=11", "--run-dir", tmp_path / "c")
    assert result.err_lines == [f"{path}: top-k.k: 11 is more than the 10 classes of the data; lower it"]
    assert not any((tmp_path / d).exists() for d in "abc")


def test_bad_predict_input_is_one_line(trained, dltk, tmp_path):
    _recipe, run, _err = trained
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken.png").write_bytes(b"not a png")
    result = dltk("predict", run, "--input", tmp_path / "notes.txt")
    assert (result.exit_code, result.err_lines) == (
        2,
        [f"--input: '{tmp_path / 'notes.txt'}' is not an image ({SUFFIXES})"],
    )
    result = dltk("predict", run, "--input", tmp_path / "empty")
    assert result.err_lines == [f"--input: no images ({SUFFIXES}) under '{tmp_path / 'empty'}'"]
    result = dltk("predict", run, "--input", tmp_path / "broken.png")
    assert result.exit_code == 2 and len(result.err_lines) == 1
    assert result.err_lines[0].startswith(f"--input: cannot read image '{tmp_path / 'broken.png'}': ")


# --- transfer learning -----------------------------------------------------------------------------


FINETUNE = """
seed = 0
[run]
device = "cpu"
threads = 1
[recipe]
name = "classify"
epochs = 1
batch_size = 64
optimizer = "adamw"
lr = 0.01
[model]
name = "torchvision"
arch = "resnet18"
freeze_backbone = true
[dataset]
name = "digits"
[[metrics]]
name = "accuracy"
[checkpoint]
unit = "iteration"
every = 11
keep = 2
"""


@pytest.fixture(scope="module")
def stand_in_weights(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A freshly initialised torchvision resnet18, saved as its state dict: ImageNet's weights stand-in."""
    import torchvision

    torch.manual_seed(123)
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path_factory.mktemp("weights") / "stand-in-resnet18.pth"
    torch.save(state, path)
    return path, state


@pytest.mark.slow
def test_fine_tuning_a_frozen_backbone_changes_the_head_only(stand_in_weights, dltk, recipe_file, tmp_path):
    from dltoolkit._checkpoint import load_checkpoint

    weights, original = stand_in_weights
    path = recipe_file(FINETUNE)
    run = tmp_path / "run"
    options = (f"model.weights_path='{weights}'", f"model.weights_sha256='{sha256_file(weights)}'")
    result = dltk("run", path, *options, "--run-dir", run)
    assert result.exit_code == 0, result.err
    early = load_checkpoint(run / "checkpoints" / "checkpoint_11.pt")["classifier"]
    final = load_checkpoint(run / "checkpoints" / "checkpoint_22.pt")
    backbone = {k: v for k, v in original.items() if not k.startswith("fc.")}
    for state in (early, final["classifier"]):
        assert {k for k in state if not k.startswith("net.fc.")} == {f"net.{k}" for k in backbone}
        unchanged = [k for k, v in backbone.items() if torch.equal(state[f"net.{k}"], v)]
        assert unchanged == list(backbone)  # weights and batch-norm statistics as loaded
    head = final["classifier"]
    assert head["net.fc.weight"].shape == (10, 512)
    assert not torch.equal(head["net.fc.weight"], early["net.fc.weight"])
    assert not torch.equal(head["net.fc.bias"], early["net.fc.bias"])
    assert len(final["optimizer"]["state"]) == 2  # AdamW kept moments for the head's weight and bias only
    # a finished run needs no weights file: its checkpoint holds every weight
    weights.rename(weights.with_suffix(".away"))
    try:
        result = dltk("predict", run, "--input", "test", "--out", tmp_path / "p.csv")
    finally:
        weights.with_suffix(".away").rename(weights)
    assert result.exit_code == 0, result.err
    assert len(read_csv(tmp_path / "p.csv")) == 360


def test_starting_weights_are_checked_before_anything_is_built(stand_in_weights, dltk, recipe_file, tmp_path):
    weights, _ = stand_in_weights
    path = recipe_file(FINETUNE)
    missing = tmp_path / "weights" / "resnet18-f37072fd.pth"
    result = dltk("run", path, f"model.weights_path='{missing}'", "--run-dir", tmp_path / "a")
    assert (result.exit_code, result.err_lines) == (
        2,
        [
            f"{path}: model.weights_path: no file '{missing}'; resnet18 starts from torchvision's weights file "
            "resnet18-f37072fd.pth (torchvision would download it from "
            "https://download.pytorch.org/models/resnet18-f37072fd.pth; nothing is downloaded here): put that "
            "file there, or set model.weights_path to a local copy (model.weights_sha256 for other weights)"
        ],
    )
    actual = sha256_file(weights)
    result = dltk("run", path, f"model.weights_path='{weights}'", "--run-dir", tmp_path / "b")
    assert result.err_lines == [
        f"{path}: model.weights_path: '{weights}' is not torchvision's resnet18 weights resnet18-f37072fd.pth "
        f"(its sha256 {actual} does not start with f37072fd); to start from other weights set "
        f'model.weights_sha256 = "{actual}"'
    ]
    wrong = "0" * 64
    result = dltk(
        "run", path, f"model.weights_path='{weights}'", f"model.weights_sha256='{wrong}'", "--run-dir", tmp_path / "c"
    )
    assert result.err_lines == [f"{path}: model.weights_sha256: '{weights}' has sha256 {actual}, not {wrong}"]
    result = dltk("run", path, "model.arch='resnet19'", "model.freeze_backbone=false", "--run-dir", tmp_path / "d")
    assert result.err_lines == [
        f"{path}: model.arch: 'resnet19' is not a classification model torchvision ships (did you mean "
        "resnet18, resnet152, resnet101?); see torchvision.models.list_models(module=torchvision.models)"
    ]
    assert not any((tmp_path / d).exists() for d in "abcd")


def test_weights_that_do_not_fit_are_refused_in_one_line(dltk, recipe_file, tmp_path):
    import torchvision

    other = tmp_path / "mobilenet.pth"
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), other)
    path = recipe_file(FINETUNE)
    options = (f"model.weights_path='{other}'", f"model.weights_sha256='{sha256_file(other)}'")
    result = dltk("run", path, *options, "--run-dir", tmp_path / "r")
    assert result.exit_code == 2 and len(result.err_lines) == 1
    assert result.err_lines == [
        f"{path}: model.weights_path: '{other}' does not fit torchvision's resnet18: missing bn1.bias, "
        "bn1.num_batches_tracked, bn1.running_mean ...; unexpected classifier.0.bias, classifier.0.weight, "
        "classifier.3.bias ..."
    ]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(("arch", "head"), [("mobilenet_v3_small", "classifier.3"), ("squeezenet1_1", "classifier.1")])
def test_torchvision_heads_are_replaced_for_the_data(arch, head):
    from dltoolkit import DataSpec
    from dltoolkit_vision.models import torchvision_model
    from dltoolkit_vision.options import TorchvisionConfig

    model = torchvision_model(TorchvisionConfig(arch=arch), data=DataSpec.images((1, 32, 32), class_names="abc"))
    assert model.head_name == head
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 3)
    assert model.spec.class_names == ("a", "b", "c")


# --- pieces ---------------------------------------------------------------------------------------


def test_the_learning_rate_schedule_is_a_function_of_the_iteration():
    from dltoolkit_vision.options import ClassifyConfig
    from dltoolkit_vision.recipe import learning_rate

    cosine = ClassifyConfig(epochs=4, lr=0.1, warmup_epochs=1)
    assert [learning_rate(cosine, i, 10) for i in (1, 10, 11)] == pytest.approx([0.01, 0.1, 0.1])
    assert learning_rate(cosine, 26, 10) == pytest.approx(0.05)
    assert 0 < learning_rate(cosine, 40, 10) < 1e-3
    step = ClassifyConfig(epochs=4, lr=0.1, schedule="step", milestones=(1, 3), gamma=0.5)
    assert [learning_rate(step, i, 10) for i in (10, 11, 30, 31)] == pytest.approx([0.1, 0.05, 0.05, 0.025])


def test_augmentation_crops_and_flips_each_image_on_its_own():
    from dltoolkit_vision.recipe import augment

    images = torch.arange(2 * 16, dtype=torch.float32).view(2, 1, 4, 4)
    assert torch.equal(augment(images, 0, False), images)
    torch.manual_seed(0)
    cropped = augment(images, 2, False)
    assert cropped.shape == images.shape
    torch.manual_seed(0)
    assert torch.equal(augment(images, 2, False), cropped)  # the global RNG decides: resumable
    flipped = [augment(images, 0, True) for _ in range(20)]
    assert any(torch.equal(f[0], images[0].flip(2)) for f in flipped) and any(
        torch.equal(f[0], images[0]) for f in flipped
    )


# --- reliability: bit-exact resume, clean stops ----------------------------------------------------------


RELIABLE = (
    "recipe.horizontal_flip=true",
    "recipe.label_smoothing=0.1",
    "checkpoint.unit='iteration'",
    "checkpoint.every=5",
)


def subprocess_run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """``dltk ARGS -p fault_plugin`` in a process of its own (tests/helpers/fault_plugin.py injects the fault)."""
    full_env = {**os.environ, "PYTHONPATH": str(HELPERS), **env}
    return subprocess.run(
        [str(DLTK), *args, "-p", "fault_plugin"],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
    )


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    from dltoolkit._checkpoint import checkpoints_in, load_checkpoint

    data = load_checkpoint(checkpoints_in(run / "checkpoints")[0])
    state = {f"classifier.{k}": v for k, v in data["classifier"].items()}
    for index, entry in data["optimizer"]["state"].items():
        state.update({f"optimizer.{index}.{k}": v for k, v in entry.items() if isinstance(v, torch.Tensor)})
    return state


def assert_same_run(a: Path, b: Path) -> None:
    left, right = final_weights(a), final_weights(b)
    assert left.keys() == right.keys()
    assert [k for k in left if not torch.equal(left[k], right[k])] == []

    def scores(run: Path) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "protocol"} for r in records(run)]

    assert scores(a) == scores(b)


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("straight")
    recipe = folder / "tiny.toml"
    recipe.write_text(TINY)
    result = run_cli("run", recipe, *RELIABLE, "--run-dir", folder / "run")
    assert result.exit_code == 0, result.err
    return recipe, folder / "run"


@pytest.mark.slow
def test_clean_stop_and_sigkill_then_resume_give_identical_weights(straight, dltk, tmp_path, monkeypatch):
    """SIGTERM at iteration 13 (exit 143, state saved), resume, SIGKILL at 31, resume: the same run."""
    recipe, reference = straight
    run = tmp_path / "run"
    args, fault = ["run", str(recipe), *RELIABLE, "--run-dir", str(run)], {"DLTK_FAULT_SIGNAL_AT": "13:TERM"}
    if threading.current_thread() is threading.main_thread():  # dltk's handler catches the signal in this process
        monkeypatch.syspath_prepend(str(HELPERS))
        with monkeypatch.context() as env:
            env.setenv("DLTK_FAULT_SIGNAL_AT", fault["DLTK_FAULT_SIGNAL_AT"])
            result = dltk(*args, "-p", "fault_plugin")
        code, err = result.exit_code, result.err
    else:  # signal handlers belong to the main thread: stop a process of its own
        stopped = subprocess_run(args, fault)
        code, err = stopped.returncode, stopped.stderr
    assert code == 143, err
    assert err.strip().splitlines()[-1] == (
        f"{run}: stopped by SIGTERM at iteration 13; state saved. Continue with: dltk run --resume {run}"
    )
    killed = subprocess_run(["run", "--resume", str(run)], {"DLTK_FAULT_KILL_AT": "31"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert f"dltk: resuming {run} from checkpoint_13.pt" in killed.stderr
    result = dltk("run", "--resume", run)
    assert result.exit_code == 0, result.err
    assert f"dltk: resuming {run} from checkpoint_30.pt" in result.err
    assert_same_run(reference, run)


@pytest.mark.slow
def test_the_epoch_line_shows_a_held_out_score_only_when_it_was_measured(dltk, tmp_path):
    """Scores evaluated every 2 epochs of 4: epochs 2 and 4 show them; epoch 3 no longer repeats
    epoch 2's value as if it were new (user trial)."""
    recipe = Path(__file__).resolve().parents[3] / "recipes" / "cnn_digits.toml"
    small = ["model={name='lenet', channels=[4, 8], hidden=[16, 8]}", "recipe.epochs=4"]
    small.append("recipe.confusion_matrix=false")
    every = ["metrics.0.every=2", "metrics.1.every=2"]
    result = dltk("run", recipe, *small, *every, "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.err
    lines = [line for line in result.err_lines if line.startswith("epoch ")]
    assert len(lines) == 4
    measured = ["eval/accuracy=" in line and "eval/loss=" in line for line in lines]
    assert measured == [False, True, False, True]
    assert all("train/accuracy=" in line for line in lines)  # the training scalars are there every epoch
