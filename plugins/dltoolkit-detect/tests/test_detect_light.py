"""Registration stays light: `dltk check` on the detection recipes imports no torch, and `dltk predict
--help` lists the plugin's --draw."""

from __future__ import annotations

from pathlib import Path

import pytest
from runs import heavy_imports

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["recipes/detect_digit_boxes.toml", "recipes/detect_coco_folder.toml"])
def test_checking_the_detection_recipes_imports_no_torch(recipe):
    assert heavy_imports(["check", str(ROOT / recipe)], ROOT) == "EXIT 0 HEAVY -"


def test_predict_takes_draw_from_this_plugin(dltk):
    result = dltk("predict", "--help")
    assert result.exit_code == 0
    assert "--draw DIR" in result.out
