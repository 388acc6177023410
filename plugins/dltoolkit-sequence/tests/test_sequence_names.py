"""One meaning per name in dltoolkit-sequence (issue 19, item 6): the sequence classifier's
held-out accuracy is the core's ``accuracy`` metric (``eval/accuracy``; it was ``seq-accuracy``),
its training batch's is ``train/accuracy``; old recipe files and run directories still work."""

from __future__ import annotations

import json
from pathlib import Path

RECIPE = """
[run]
device = "cpu"

[recipe]
name = "sequence-classify"
epochs = 2

[model]
name = "gru"

[dataset]
name = "digit-rows"

[[metrics]]
name = "{metric}"

[checkpoint]
best_by = "{best_by}"
"""


def write(tmp_path: Path, metric: str = "accuracy", best_by: str = "eval/accuracy", name: str = "r.toml") -> Path:
    path = tmp_path / name
    path.write_text(RECIPE.format(metric=metric, best_by=best_by))
    return path


def test_the_sequence_classifier_uses_the_cores_class_logits_metrics(dltk, tmp_path):
    path = write(tmp_path)
    for metric in ("accuracy", "top-k", "loss", "class-accuracy"):
        result = dltk("check", path, f"metrics.0.name={metric}", "checkpoint.best_by=train/loss")
        assert result.exit_code == 0, (metric, result.err)
    result = dltk("check", path, "checkpoint.best_by=accuracy")
    assert (result.exit_code, result.err_lines) == (
        2,
        [f"{path}: checkpoint.best_by: 'accuracy' is both 'eval/accuracy' and 'train/accuracy'; name one of them"],
    )


def test_an_old_recipe_file_naming_seq_accuracy_still_checks(dltk, tmp_path):
    from dltoolkit import _registry

    _registry._NOTED.clear()
    result = dltk("check", write(tmp_path, "seq-accuracy", "seq-accuracy"))
    assert result.exit_code == 0, result.err
    assert result.err_lines == ["dltk: metric 'seq-accuracy' is now named 'accuracy'; the old name still works"]


def old_run(folder: Path, metric: str, key: str) -> Path:
    """A run directory by hand, as older versions wrote it."""
    folder.mkdir(parents=True)
    write(folder, metric, key, name="recipe.toml")
    records = [
        {"kind": "epoch", "epoch": e, "iteration": 10 * e, "loss": 1.0 / e, "accuracy": 0.5 + 0.1 * e} for e in (1, 2)
    ] + [{"kind": "eval", "epoch": e, "iteration": 10 * e, key: 0.6 + 0.1 * e} for e in (1, 2)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def test_compare_lines_an_old_run_up_with_a_new_one(dltk, tmp_path):
    old = old_run(tmp_path / "old", "seq-accuracy", "seq-accuracy")
    new = old_run(tmp_path / "new", "accuracy", "accuracy")
    result = dltk("compare", old, new, "--out", tmp_path / "cmp")
    assert result.exit_code == 0, result.err
    lines = result.out.splitlines()
    assert "| run | eval/accuracy best / last |" in lines  # one column: seq-accuracy was the held-out accuracy
    assert "| old | 0.8 (epoch 2) / 0.8 |" in lines and "| new | 0.8 (epoch 2) / 0.8 |" in lines
    figures = sorted(p.name for p in (tmp_path / "cmp").glob("*accuracy*.png"))
    assert figures == ["eval_accuracy.png", "train_accuracy.png"]  # the training batch's apart
