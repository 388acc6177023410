"""A resume checks the data and the recipe against what the checkpoint records (issue 13, item 3),
and every stop keeps the work already finished (item 4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dltoolkit._checkpoint import checkpoints_in, load_checkpoint
from dltoolkit.testing import write_image_folder

FOLDER_TOY = """
seed = 1
[run]
device = "cpu"
[recipe]
name = "toy"
epochs = 1
batch_size = 4
log_every = 5
[model]
name = "toy-mlp"
latent_dim = 4
hidden_dim = 8
depth = 1
[dataset]
name = "image-folder"
root = "{root}"
image_size = 8
channels = 1
split = "all"
"""


@pytest.mark.slow
def test_resume_refuses_an_image_folder_that_shrank(dltk, tmp_path):
    images = write_image_folder(tmp_path / "images", 16)
    recipe = tmp_path / "folder.toml"
    recipe.write_text(FOLDER_TOY.format(root=(tmp_path / "images").as_posix()))
    run = tmp_path / "run"
    assert dltk("run", recipe, "--run-dir", run).exit_code == 0
    newest = checkpoints_in(run / "checkpoints")[0]
    for path in images[8:]:
        path.unlink()
    result = dltk("run", "--resume", run, "recipe.epochs=2")
    assert result.exit_code == 2, result.err
    assert result.err_lines == [
        f"{run / 'recipe.toml'}: dataset: 16 training samples when {newest.name} was written, 8 now: "
        "the data changed since this run started; restore it or start a new run"
    ]
    assert checkpoints_in(run / "checkpoints") == [newest]  # nothing trained, nothing written


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ("batch_size = 32", "recipe.batch_size: 32 when {ckpt} was written, 16 now"),
        ("seed = 1", "seed: 1 when {ckpt} was written, 2 now"),
        ('name = "digits"', "dataset.split: 'train' when {ckpt} was written, 'test' now"),
    ],
    ids=["batch-size", "seed", "split"],
)
@pytest.mark.slow
def test_resume_refuses_a_recipe_toml_edited_by_hand(dltk, tiny_recipe, tmp_path, edit, expected):
    run = tmp_path / "run"
    assert dltk("run", tiny_recipe(), "recipe.epochs=1", "--run-dir", run).exit_code == 0
    ckpt = checkpoints_in(run / "checkpoints")[0].name
    recipe = run / "recipe.toml"
    text = recipe.read_text()
    replacement = {
        "batch_size = 32": "batch_size = 16",
        "seed = 1": "seed = 2",
        'name = "digits"': 'name = "digits"\nsplit = "test"',
    }[edit]
    assert edit in text
    recipe.write_text(text.replace(edit, replacement, 1))
    result = dltk("run", "--resume", run, "recipe.epochs=2")
    assert result.exit_code == 2, result.err
    lines = [line for line in result.err_lines if not line.startswith("dltk: ")]
    assert lines[0] == f"{recipe}: {expected.format(ckpt=ckpt)}; cannot change on resume (start a new run instead)"
    assert "Traceback" not in result.err


@pytest.mark.slow
def test_resume_accepts_changes_the_components_declared_resumable(dltk, tiny_recipe, tmp_path):
    run = tmp_path / "run"
    assert dltk("run", tiny_recipe(), "recipe.epochs=1", "--run-dir", run).exit_code == 0
    recipe = run / "recipe.toml"
    recipe.write_text(recipe.read_text().replace("log_every = 5", "log_every = 7"))  # declared resumable
    result = dltk("run", "--resume", run, "recipe.epochs=2", "recipe.lr_g=1e-4")
    assert result.exit_code == 0, result.err
    meta = load_checkpoint(checkpoints_in(run / "checkpoints")[0])["meta"]
    options = json.loads(meta["recipe_options"])
    assert (options["epochs"], options["lr_g"], options["log_every"]) == (2, 1e-4, 7)  # the checkpoint says what ran
    assert meta["train_size"] == 1437


def log_lines(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


HELPERS = Path(__file__).resolve().parent / "helpers"


@pytest.mark.slow
def test_a_stop_on_an_epochs_last_iteration_keeps_that_epochs_record(dltk, tiny_recipe, tmp_path, monkeypatch):
    """SIGTERM on iteration 44, the last of epoch 1: the epoch's record, its best-checkpoint choice and
    then the stop's checkpoint are all written; the resumed log equals an uninterrupted one."""
    monkeypatch.syspath_prepend(str(HELPERS))
    recipe = tiny_recipe()
    best = "checkpoint.best_by=loss_g"
    reference = tmp_path / "reference"
    assert dltk("run", recipe, best, "callbacks=[]", "--run-dir", reference).exit_code == 0
    run = tmp_path / "run"
    monkeypatch.setenv("DLTK_FAULT_SIGNAL_AT", "44:TERM")
    stopped = dltk("run", recipe, best, "callbacks=[]", "--run-dir", run, "-p", "fault_plugin")
    monkeypatch.delenv("DLTK_FAULT_SIGNAL_AT")
    assert stopped.exit_code == 143, stopped.err
    assert [r["epoch"] for r in log_lines(run) if r["kind"] == "epoch"] == [1]
    assert [p.name.split("_")[2] for p in (run / "checkpoints").glob("best_*.pt")] == ["44"]  # epoch 1 chosen
    assert checkpoints_in(run / "checkpoints")[0].name == "checkpoint_44.pt"
    result = dltk("run", "--resume", run)
    assert result.exit_code == 0, result.err
    assert log_lines(run) == log_lines(reference)


