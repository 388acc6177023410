"""The torchvision model checks its own options (Component.check) in dltk check as in dltk run (issue 19, item 5).

Its check was a global ``dltk_configure`` that filtered for its factory, so ``dltk check`` passed a
misspelt architecture that ``dltk run`` then refused.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]  # the checkout (this file: plugins/dltoolkit-vision/tests/)
RECIPE = ROOT / "recipes" / "finetune_image_folder.toml"


def test_dltk_check_refuses_a_misspelt_torchvision_arch_in_one_line(dltk):
    result = dltk("check", RECIPE, "model.arch='resnet181'")
    assert result.exit_code == 2
    (line,) = result.err_lines
    assert line.startswith(f"{RECIPE}: model.arch: 'resnet181' is not a classification model torchvision ships")
    assert "did you mean" in line and "resnet18" in line


def test_weights_files_are_the_runs_to_check_not_dltk_checks(dltk, tmp_path):
    """The recipe names a weights file a user places before training: check passes, run refuses it."""
    assert dltk("check", RECIPE).exit_code == 0
    result = dltk("run", RECIPE, "--run-dir", tmp_path / "r")
    assert result.exit_code == 2
    (line,) = result.err_lines
    assert line.startswith(f"{RECIPE}: model.weights_path: no file 'weights/resnet18-f37072fd.pth'")
    assert not (tmp_path / "r").exists()
