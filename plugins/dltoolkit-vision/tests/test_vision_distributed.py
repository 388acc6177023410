"""The classify recipe on several processes (ignite.distributed, gloo, CPU): the same weights as one
process with the same global batch, and held-out scores gathered from every rank's shard (moved
from the core's tests/test_distributed.py, which trains the core's test plugin)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dltoolkit._checkpoint import checkpoints_in, load_checkpoint
from dltoolkit.testing import run_cli

RTOL, ATOL = 1e-4, 1e-5  # as tests/test_distributed.py: another summation order, amplified by Adam


def weights(run: Path, *names: str) -> dict[str, torch.Tensor]:
    data = load_checkpoint(checkpoints_in(run / "checkpoints")[0])
    return {f"{n}.{k}": v for n in names for k, v in data[n].items()}


def log(run: Path, kind: str) -> list[str]:
    return [line for line in (run / "metrics.jsonl").read_text().splitlines() if f'"kind": "{kind}"' in line]


def assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=RTOL, atol=ATOL, msg=lambda m, k=key: f"{k}: {m}")


CLASSIFIER = """
seed = 5
[run]
dir = "{runs}"
device = "cpu"
threads = 1
[recipe]
name = "classify"
epochs = 2
batch_size = 64
optimizer = "sgd"
lr = 0.05
momentum = 0.9
schedule = "cosine"
crop_padding = 0
log_every = 5
[model]
name = "lenet"
channels = [4, 8]
hidden = [32, 16]
dropout = 0.0
[dataset]
name = "digits"
[[metrics]]
name = "accuracy"
[[metrics]]
name = "loss"
[checkpoint]
every = 1
keep = 2
best_by = "eval/accuracy"
"""


@pytest.mark.slow
def test_two_processes_train_the_classifier_as_one_with_the_global_batch(tmp_path):
    recipe = tmp_path / "cnn.toml"
    recipe.write_text(CLASSIFIER.format(runs=tmp_path.as_posix()))
    one = run_cli("run", recipe, "--run-dir", tmp_path / "one")
    assert one.exit_code == 0, one.err
    two = run_cli("run", recipe, "--run-dir", tmp_path / "two", "--nproc-per-node", "2")
    assert two.exit_code == 0, two.err
    assert_close(weights(tmp_path / "one", "classifier"), weights(tmp_path / "two", "classifier"))
    # held-out scores: each rank scores its shard, Ignite gathers them (the whole test split)
    evals = [log(tmp_path / r, "eval") for r in ("one", "two")]
    assert len(evals[0]) == len(evals[1]) == 2
    assert '"processes": "split over 2, gathered"' in evals[1][0]
    for a, b in zip(*evals, strict=True):
        assert a.split('"accuracy": ')[1][:6] == b.split('"accuracy": ')[1][:6]


@pytest.mark.slow
def test_a_held_out_split_that_shards_unevenly_is_scored_whole(tmp_path):
    """5 held-out images, metric batches of 2: rank 0 scores 3 images in 2 batches, rank 1 two in
    one. No rank waits for the other (the model has BatchNorm), and the gathered scores are those
    of one process scoring the same checkpoint."""
    from dltoolkit.testing import write_class_folders

    write_class_folders(tmp_path / "images" / "train", "ab", 8, size=(16, 16))
    write_class_folders(tmp_path / "images" / "test", "a", 3, size=(16, 16), seed=1)
    write_class_folders(tmp_path / "images" / "test", "b", 2, size=(16, 16), seed=2)
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        f"""seed = 1
[run]
device = "cpu"
threads = 1
[recipe]
name = "classify"
epochs = 1
batch_size = 8
[model]
name = "resnet"
[dataset]
name = "image-folder"
root = "{(tmp_path / "images").as_posix()}"
image_size = 16
[[metrics]]
name = "loss"
batch_size = 2
[[metrics]]
name = "accuracy"
batch_size = 2
"""
    )
    run = tmp_path / "run"
    result = run_cli("run", recipe, "--run-dir", run, "--nproc-per-node", "2")
    assert result.exit_code == 0, result.err
    (line,) = log(run, "eval")
    record = json.loads(line)
    assert record["protocol"]["loss"]["count"] == 5
    assert record["protocol"]["loss"]["processes"] == "split over 2, gathered"
    alone = run_cli("eval", run, "--metrics", "loss,accuracy", "--json", tmp_path / "alone.json")
    assert alone.exit_code == 0, alone.err
    scores = json.loads((tmp_path / "alone.json").read_text())
    assert scores["loss"]["count"] == 5
    assert record["accuracy"] == pytest.approx(scores["accuracy"]["value"], abs=1e-9)
    assert record["loss"] == pytest.approx(scores["loss"]["value"], rel=1e-5)
    # predict on the held-out split names each row by its file (image-folder holds files; user trial)
    result = run_cli("predict", run, "--input", "test", "--out", tmp_path / "p.csv")
    assert result.exit_code == 0, result.err
    rows = (tmp_path / "p.csv").read_text().splitlines()[1:]
    named = sorted(Path(row.split(",")[0]).relative_to(tmp_path / "images" / "test").as_posix() for row in rows)
    assert named == ["a/0.png", "a/1.png", "a/2.png", "b/0.png", "b/1.png"]
