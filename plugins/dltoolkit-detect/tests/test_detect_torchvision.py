"""torchvision's detectors under the ``detect`` recipe: weights only from local files (stand-ins the test
writes: state dicts of freshly built models, with their sha256), two training iterations on a tiny
COCO-format folder, a missing file refused in one line before anything is built, and bit-exact
resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from detect_helpers import ARCHS, recipe_text, write_coco_folder

from dltoolkit.files import sha256_file
from dltoolkit.testing import run_cli

HELPERS = Path(__file__).resolve().parents[3] / "tests" / "helpers"  # fault_plugin
DLTK = Path(sys.executable).parent / "dltk"


@pytest.fixture(scope="module")
def coco(tmp_path_factory) -> Path:
    return write_coco_folder(tmp_path_factory.mktemp("coco") / "coco")


def stand_in_weights(arch: str, folder: Path) -> dict[str, Path]:
    """A COCO-sized detector's state dict (91 classes, as torchvision's files) and its backbone
    classifier's (as ImageNet's), freshly built with no weights: what the real files look like."""
    import torchvision

    torch.manual_seed(0)
    detector = getattr(torchvision.models.detection, arch)(weights=None, weights_backbone=None)
    torch.save(detector.state_dict(), folder / f"{arch}_coco.pth")
    backbone = getattr(torchvision.models, ARCHS[arch])()
    torch.save(backbone.state_dict(), folder / f"{ARCHS[arch]}_imagenet.pth")
    return {"weights": folder / f"{arch}_coco.pth", "backbone_weights": folder / f"{ARCHS[arch]}_imagenet.pth"}


@pytest.mark.parametrize("arch", list(ARCHS))
def test_a_missing_weights_file_is_one_line_at_check(arch, dltk, tmp_path):
    root = tmp_path / "coco"  # dltk check builds nothing: the folder need not exist
    recipe = tmp_path / "r.toml"
    missing = tmp_path / "nowhere.pth"
    text = recipe_text(arch, root, None) + ""
    text = text.replace("[model]\n", f'[model]\nweights_path = "{missing}"\nweights_sha256 = "{"0" * 64}"\n')
    recipe.write_text(text)
    result = dltk("check", recipe)
    assert result.exit_code == 2
    assert result.err_lines == [
        f"{recipe}: model.weights_path: no file '{missing}' (nothing is downloaded: put the weights file there, "
        "or leave model.weights_path out to start from random weights)"
    ]
    assert not (tmp_path / "runs").exists()


def test_a_weights_file_without_its_sha256_or_with_another_is_refused(dltk, tmp_path):
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"not weights")
    recipe = tmp_path / "r.toml"
    base = recipe_text("fasterrcnn_mobilenet_v3_large_fpn", tmp_path, None)
    recipe.write_text(base.replace("[model]\n", f'[model]\nbackbone_weights_path = "{weights}"\n'))
    result = dltk("check", recipe)
    assert result.exit_code == 2
    assert result.err_lines == [
        f"{recipe}: model.backbone_weights_sha256: missing; set it to the sha256 of '{weights}' "
        f'(backbone_weights_sha256 = "{sha256_file(weights)}")'
    ]
    recipe.write_text(
        base.replace(
            "[model]\n", f'[model]\nbackbone_weights_path = "{weights}"\nbackbone_weights_sha256 = "{"a" * 64}"\n'
        )
    )
    result = dltk("check", recipe)
    assert result.err_lines == [
        f"{recipe}: model.backbone_weights_sha256: '{weights}' has sha256 {sha256_file(weights)}, not {'a' * 64}"
    ]


@pytest.mark.slow
@pytest.mark.parametrize("arch", list(ARCHS))
def test_each_detector_trains_two_iterations_from_stand_in_weights(arch, coco, dltk, tmp_path):
    weights = stand_in_weights(arch, tmp_path)
    recipe = tmp_path / "r.toml"
    recipe.write_text(recipe_text(arch, coco, weights))
    result = dltk("run", recipe, "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.err
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["kind"] == "step"]
    assert [r["iteration"] for r in steps] == [1, 2]
    assert all(r["loss"] == pytest.approx(r["classification"] + r["localization"], rel=1e-5) for r in steps)
    (evaluation,) = [r for r in records if r["kind"] == "eval"]
    assert 0.0 <= evaluation["map50"] <= 1.0
    (classes,) = [r for r in records if r["kind"] == "classes"]
    assert set(classes["class_ap"]) == {"square", "bar"}
    assert (tmp_path / "run" / "samples" / "detections_00000002.png").is_file()


@pytest.mark.slow
def test_load_pretrained_puts_both_files_into_the_detector(tmp_path):
    from dltoolkit_detect.data import detection_spec
    from dltoolkit_detect.options import TorchvisionDetectorConfig
    from dltoolkit_detect.tv_models import fasterrcnn_mobilenet_v3_large_fpn

    arch = "fasterrcnn_mobilenet_v3_large_fpn"
    files = stand_in_weights(arch, tmp_path)
    config = TorchvisionDetectorConfig(
        weights_path=str(files["weights"]), weights_sha256=sha256_file(files["weights"]),
        backbone_weights_path=str(files["backbone_weights"]),
        backbone_weights_sha256=sha256_file(files["backbone_weights"]),
    )  # fmt: skip
    model = fasterrcnn_mobilenet_v3_large_fpn(config, data=detection_spec((3, 64, 64), ["a", "b"]))
    model.load_pretrained()
    own = model.net.state_dict()
    detector = torch.load(files["weights"], weights_only=True)
    # the detector file wins where it fits; its 91-class predictor does not fit 3 classes and stays as built
    assert torch.equal(own["rpn.head.conv.0.0.weight"], detector["rpn.head.conv.0.0.weight"])
    assert own["roi_heads.box_predictor.cls_score.weight"].shape[0] == 3
    backbone = torch.load(files["backbone_weights"], weights_only=True)
    config = TorchvisionDetectorConfig(
        backbone_weights_path=str(files["backbone_weights"]),
        backbone_weights_sha256=sha256_file(files["backbone_weights"]),
    )
    model = fasterrcnn_mobilenet_v3_large_fpn(config, data=detection_spec((3, 64, 64), ["a", "b"]))
    model.load_pretrained()
    assert torch.equal(model.net.backbone.body["4"].block[0][0].weight, backbone["features.4.block.0.0.weight"])
    assert type(model.net.backbone.body["1"].block[0][1]).__name__ == "FrozenBatchNorm2d"


def final_state(run: Path) -> dict[str, torch.Tensor]:
    from dltoolkit._checkpoint import checkpoints_in, load_checkpoint

    data = load_checkpoint(checkpoints_in(run / "checkpoints")[0])
    state = {f"detector.{k}": v for k, v in data["detector"].items()}
    for index, entry in data["optimizer"]["state"].items():
        state.update({f"optimizer.{index}.{k}": v for k, v in entry.items() if isinstance(v, torch.Tensor)})
    return state


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_same_detector(coco, dltk, tmp_path):
    """fasterrcnn (its RPN and ROI sampling draw from the RNG) killed at iteration 3 of 4, resumed: the same run."""
    arch = "fasterrcnn_mobilenet_v3_large_fpn"
    recipe = tmp_path / "r.toml"
    recipe.write_text(recipe_text(arch, coco, None, epochs=2))
    every = ["checkpoint.unit='iteration'", "checkpoint.every=1"]
    straight = run_cli("run", recipe, *every, "--run-dir", tmp_path / "straight")
    assert straight.exit_code == 0, straight.err
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(HELPERS), "DLTK_FAULT_KILL_AT": "3"}
    killed = subprocess.run([str(DLTK), "run", str(recipe), *every, "--run-dir", str(run), "-p", "fault_plugin"],
                            capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    result = dltk("run", "--resume", run)
    assert result.exit_code == 0, result.err
    assert f"dltk: resuming {run} from checkpoint_2.pt" in result.err
    left, right = final_state(tmp_path / "straight"), final_state(run)
    assert left.keys() == right.keys()
    assert [k for k in left if not torch.equal(left[k], right[k])] == []

    def scores(path: Path) -> list[dict]:
        lines = (path / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k != "protocol"} for line in lines]

    assert scores(tmp_path / "straight") == scores(run)


def test_torchvision_s_own_files_need_no_sha256_when_their_hash_starts_as_their_name_says(tmp_path, monkeypatch):
    from dltoolkit_detect import checks
    from dltoolkit_detect.options import TorchvisionDetectorConfig

    official = tmp_path / "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth"
    official.write_bytes(b"stand-in")
    config = TorchvisionDetectorConfig(weights_path=str(official))
    assert checks.check_weights(config, "model", "fasterrcnn_mobilenet_v3_large_fpn")[0].startswith(
        "model.weights_sha256: missing"
    )  # the name alone is not enough: the content must hash as the name says
    monkeypatch.setattr(checks, "sha256_file", lambda path: "fb6a3cc7" + "0" * 56)
    assert checks.check_weights(config, "model", "fasterrcnn_mobilenet_v3_large_fpn") == []
    assert checks.check_weights(config, "model", "retinanet_resnet50_fpn")[0].startswith(
        "model.weights_sha256: missing"
    )


def test_ssdlite_refuses_a_resize_it_would_ignore(dltk, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text(recipe_text("ssdlite320_mobilenet_v3_large", tmp_path, None))
    result = dltk("check", recipe, "model.min_size=64")
    assert result.err_lines == [
        f"{recipe}: model.min_size: ssdlite320_mobilenet_v3_large resizes every image to 320x320 itself; leave "
        "model.min_size out"
    ]