@pytest.mark.slow
def test_non_finite_loss_before_any_checkpoint_says_resume_starts_again(dltk, tiny_recipe, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(HELPERS))
    run = tmp_path / "run"
    monkeypatch.setenv("DLTK_FAULT_NAN_AT", "1")
    result = dltk("run", tiny_recipe(), "recipe.epochs=1", "--run-dir", run, "-p", "fault_plugin")
    monkeypatch.delenv("DLTK_FAULT_NAN_AT")
    assert result.exit_code == 1
    last = result.err_lines[-1]
    assert last.startswith(f"{run}: non-finite loss at iteration 1 (epoch 1): ")
    assert (
        f"No checkpoint was written yet: dltk run --resume {run} starts it again from the beginning "
        "in this directory (KEY=VALUE after it changes the options declared resumable)"
    ) in last
    assert "Resume from the last good checkpoint" not in last
    # started by `uv run`, where a bare `dltk` is not on the user's PATH, the hint says `uv run dltk`
    monkeypatch.setenv("UV_RUN_RECURSION_DEPTH", "1")
    monkeypatch.setenv("DLTK_FAULT_NAN_AT", "1")
    again = tmp_path / "again"
    result = dltk("run", tiny_recipe(), "recipe.epochs=1", "--run-dir", again, "-p", "fault_plugin")
    monkeypatch.delenv("DLTK_FAULT_NAN_AT")
    assert f"No checkpoint was written yet: uv run dltk run --resume {again} starts it" in result.err_lines[-1]
    result = dltk("run", "--resume", run)
    assert result.exit_code == 0, result.err


def _frames(gif: Path) -> int:
    from PIL import Image

    with Image.open(gif) as image:
        return image.n_frames


@pytest.mark.slow
def test_resume_removes_the_images_of_undone_training(dltk, tiny_recipe, tmp_path):
    """Grids written after the checkpoint a run resumes from belong to training that is undone:
    they go, so samples/ and progress.gif hold only what the resumed run made (user trial)."""
    recipe = tiny_recipe('[[callbacks]]\nname = "progress-gif"\n')
    args = ["recipe.epochs=3", "checkpoint.unit=iteration", "checkpoint.every=50", "checkpoint.keep=10"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert dltk("run", recipe, *args, "--run-dir", straight).exit_code == 0
    assert dltk("run", recipe, *args, "recipe.epochs=2", "--run-dir", split).exit_code == 0
    (split / "samples" / "real.png").write_bytes(b"not an iteration's image: kept")
    for path in checkpoints_in(split / "checkpoints"):  # as if it had died just after iteration 50
        if int(path.stem.split("_")[1]) > 50:
            path.unlink()
    assert (split / "samples" / "grid_00000088.png").exists()  # epoch 2's grid, after iteration 50
    stale = split / "samples" / "grid_00000077.png"  # as a grid every 77 iterations would have left
    stale.write_bytes((split / "samples" / "grid_00000088.png").read_bytes())
    users = split / "samples" / "holiday_20240101.png"  # a name like an image of one iteration: not one
    users.write_bytes(b"a user's photo")
    assert dltk("run", "--resume", split, "recipe.epochs=3").exit_code == 0
    names = sorted(p.name for p in (split / "samples").glob("grid_*.png"))
    assert names == sorted(p.name for p in (straight / "samples").glob("grid_*.png"))
    assert not stale.exists()
    assert _frames(split / "samples" / "progress.gif") == len(names) == 3
    assert (split / "samples" / "real.png").read_bytes() == b"not an iteration's image: kept"
    assert users.read_bytes() == b"a user's photo"  # beyond any iteration the run reached

    # stopped before its first checkpoint: the run starts again, and so do its images
    for path in checkpoints_in(split / "checkpoints"):
        path.unlink()
    assert dltk("run", "--resume", split, "recipe.epochs=1").exit_code == 0
    assert sorted(p.name for p in (split / "samples").glob("grid_*.png")) == ["grid_00000044.png"]
    assert _frames(split / "samples" / "progress.gif") == 1
