"""The gan recipe end to end on tiny real data (CPU), resume, and the run directory contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dltoolkit._checkpoint import checkpoints_in, load_checkpoint


def only_run(tmp_path: Path) -> Path:
    (run,) = list((tmp_path / "runs").iterdir())
    return run


@pytest.mark.slow
def test_run_writes_the_run_directory(dltk, tiny_gan, tmp_path):
    result = dltk("run", tiny_gan(), "recipe.epochs=2", "dataset.image_size=16")
    assert result.exit_code == 0, result.err
    run = only_run(tmp_path)
    assert run.name.startswith("tiny-")
    assert f"Results in {run}/" in result.out
    # the resolved recipe, overrides applied, can be run again
    resolved = (run / "recipe.toml").read_text()
    assert "epochs = 2" in resolved and "image_size = 16" in resolved
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert {"loss_d", "loss_g", "d_x", "d_g_z", "iteration"} <= set(epochs[0])
    steps = [r for r in records if r["kind"] == "step"]
    assert steps and all(r["iteration"] % 5 == 0 for r in steps)
    assert list((run / "tb").glob("events.out.tfevents.*"))
    # samples every epoch from the fixed noise; 1437 training digits // 32 = 44 iterations an epoch
    assert sorted(p.name for p in (run / "samples").glob("grid_*.png")) == ["grid_00000044.png", "grid_00000088.png"]
    assert [p.name for p in checkpoints_in(run / "checkpoints")] == ["checkpoint_88.pt", "checkpoint_44.pt"]
    data = load_checkpoint(run / "checkpoints" / "checkpoint_88.pt")  # weights_only=True inside
    assert set(data) >= {"generator", "discriminator", "optimizer_g", "optimizer_d", "trainer", "rng", "meta"}
    assert data["trainer"]["iteration"] == 88
    assert data["meta"]["model"] == "mlp-gan" and data["meta"]["image_shape"] == [1, 16, 16]
    assert not list((run / "checkpoints").glob(".tmp-*"))


@pytest.mark.slow
def test_checkpoint_rotation_keeps_the_last_n(dltk, tiny_gan, tmp_path):
    assert dltk("run", tiny_gan(), "recipe.epochs=4", "checkpoint.keep=2").exit_code == 0
    names = [p.name for p in checkpoints_in(only_run(tmp_path) / "checkpoints")]
    assert names == ["checkpoint_176.pt", "checkpoint_132.pt"]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    data = load_checkpoint(checkpoints_in(run / "checkpoints")[0])
    return {
        **{f"g.{k}": v for k, v in data["generator"].items()},
        **{f"d.{k}": v for k, v in data["discriminator"].items()},
    }


def assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs"


@pytest.mark.slow
def test_resume_gives_identical_weights(dltk, tiny_gan, tmp_path):
    recipe = tiny_gan()
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert dltk("run", recipe, "recipe.epochs=2", "--run-dir", straight).exit_code == 0
    assert dltk("run", recipe, "recipe.epochs=1", "--run-dir", split).exit_code == 0
    result = dltk("run", "--resume", split, "recipe.epochs=2")
    assert result.exit_code == 0, result.err
    assert_identical(_weights(straight), _weights(split))
    assert "epochs = 2" in (split / "recipe.toml").read_text()
    epochs = [json.loads(x) for x in (split / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in epochs if r["kind"] == "epoch"] == [1, 2]


@pytest.mark.slow
def test_resume_mid_epoch_gives_identical_weights(dltk, tiny_gan, tmp_path):
    recipe = tiny_gan()
    straight, split = tmp_path / "straight", tmp_path / "split"
    args = ["checkpoint.unit=iteration", "checkpoint.every=20", "checkpoint.keep=10"]
    assert dltk("run", recipe, "recipe.epochs=2", *args, "--run-dir", straight).exit_code == 0
    assert dltk("run", recipe, "recipe.epochs=2", *args, "--run-dir", split).exit_code == 0
    # forget everything after iteration 80 (mid-epoch 2), as if the run had died there
    for path in checkpoints_in(split / "checkpoints"):
        if int(path.stem.split("_")[1]) > 80:
            path.unlink()
    assert dltk("run", "--resume", split).exit_code == 0
    assert_identical(_weights(straight), _weights(split))
    records = [json.loads(x) for x in (split / "metrics.jsonl").read_text().splitlines()]
    straight_records = [json.loads(x) for x in (straight / "metrics.jsonl").read_text().splitlines()]
    assert records == straight_records  # no duplicated or missing log lines either


@pytest.mark.slow
def test_resume_refuses_a_finished_run_and_foreign_overrides(dltk, tiny_gan, tmp_path):
    run = tmp_path / "r"
    assert dltk("run", tiny_gan(), "recipe.epochs=1", "--run-dir", run).exit_code == 0
    result = dltk("run", "--resume", run)
    assert (result.exit_code, result.err_lines) == (
        2,
        [f"{run}: the run already finished 1 epochs; pass recipe.epochs=N with N > 1 to train longer"],
    )
    before = (run / "recipe.toml").read_text()
    result = dltk("run", "--resume", run, "model.hidden_dim=3", "recipe.precision=fp16", "recipe.epochs=2")
    assert result.exit_code == 2
    assert [line.split(": cannot")[0] for line in result.err_lines] == [
        f"{run / 'recipe.toml'}: model.hidden_dim",
        f"{run / 'recipe.toml'}: recipe.precision",
    ]
    assert result.err_lines[0].endswith("can); start a new run instead")
    result = dltk("run", "--resume", run, "recipe.epoch=3", "recipe.compil=true", "model.name=cgan")
    assert result.exit_code == 2
    assert result.err_lines[:2] == [  # a typo is a typo, as in a new run
        f"{run / 'recipe.toml'}: recipe.epoch: unknown key (did you mean 'epochs'?)",
        f"{run / 'recipe.toml'}: recipe.compil: unknown key (did you mean 'compile'?)",
    ]
    assert result.err_lines[2].startswith(f"{run / 'recipe.toml'}: model.name: cannot be changed when resuming")
    assert dltk("run", "--resume", run, "recipe.epochs=1").exit_code == 2  # already finished
    assert (run / "recipe.toml").read_text() == before  # a refused resume writes nothing
    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    result = dltk("run", "--resume", not_a_run)
    assert (result.exit_code, result.err_lines) == (2, [f"{not_a_run}: not a run directory (no recipe.toml)"])


@pytest.mark.parametrize("loss", ["non-saturating", "minimax"])
@pytest.mark.slow
def test_both_losses_train(dltk, tiny_gan, tmp_path, loss):
    result = dltk("run", tiny_gan(), "recipe.epochs=1", f"recipe.loss={loss}")
    assert result.exit_code == 0, result.err
    epoch = [json.loads(x) for x in (only_run(tmp_path) / "metrics.jsonl").read_text().splitlines()][-1]
    if loss == "minimax":
        assert epoch["loss_g"] < 0  # log(1 - D(G(z))) is negative
    else:
        assert epoch["loss_g"] > 0


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.slow
def test_reduced_precision_trains(dltk, tiny_gan, tmp_path, precision):
    result = dltk("run", tiny_gan(), "recipe.epochs=1", f"recipe.precision={precision}")
    assert result.exit_code == 0, result.err
    data = load_checkpoint(checkpoints_in(only_run(tmp_path) / "checkpoints")[0])
    assert ("scaler" in data) == (precision == "fp16")


def test_bad_input_writes_nothing(dltk, tiny_gan, tmp_path):
    result = dltk("run", tiny_gan(), "recipe.batch_size=4000")
    assert result.exit_code == 2
    assert result.err_lines[-1] == (
        f"{tmp_path / 'tiny.toml'}: recipe.batch_size: 4000 is more than the 1437 training images "
        "(the last partial batch is dropped); lower it"
    )
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    assert "Traceback" not in result.err
