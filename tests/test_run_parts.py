"""The parts a run is made of (issue 19, item 1), alone: the run directory's journal undone on
resume, the recorder's treatment of writers, best-checkpoint names, and run.json's training time
summed over sessions after a kill -9 (item 9)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dltoolkit._checkpoint import MANIFEST, checkpoints_in, measured_name, read_manifest
from dltoolkit._recorder import Recorder, Writer
from dltoolkit._rundir import JOURNAL_NAME, METRICS_NAME, RunDirectory

HELPERS = Path(__file__).resolve().parent / "helpers"
DLTK = Path(sys.executable).parent / "dltk"


def write_run(folder: Path, *, journal: bool) -> RunDirectory:
    """A run that logged up to iteration 30 and wrote grids at 10, 20, 30 (journaled or not)."""
    directory = RunDirectory(folder, {}, explicit=True, resuming=True)
    (folder / "samples").mkdir(parents=True)
    lines = [json.dumps({"kind": "step", "epoch": 1, "iteration": n}) for n in (10, 20, 30)]
    (folder / METRICS_NAME).write_text("".join(f"{line}\n" for line in lines))
    for n in (10, 20, 30):
        (folder / "samples" / f"grid_{n:08d}.png").write_bytes(b"png")
        if journal:
            directory.journal(folder / "samples" / f"grid_{n:08d}.png", n)
    (folder / "samples" / "interpolation.png").write_bytes(b"latest")
    if journal:
        directory.journal(folder / "samples" / "interpolation.png", 30)
    (folder / "samples" / "holiday_20240101.png").write_bytes(b"a user's photo")
    directory.close()
    return directory


@pytest.mark.parametrize("journal", [True, False], ids=["journal", "older-run-without-journal"])
def test_a_resume_undoes_the_images_and_records_after_its_checkpoint(tmp_path, journal):
    directory = write_run(tmp_path / "run", journal=journal)
    (tmp_path / "run" / "samples" / "grid_00000025.png").write_bytes(b"another schedule's grid")
    directory.undo_after(10)
    samples = tmp_path / "run" / "samples"
    left = sorted(p.name for p in samples.iterdir())
    assert left == ["grid_00000010.png", "holiday_20240101.png", "interpolation.png"]
    assert (samples / "interpolation.png").read_bytes() == b"latest"  # rewritten in place: kept
    logged = (tmp_path / "run" / METRICS_NAME).read_text().splitlines()
    assert [json.loads(line)["iteration"] for line in logged] == [10]
    if journal:
        kept = [json.loads(line) for line in (tmp_path / "run" / JOURNAL_NAME).read_text().splitlines()]
        assert kept == [{"iteration": 10, "path": "samples/grid_00000010.png"}]


def test_a_journal_names_only_the_runs_own_kinds_of_image(tmp_path):
    """With a journal, an image of a kind the run never wrote stays, whatever its name looks like."""
    directory = write_run(tmp_path / "run", journal=True)
    (tmp_path / "run" / "samples" / "photo_00000020.png").write_bytes(b"mine")
    directory.undo_after(10)
    assert (tmp_path / "run" / "samples" / "photo_00000020.png").read_bytes() == b"mine"


class Boom(Writer):
    def __init__(self) -> None:
        self.records = 0

    def record(self, record) -> None:
        self.records += 1
        raise ValueError("no route\nto host")


class Counting:  # a writer needs no base class and only the methods it wants
    def __init__(self) -> None:
        self.records: list = []

    def record(self, record) -> None:
        self.records.append(record)


def test_a_raising_writer_is_reported_once_by_name_and_dropped(capsys):
    boom, counting = Boom(), Counting()
    recorder = Recorder([("boom", boom), ("counting", counting)])
    recorder.start(0)
    for iteration in (1, 2, 3):
        recorder.record("step", {"loss": 1.0}, epoch=1, iteration=iteration)
    recorder.end(0)
    assert boom.records == 1 and len(counting.records) == 3
    assert capsys.readouterr().err.splitlines() == [
        "dltk: writer 'boom' failed (ValueError: no route to host); dropped, training goes on"
    ]


def test_a_writer_of_the_run_directory_stops_the_run_when_it_fails():
    class Full(Boom):
        writes_run_directory = True

    recorder = Recorder([("jsonl", Full())])
    with pytest.raises(ValueError, match="no route"):
        recorder.record("step", {"loss": 1.0}, epoch=1, iteration=1)


def test_listeners_see_each_record_after_the_writers():
    order: list[str] = []

    class First:
        def record(self, record) -> None:
            order.append("writer")

    recorder = Recorder([("first", First())])
    recorder.subscribe(lambda record: order.append(f"listener {record.kind} {record.values['x']}"))
    recorder.record("epoch", {"x": 2.0}, epoch=1, iteration=4)
    assert order == ["writer", "listener epoch 2.0"]


def test_best_names_show_the_score_as_measured():
    assert measured_name("best_checkpoint_79_bpc=-3.1837.pt") == "best_checkpoint_79_bpc=3.1837.pt"
    assert measured_name("best_checkpoint_79_loss=0.5000.pt") == "best_checkpoint_79_loss=-0.5000.pt"
    assert measured_name("best_checkpoint_7_fid=-12.pt") == "best_checkpoint_7_fid=12.pt"


def test_a_lower_is_better_best_is_named_by_its_score_and_older_negated_names_resume(dltk, tiny_recipe, tmp_path):
    run = tmp_path / "best"
    result = dltk("run", tiny_recipe(), "recipe.epochs=2", "checkpoint.best_by=loss_g", "--run-dir", run)
    assert result.exit_code == 0, result.err
    (best,) = (run / "checkpoints").glob("best_checkpoint_*.pt")
    score = float(best.name.rsplit("=", 1)[1][: -len(".pt")])
    epochs = [json.loads(line) for line in (run / METRICS_NAME).read_text().splitlines()]
    assert score == pytest.approx(min(r["loss_g"] for r in epochs if r["kind"] == "epoch"), abs=1e-4)
    assert score > 0  # a loss as measured, not Ignite's negated priority

    negated = best.with_name(best.name.replace("loss_g=", "loss_g=-"))  # as older versions named it
    best.rename(negated)
    manifest = read_manifest(run / "checkpoints")
    manifest[negated.name] = manifest.pop(best.name)
    (run / "checkpoints" / MANIFEST).write_text(json.dumps(manifest))
    result = dltk("run", "--resume", run, "recipe.epochs=4")
    assert result.exit_code == 0, result.err
    assert not list((run / "checkpoints").glob("*.corrupt"))  # the older best was read, not set aside
    left = sorted(p.name for p in (run / "checkpoints").glob("best_checkpoint_*.pt"))
    assert left == [negated.name] or (len(left) == 1 and "=-" not in left[0])  # kept, or replaced by a better


def test_train_seconds_add_up_over_sessions_even_after_a_kill(tiny_recipe, tmp_path):
    """run.json is written with each checkpoint: a session killed by SIGKILL keeps its time."""
    run = tmp_path / "killed"
    path = os.pathsep.join(filter(None, [str(HELPERS), os.environ.get("PYTHONPATH")]))  # the toy's too
    env = {**os.environ, "PYTHONPATH": path, "DLTK_FAULT_KILL_AT": "31"}  # after checkpoint 30
    args = [str(DLTK), "run", str(tiny_recipe()), "checkpoint.unit=iteration", "checkpoint.every=10"]
    killed = subprocess.run([*args, "--run-dir", str(run), "-p", "fault_plugin"], env=env, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    first = json.loads((run / "run.json").read_text())
    assert first["sessions"] == 1 and first["iteration"] == 30 and first["train_seconds"] > 0
    assert checkpoints_in(run / "checkpoints")[0].name == "checkpoint_30.pt"
    env.pop("DLTK_FAULT_KILL_AT")
    resumed = subprocess.run([str(DLTK), "run", "--resume", str(run)], env=env, capture_output=True, text=True,
                             timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    second = json.loads((run / "run.json").read_text())
    assert second["sessions"] == 2 and second["iteration"] == 88 and "finished" in second
    assert second["train_seconds"] > first["train_seconds"]


def test_a_writer_that_cannot_be_built_is_reported_and_left_out(capsys):
    import types

    import attrs

    from dltoolkit import Component
    from dltoolkit._recorder import build_writers

    @attrs.frozen
    class NoOptions:
        pass

    def broken(config):
        raise ImportError("No module named 'mlflow'")

    components = {
        "jsonl": Component("jsonl", lambda c: Counting(), NoOptions),
        "mlflow": Component("mlflow", broken, NoOptions),
    }
    registry = types.SimpleNamespace(get=lambda kind, name: components[name])
    recipe_file = types.SimpleNamespace(path=Path("r.toml"), run=types.SimpleNamespace(writers=("mlflow",)), writers=())
    assert [name for name, _writer in build_writers(recipe_file, registry)] == ["jsonl"]
    assert capsys.readouterr().err.splitlines() == [
        "dltk: writer 'mlflow' failed (ImportError: No module named 'mlflow'); dropped, training goes on"
    ]


@pytest.mark.slow
def test_a_run_killed_before_its_first_periodic_checkpoint_resumes_from_its_best_one(tiny_recipe, tmp_path):
    """Only a best checkpoint was written when the run was killed: --resume continues from it (it holds the
    whole training state) instead of starting again and replacing it (user trial)."""
    run = tmp_path / "killed"
    path = os.pathsep.join(filter(None, [str(HELPERS), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "DLTK_FAULT_KILL_AT": "50"}  # in epoch 2, after epoch 1's best
    args = [str(DLTK), "run", str(tiny_recipe()), "checkpoint.every=5", "checkpoint.best_by=train/loss_g"]
    killed = subprocess.run([*args, "--run-dir", str(run), "-p", "fault_plugin"], env=env, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    assert checkpoints_in(run / "checkpoints") == []
    (best,) = (run / "checkpoints").glob("best_checkpoint_44_*.pt")
    env.pop("DLTK_FAULT_KILL_AT")
    resumed = subprocess.run([str(DLTK), "run", "--resume", str(run)], env=env, capture_output=True, text=True,
                             timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert f"dltk: resuming {run} from {best.name}" in resumed.stderr
    epochs = [json.loads(line) for line in (run / METRICS_NAME).read_text().splitlines()]
    assert [r["epoch"] for r in epochs if r["kind"] == "epoch"] == [1, 2]  # epoch 1 was not trained again
    assert json.loads((run / "run.json").read_text())["sessions"] == 2
