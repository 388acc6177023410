"""classifier-fid accepts any run of the classify recipe, a third party's model included (issue 19, item 9).

A user trial trained a ViT of its own for ``classify`` and was told "not a classifier run (recipe
'classify', model 'tiny-vit')". The model here is registered by a plugin written in the test; the
metric rebuilds it through the run's registry.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import attrs
import pytest

from dltoolkit import Component, hookimpl
from dltoolkit.testing import write_image_folder

PLUGIN = "tiny_vit_plugin"


@attrs.frozen
class TinyConfig:
    hidden: int = 16


def tiny_classifier(config: TinyConfig, *, data: Any) -> Any:
    """A one-hidden-layer classifier of someone else's (its last layer an nn.Linear, as classifier-fid reads)."""
    import math

    from torch import nn

    return nn.Sequential(
        nn.Flatten(), nn.Linear(math.prod(data.shape), config.hidden), nn.ReLU(), nn.Linear(config.hidden, 10)
    )


def plugin_module() -> types.ModuleType:
    module = types.ModuleType(PLUGIN)

    @hookimpl
    def dltk_register_models() -> list[Component]:
        return [Component("tiny-vit", tiny_classifier, TinyConfig, provides="classifier", needs={"dataset": "images"})]

    module.dltk_register_models = dltk_register_models  # type: ignore[attr-defined]
    return module


RECIPE = """
seed = 0
[run]
device = "cpu"
[recipe]
name = "classify"
epochs = 1
batch_size = 64
confusion_matrix = false
[model]
name = "tiny-vit"
[dataset]
name = "digits"
"""


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(sys.modules, PLUGIN, plugin_module())
    return PLUGIN


def test_a_third_party_classifier_of_the_classify_recipe_is_a_feature_space(dltk, recipe_file, plugin, tmp_path):
    run = tmp_path / "vit"
    result = dltk("run", recipe_file(RECIPE), "--run-dir", run, "-p", plugin)
    assert result.exit_code == 0, result.err
    images = tmp_path / "images"
    write_image_folder(images, n=6, size=(8, 8), formats=("png",))
    args = ["--metrics", "classifier-fid", "--set", f"classifier={run.as_posix()}"]
    result = dltk("eval", "--real", images, "--fake", images, *args, "--json", tmp_path / "s.json", "-p", plugin)
    assert result.exit_code == 0, result.err
    row = result.out.splitlines()[1]
    assert row.split()[0] == "classifier-fid" and "tiny-vit[16]" in row
    assert abs(float(row.split()[1])) < 1e-6  # the same images on both sides


def test_a_run_of_another_recipe_is_refused_without_contradiction(dltk, tiny_gan, tmp_path):
    import torch

    foreign = tmp_path / "gan.pt"
    torch.save({"meta": {"recipe": "gan", "model": "mlp-gan"}}, foreign)
    path = tiny_gan(f'[[metrics]]\nname = "classifier-fid"\nclassifier = "{Path(foreign).as_posix()}"\n')
    result = dltk("run", path, "--run-dir", tmp_path / "r")
    assert result.exit_code == 2 and len(result.err_lines) == 1, result.err
    assert "its recipe is 'gan'" in result.err and "give a run of the classify recipe" in result.err
