"""The mlflow writer (issue 23, item 1): a classifier's and a GAN's records reach a temporary SQLite
store equal to metrics.jsonl (read back with mlflow.search_runs and MlflowClient.get_metric_history);
kill -9 and --resume continue the same MLflow run with each step once; the resolved recipe as
parameters, protocols, images, loss plot, best checkpoint and end state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

pytest.importorskip("mlflow")

DLTK = Path(sys.executable).parent / "dltk"

CLASSIFY = """
seed = 3
[run]
device = "cpu"
threads = 1
[recipe]
name = "classify"
epochs = 2
batch_size = 64
log_every = 10
[model]
name = "lenet"
channels = [4, 8]
hidden = [16, 16]
[dataset]
name = "digits"
[[metrics]]
name = "accuracy"
[[metrics]]
name = "class-accuracy"
[[callbacks]]
name = "loss-plot"
[checkpoint]
best_by = "eval/accuracy"
[[writers]]
name = "mlflow"
tracking_uri = "{uri}"
experiment = "tests"
"""

WRITER = '[[writers]]\nname = "mlflow"\ntracking_uri = "{uri}"\nexperiment = "tests"\n'


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def expected_points(run: Path) -> dict[str, list[tuple[int, float]]]:
    """``{kind/name: [(iteration, value)]}`` of every number of the step, epoch and eval records of
    metrics.jsonl, as the writer logs them."""
    points: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for record in records(run):
        if record["kind"] not in ("step", "epoch", "eval"):  # a plugin's kinds: their values are mappings
            continue
        for name, value in record.items():
            if name in ("kind", "epoch", "iteration", "protocol") or isinstance(value, (dict, list, str, bool)):
                continue
            points[f"{record['kind']}/{name}"].append((record["iteration"], value))
    return dict(points)


def only_mlflow_run(uri: str):
    import mlflow

    mlflow.set_tracking_uri(uri)
    found = mlflow.search_runs(experiment_names=["tests"], output_format="list")
    assert len(found) == 1, [r.info.run_name for r in found]
    return found[0]


def logged_points(uri: str, run_id: str, keys) -> dict[str, list[tuple[int, float]]]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    return {k: sorted((m.step, m.value) for m in client.get_metric_history(run_id, k)) for k in keys}


@pytest.mark.slow
def test_a_classifier_run_reaches_mlflow_as_metrics_jsonl_says(dltk, recipe_file, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    run = tmp_path / "classify"
    result = dltk("run", recipe_file(CLASSIFY.format(uri=uri)), "--run-dir", run)
    assert result.exit_code == 0, result.err
    assert "writer 'mlflow' failed" not in result.err
    found = only_mlflow_run(uri)
    expected = expected_points(run)
    assert {"step/loss", "epoch/loss", "epoch/accuracy", "eval/accuracy"} <= expected.keys()
    assert set(found.data.metrics) == set(expected)
    assert logged_points(uri, found.info.run_id, expected) == {k: sorted(v) for k, v in expected.items()}
    # the resolved recipe as flattened parameters; the protocol, the run directory, the end state
    params = found.data.params
    assert params["recipe.name"] == "classify" and params["model.channels"] == "[4, 8]"
    assert params["metrics.1.name"] == "class-accuracy" and params["writers.0.name"] == "mlflow"
    assert json.loads(found.data.tags["dltk.protocol.accuracy"])["split"] == "test"
    assert found.data.tags["dltk.run_dir"] == str(run.resolve())
    assert found.data.tags["mlflow.runName"] == "classify"
    assert found.info.status == "FINISHED" and found.data.tags["dltk.exit_code"] == "0"
    best = found.data.tags["dltk.best_checkpoint"]
    assert Path(best).parent == (run / "checkpoints").resolve() and Path(best).name.startswith("best_")
    artefacts = Path(found.info.artifact_uri.removeprefix("file://"))
    assert (artefacts / "samples" / "losses.png").is_file()
    assert sorted(p.name for p in (artefacts / "samples").glob("confusion_*.png")) == sorted(
        p.name for p in (run / "samples").glob("confusion_*.png")
    )
    assert (artefacts / "recipe.toml").is_file() and (artefacts / "best_checkpoint.txt").read_text().strip() == best
    assert len(list((artefacts / "protocol").glob("eval_*.json"))) == 2
    assert json.loads((run / "mlflow.json").read_text())["run_id"] == found.info.run_id


def dltk_process(args: list, env: dict[str, str]) -> subprocess.CompletedProcess:
    full = {**os.environ, **env}
    return subprocess.run([str(DLTK), *map(str, args)], capture_output=True, text=True, env=full, timeout=300)


@pytest.mark.slow
def test_a_gan_killed_and_resumed_is_one_mlflow_run_with_each_step_once(tiny_gan, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    run = tmp_path / "gan"
    recipe = tiny_gan(WRITER.format(uri=uri))
    killed = dltk_process(["run", recipe, "--run-dir", run, "-p", "fault_plugin"], {"DLTK_FAULT_KILL_AT": "60"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    mid = only_mlflow_run(uri)
    assert mid.info.status == "RUNNING"
    assert max(s for s, _ in logged_points(uri, mid.info.run_id, ["step/loss_d"])["step/loss_d"]) >= 55
    resumed = dltk_process(["run", "--resume", run], {})
    assert resumed.returncode == 0, resumed.stderr
    assert "writer 'mlflow' failed" not in resumed.stderr
    found = only_mlflow_run(uri)  # the same MLflow run, continued
    assert found.info.run_id == mid.info.run_id and found.info.status == "FINISHED"
    expected = expected_points(run)
    assert {"step/loss_d", "step/loss_g", "epoch/loss_d"} <= expected.keys()
    logged = logged_points(uri, found.info.run_id, expected)
    for key, points in logged.items():
        steps = [step for step, _ in points]
        assert len(steps) == len(set(steps)), f"{key}: a step logged twice"
    assert logged == {k: sorted(v) for k, v in expected.items()}  # bit-exact resume: the same values
    assert found.data.tags["dltk.resumed_from"] == "44"
    artefacts = Path(found.info.artifact_uri.removeprefix("file://"))
    assert sorted(p.name for p in (artefacts / "samples").glob("grid_*.png")) == sorted(
        p.name for p in (run / "samples").glob("grid_*.png")
    )
