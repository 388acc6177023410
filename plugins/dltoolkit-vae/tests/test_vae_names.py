"""One meaning per name in dltoolkit-vae (issue 19, item 6): the held-out negative ELBO is the
metric ``negative-elbo`` (it was ``elbo``); old recipe files and run directories still work."""

from __future__ import annotations

import json
from pathlib import Path

RECIPE = """
[run]
device = "cpu"

[recipe]
name = "vae"
epochs = 2

[model]
name = "mlp-vae"

[dataset]
name = "digits"

[[metrics]]
name = "{metric}"

[checkpoint]
best_by = "{best_by}"
"""


def write(path: Path, metric: str, best_by: str) -> Path:
    path.write_text(RECIPE.format(metric=metric, best_by=best_by))
    return path


def test_an_old_recipe_file_naming_elbo_still_checks(dltk, tmp_path):
    from dltoolkit import _registry

    _registry._NOTED.clear()
    result = dltk("check", write(tmp_path / "old.toml", "elbo", "elbo"))
    assert result.exit_code == 0, result.err
    assert result.err_lines == ["dltk: metric 'elbo' is now named 'negative-elbo'; the old name still works"]
    assert dltk("check", write(tmp_path / "new.toml", "negative-elbo", "eval/negative-elbo")).exit_code == 0


def test_compare_lines_an_old_run_up_with_a_new_one(dltk, tmp_path):
    runs = []
    for label, metric in (("old", "elbo"), ("new", "negative-elbo")):
        folder = tmp_path / label
        folder.mkdir()
        write(folder / "recipe.toml", metric, metric)
        records = [{"kind": "eval", "epoch": e, "iteration": 10 * e, metric: 100.0 - e} for e in (1, 2)]
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        runs.append(folder)
    result = dltk("compare", *runs, "--out", tmp_path / "cmp")
    assert result.exit_code == 0, result.err
    lines = result.out.splitlines()
    assert "| run | eval/negative-elbo best / last |" in lines
    assert "| old | 98 (epoch 2) / 98 |" in lines and "| new | 98 (epoch 2) / 98 |" in lines
    assert (tmp_path / "cmp" / "eval_negative-elbo.png").is_file()
