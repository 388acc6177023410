"""One meaning per name in dltoolkit-vision (issue 19, item 6): the classify recipe's training
scalars are ``loss``/``accuracy`` (shown ``train/...``), its held-out metrics the core's
``accuracy``, ``top-k``, ``loss``, ``class-accuracy`` (shown ``eval/...``); recipe files and run
directories written with the old names (``train_loss``, ``top_k``, ``class_accuracy``, a bare
``best_by = "accuracy"``) still work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dltoolkit._manager import make_plugin_host
from dltoolkit._registry import Registry
from dltoolkit.files import sha256_file

RECIPE = """
seed = 3

[run]
device = "cpu"
threads = 1

[recipe]
name = "classify"
epochs = 2
batch_size = 64
lr = 0.01
log_every = 10

[model]
name = "lenet"
channels = [4, 8]
hidden = [16, 8]

[dataset]
name = "digits"

[[metrics]]
name = "accuracy"

[[metrics]]
name = "{top_k}"
k = 3

[[metrics]]
name = "{class_accuracy}"

[checkpoint]
{best_by}
"""


def recipe(tmp_path: Path, *, old: bool = False, best_by: str = 'best_by = "eval/accuracy"') -> Path:
    path = tmp_path / ("old.toml" if old else "new.toml")
    names = ("top_k", "class_accuracy") if old else ("top-k", "class-accuracy")
    path.write_text(RECIPE.format(top_k=names[0], class_accuracy=names[1], best_by=best_by))
    return path


def test_training_scalars_and_held_out_metrics_share_names_in_two_namespaces():
    registry = Registry(make_plugin_host([]))
    classify = registry.get("recipe", "classify")
    assert [(s.name, s.formerly) for s in classify.reports][:2] == [
        ("loss", ("train_loss",)),
        ("accuracy", ("train_accuracy",)),
    ]
    for name in ("accuracy", "top-k", "loss", "class-accuracy"):
        assert registry.get("metric", name).plugin == "dltoolkit.builtin.metrics"  # the core's, not vision's
    assert registry.get("metric", "top_k").name == "top-k"  # the old name still finds it


def test_a_bare_name_of_both_namespaces_is_refused_naming_both(dltk, tmp_path):
    path = recipe(tmp_path, best_by='best_by = "accuracy"')
    result = dltk("check", path)
    assert (result.exit_code, result.err_lines) == (
        2,
        [f"{path}: checkpoint.best_by: 'accuracy' is both 'eval/accuracy' and 'train/accuracy'; name one of them"],
    )
    assert dltk("check", path, "checkpoint.best_by=train/accuracy").exit_code == 0
    assert dltk("check", path, "checkpoint.best_by=train_loss").exit_code == 0  # an old recipe file's name


def test_old_metric_names_in_a_recipe_file_work_with_one_note_each(dltk, tmp_path):
    from dltoolkit import _registry

    _registry._NOTED.clear()
    result = dltk("check", recipe(tmp_path, old=True))
    assert result.exit_code == 0, result.err
    assert result.err_lines == [
        "dltk: metric 'top_k' is now named 'top-k'; the old name still works",
        "dltk: metric 'class_accuracy' is now named 'class-accuracy'; the old name still works",
    ]


def make_old(run: Path) -> None:
    """Rewrite a run directory as it was written before the renames (see the module docstring)."""
    text = (run / "recipe.toml").read_text()
    text = text.replace('"top-k"', '"top_k"').replace('"class-accuracy"', '"class_accuracy"')
    (run / "recipe.toml").write_text(text.replace('"eval/accuracy"', '"accuracy"'))
    old_keys = {
        "epoch": {"loss": "train_loss", "accuracy": "train_accuracy"},
        "step": {"loss": "train_loss", "accuracy": "train_accuracy"},
        "eval": {"top-k": "top_k", "class-accuracy": "class_accuracy"},
    }
    lines = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        keys = old_keys.get(record["kind"], {})
        record = {keys.get(k, k): v for k, v in record.items()}
        if isinstance(record.get("protocol"), dict):
            record["protocol"] = {keys.get(k, k): v for k, v in record["protocol"].items()}
        lines.append(json.dumps(record))
    (run / "metrics.jsonl").write_text("".join(f"{line}\n" for line in lines))
    folder = run / "checkpoints"
    manifest = json.loads((folder / "manifest.json").read_text())
    for path in folder.glob("*.pt"):
        data = torch.load(path, weights_only=True)
        if "best_by" in data["meta"]:
            data["meta"]["best_by"] = "accuracy"
        new = path.with_name(path.name.replace("eval-accuracy=", "accuracy="))
        torch.save(data, new)
        if new != path:
            path.unlink()
        manifest.pop(path.name, None)
        manifest[new.name] = sha256_file(new)
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def old_run(tmp_path_factory) -> Path:
    from dltoolkit.testing import run_cli

    tmp = tmp_path_factory.mktemp("old")
    result = run_cli("run", recipe(tmp), "--run-dir", tmp / "run")
    assert result.exit_code == 0, result.err
    (best,) = (tmp / "run" / "checkpoints").glob("best_checkpoint_*.pt")
    assert "_eval-accuracy=" in best.name
    make_old(tmp / "run")
    result = run_cli("run", recipe(tmp), "--run-dir", tmp / "new")  # the same data root: one protocol
    assert result.exit_code == 0, result.err
    return tmp / "run"


@pytest.mark.slow
def test_an_old_run_directory_compares_evaluates_and_resumes(old_run, dltk, tmp_path):
    result = dltk("compare", old_run, old_run.parent / "new", "--out", tmp_path / "cmp")
    assert result.exit_code == 0, result.err
    header = next(line for line in result.out.splitlines() if line.startswith("| run | eval/"))
    assert header == "| run | eval/accuracy best / last | eval/class-accuracy best / last | eval/top-k best / last |"
    figures = {p.name for p in (tmp_path / "cmp").glob("*.png")}
    assert {"train_loss.png", "train_accuracy.png", "eval_top-k.png"} <= figures  # old and new runs on one figure
    assert not any("train_loss" in f.replace("train_loss.png", "") for f in figures)

    result = dltk("eval", old_run, "--json", tmp_path / "scores.json")
    assert result.exit_code == 0, result.err
    assert set(json.loads((tmp_path / "scores.json").read_text())) == {"accuracy", "top-k", "class-accuracy"}

    (old_best,) = (old_run / "checkpoints").glob("best_checkpoint_*.pt")
    result = dltk("run", "--resume", old_run, "recipe.epochs=3")
    assert result.exit_code == 0, result.err
    assert not list((old_run / "checkpoints").glob("*.corrupt"))  # the old best competed; not set aside
    (best,) = (old_run / "checkpoints").glob("best_checkpoint_*.pt")
    assert best == old_best or "_eval-accuracy=" in best.name
