"""One meaning per name (issue 19, item 6): training scalars are ``train/<name>`` and held-out
scores ``eval/<name>`` wherever a name is shown or chosen (``best_by``, the progress line, the
loss plot, ``dltk compare``, best-checkpoint names), so a metric may report a name the recipe
also reports; run directories written before namespaces still load (compare, generate, resume)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import attrs
import pytest
import torch

from dltoolkit import Component, Scalar, hookimpl, option
from dltoolkit._checkpoint import MANIFEST, read_manifest, sha256_file
from dltoolkit._names import qualified, resolve, split

LOSS_D = Scalar("loss_d", "held-out discriminator loss")
LOSS_G = Scalar("loss_g", "the generator's loss", formerly=("train_loss_g",))


@attrs.frozen
class Every:
    every: int = option(1, doc="epochs")


@pytest.fixture
def same_name_metric(monkeypatch) -> list[str]:
    """A plugin whose metric reports ``loss_d``, the name of a toy training scalar: ``-p`` arguments."""
    plugin = types.ModuleType("same_name_metric_plugin")
    plugin.dltk_register_metrics = hookimpl(
        lambda: [
            Component(
                "heldout-d", lambda c: None, Every, summary="held-out D loss", reports=[LOSS_D], formerly=["heldout_d"]
            )
        ]
    )
    monkeypatch.setitem(sys.modules, plugin.__name__, plugin)
    return ["-p", plugin.__name__]


def test_names_are_namespaced_by_record_kind():
    assert qualified("step", "loss") == qualified("epoch", "loss") == "train/loss"
    assert qualified("eval", "accuracy") == "eval/accuracy"
    assert split("eval/accuracy") == ("eval", "accuracy") and split("loss") == (None, "loss")


def test_a_bare_name_is_resolved_when_one_namespace_has_it_and_refused_naming_both_otherwise():
    scores = {"train/loss_d": LOSS_D, "eval/loss_d": LOSS_D, "train/loss_g": LOSS_G}
    assert resolve("eval/loss_d", scores) == ("eval/loss_d", None)
    assert resolve("loss_g", scores) == ("train/loss_g", None)
    assert resolve("loss_d", scores) == (None, "'loss_d' is both 'eval/loss_d' and 'train/loss_d'; name one of them")
    assert resolve("train_loss_g", scores) == ("train/loss_g", None)  # a former name, as old recipe files say
    found, problem = resolve("eval/loss_g", scores)
    assert found is None and problem.startswith("'eval/loss_g' is not a score of this recipe file")


def test_legacy_bare_names_mean_what_they_meant_before_namespaces():
    # before, vision's training scalar was train_accuracy and its metric accuracy: "accuracy" is the metric's
    train = Scalar("accuracy", "training batch", "higher", formerly=("train_accuracy",))
    scores = {"train/accuracy": train, "eval/accuracy": Scalar("accuracy", "held out", "higher")}
    assert resolve("accuracy", scores)[0] is None  # ambiguous in a new recipe file
    old = {"train/accuracy": "train_accuracy", "eval/accuracy": "accuracy"}
    assert resolve("accuracy", scores, old) == ("eval/accuracy", None)
    assert resolve("train_accuracy", scores, old) == ("train/accuracy", None)
    # before, sequence's training scalar was accuracy and its metric seq-accuracy
    old = {"train/accuracy": "accuracy", "eval/accuracy": "seq-accuracy"}
    assert resolve("accuracy", scores, old) == ("train/accuracy", None)
    assert resolve("seq-accuracy", scores, old) == ("eval/accuracy", None)


def test_a_metric_may_report_a_name_the_recipe_reports(dltk, tiny_recipe, same_name_metric):
    path = tiny_recipe('[[metrics]]\nname = "heldout-d"\n')
    assert dltk("check", path, *same_name_metric).exit_code == 0  # the clash rule is gone
    ambiguous = dltk("check", path, "checkpoint.best_by=loss_d", *same_name_metric)
    assert (ambiguous.exit_code, ambiguous.err_lines) == (
        2,
        [f"{path}: checkpoint.best_by: 'loss_d' is both 'eval/loss_d' and 'train/loss_d'; name one of them"],
    )
    for chosen in ("eval/loss_d", "train/loss_d", "loss_g", "train/loss_g"):
        assert dltk("check", path, f"checkpoint.best_by={chosen}", *same_name_metric).exit_code == 0, chosen
    unknown = dltk("check", path, "checkpoint.best_by=eval/loss_g", *same_name_metric)
    assert unknown.exit_code == 2 and "choose 'eval/loss_d', 'train/loss_d' or 'train/loss_g'" in unknown.err


def test_a_former_component_name_still_works_with_a_one_line_note(dltk, tiny_recipe, same_name_metric):
    from dltoolkit import _registry

    _registry._NOTED.clear()
    path = tiny_recipe('[[metrics]]\nname = "heldout_d"\n')
    result = dltk("check", path, "checkpoint.best_by=eval/loss_d", *same_name_metric)
    assert result.exit_code == 0, result.err
    assert result.err_lines.count("dltk: metric 'heldout_d' is now named 'heldout-d'; the old name still works") == 1


@pytest.fixture
def namespaced_run(dltk, tiny_recipe, tmp_path) -> Path:
    run = tmp_path / "run"
    result = dltk("run", tiny_recipe(), "checkpoint.best_by=loss_g", "--run-dir", run)
    assert result.exit_code == 0, result.err
    run.joinpath("progress.txt").write_text(result.err)
    return run


def test_a_run_shows_and_keeps_namespaced_names(namespaced_run):
    run = namespaced_run
    assert 'best_by = "train/loss_g"' in (run / "recipe.toml").read_text()  # what it was resolved to
    (best,) = (run / "checkpoints").glob("best_checkpoint_*.pt")
    assert "_train-loss_g=" in best.name
    meta = torch.load(best, weights_only=True)["meta"]
    assert meta["best_by"] == "train/loss_g"
    lines = [line for line in (run / "progress.txt").read_text().splitlines() if line.startswith("epoch ")]
    assert len(lines) == 2 and all("train/loss_d=" in line and "train/loss_g=" in line for line in lines)
    # metrics.jsonl keeps bare keys: a record's kind is its namespace
    epochs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"epoch"' in x]
    assert all("loss_g" in record and "train/loss_g" not in record for record in epochs if record["kind"] == "epoch")


def as_old_run(run: Path) -> Path:
    """Rewrite a run directory as versions before namespaces wrote it: a bare ``best_by`` in
    recipe.toml and the checkpoints' metadata, the best checkpoint named by the bare score."""
    recipe = run / "recipe.toml"
    recipe.write_text(recipe.read_text().replace('"train/loss_g"', '"loss_g"'))
    folder = run / "checkpoints"
    manifest = read_manifest(folder)
    for path in sorted(folder.glob("*.pt")):
        data = torch.load(path, weights_only=True)
        data["meta"]["best_by"] = "loss_g" if "best_by" in data["meta"] else data["meta"].get("best_by")
        if data["meta"]["best_by"] is None:
            del data["meta"]["best_by"]
        new = path.with_name(path.name.replace("train-loss_g=", "loss_g="))
        torch.save(data, new)
        if new != path:
            path.unlink()
        manifest.pop(path.name, None)
        manifest[new.name] = sha256_file(new)
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return run


@pytest.mark.slow
def test_an_old_run_directory_resumes_and_keeps_competing_for_the_best(dltk, namespaced_run):
    run = as_old_run(namespaced_run)
    (old_best,) = (run / "checkpoints").glob("best_checkpoint_*.pt")
    assert "_loss_g=" in old_best.name and "train-" not in old_best.name
    result = dltk("run", "--resume", run, "recipe.epochs=3")
    assert result.exit_code == 0, result.err
    assert not list((run / "checkpoints").glob("*.corrupt"))  # the old best was read and compared, not set aside
    (best,) = (run / "checkpoints").glob("best_checkpoint_*.pt")
    assert best == old_best or "_train-loss_g=" in best.name


@pytest.mark.slow
def test_an_old_run_directory_generates(dltk, namespaced_run, tmp_path):
    run = as_old_run(namespaced_run)
    result = dltk("generate", run, "--num", "4", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.err
    assert len(list((tmp_path / "out").glob("*.png"))) == 4


def write_old_run(folder: Path) -> Path:
    """A run directory by hand, as older versions wrote it: bare names in both record kinds."""
    folder.mkdir(parents=True)
    (folder / "recipe.toml").write_text('[recipe]\nname = "toy"\nepochs = 2\n[model]\nname = "toy-mlp"\n')
    records = [
        {"kind": "epoch", "epoch": 1, "iteration": 10, "loss": 0.9},
        {"kind": "eval", "epoch": 1, "iteration": 10, "loss": 1.5, "protocol": {"loss": {"split": "test"}}},
        {"kind": "epoch", "epoch": 2, "iteration": 20, "loss": 0.7},
        {"kind": "eval", "epoch": 2, "iteration": 20, "loss": 1.2, "protocol": {"loss": {"split": "test"}}},
    ]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def test_compare_keeps_a_training_scalar_and_a_held_out_score_of_one_name_apart(dltk, tmp_path):
    run = write_old_run(tmp_path / "old")
    result = dltk("compare", run, "--out", tmp_path / "cmp")
    assert result.exit_code == 0, result.err
    assert "| run | eval/loss best / last |" in result.out.splitlines()
    assert "| old | n/a / 1.2 |" in result.out.splitlines()  # the held-out values only, not the training ones
    figures = sorted(p.name for p in (tmp_path / "cmp").glob("*_loss.png"))
    assert figures == ["eval_loss.png", "train_loss.png"]
    page = (tmp_path / "cmp" / "compare.html").read_text()
    assert "train/loss" in page and "eval/loss" in page
