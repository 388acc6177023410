"""Writers (issue 19, item 2): a run's records and images reach every writer a recipe file names,
a plugin's as much as the built-ins; a raising writer is dropped, and a resumed run's writers are
told where it resumes. Tiny real runs on scikit-learn's digits, in-process."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import attrs
import pytest

from dltoolkit import Component, option

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
[[writers]]
name = "tracker"
"""

TRACKER = '[[writers]]\nname = "tracker"\n'


def tracker_plugin(seen: dict) -> types.ModuleType:
    """A third-party tracker writer, as docs/writers.md shows it, in about 30 lines."""
    from dltoolkit import hookimpl

    @attrs.frozen
    class TrackerConfig:
        fail_on: str = option("", doc="Raise when a record of this kind comes (tests).")

    class Tracker:
        def __init__(self, config: TrackerConfig):
            self.config = config

        def start(self, run, resume_from: int) -> None:
            seen.setdefault("starts", []).append(resume_from)

        def record(self, record) -> None:
            if record.kind == self.config.fail_on:
                raise RuntimeError("the tracker's server went away")
            line = {"kind": record.kind, "epoch": record.epoch, "iteration": record.iteration, **record.values}
            if record.protocol is not None:
                line["protocol"] = dict(record.protocol)
            seen.setdefault("records", []).append({**line, **record.extra})

        def image(self, image) -> None:
            seen.setdefault("images", []).append((image.tag, tuple(image.image.shape), image.iteration, image.path))

        def end(self, exit_code: int) -> None:
            seen.setdefault("ends", []).append(exit_code)

    module = types.ModuleType("tracker_plugin")
    module.dltk_register_writers = hookimpl(lambda: [Component("tracker", Tracker, TrackerConfig)])
    return module


@pytest.fixture
def seen(monkeypatch) -> dict:
    received: dict = {}
    monkeypatch.setitem(sys.modules, "tracker_plugin", tracker_plugin(received))
    return received


def logged(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_writer_plugin_receives_every_scalar_and_image_of_a_gan_run(dltk, tiny_recipe, seen, tmp_path):
    run = tmp_path / "gan"
    result = dltk("run", tiny_recipe(TRACKER), "recipe.epochs=2", "--run-dir", run, "-p", "tracker_plugin")
    assert result.exit_code == 0, result.err
    assert seen["starts"] == [0] and seen["ends"] == [0]
    assert seen["records"] == logged(run)
    assert {r["kind"] for r in seen["records"]} == {"step", "epoch"}
    grids = sorted((run / "samples").glob("grid_*.png"))
    assert [(tag, iteration, path) for tag, _shape, iteration, path in seen["images"]] == [
        ("samples", 44, grids[0]),
        ("samples", 88, grids[1]),
    ]
    assert (run / "tb").is_dir() and any((run / "tb").iterdir())  # the default writers stay on


@pytest.mark.skipif(importlib.util.find_spec("dltoolkit_vision") is None, reason="needs dltoolkit-vision")
def test_a_writer_plugin_receives_every_evaluation_and_image_of_a_classifier_run(dltk, recipe_file, seen, tmp_path):
    run = tmp_path / "classify"
    result = dltk("run", recipe_file(CLASSIFY), "--run-dir", run, "-p", "tracker_plugin")
    assert result.exit_code == 0, result.err
    assert seen["records"] == logged(run)
    evals = [r for r in seen["records"] if r["kind"] == "eval"]
    assert [r["iteration"] for r in evals] == [22, 44] and evals[-1]["protocol"]["accuracy"]["split"] == "test"
    assert len([r for r in seen["records"] if r["kind"] == "classes"]) == 2
    confusions = sorted((run / "samples").glob("confusion_*.png"))
    assert [(tag, path) for tag, _shape, _iteration, path in seen["images"]] == [
        ("confusion/test", confusions[0]),
        ("confusion/test", confusions[1]),
    ]
    assert all(shape[0] == 3 for _tag, shape, _iteration, _path in seen["images"])


def test_no_writers_by_name_leaves_no_tensorboard_folder_and_no_progress(dltk, tiny_recipe, tmp_path):
    run = tmp_path / "quiet"
    result = dltk("run", tiny_recipe(), "recipe.epochs=1", "run.writers=[]", "--run-dir", run)
    assert result.exit_code == 0, result.err
    assert not (run / "tb").exists()
    assert "epoch 1/1" not in result.err
    assert [r["iteration"] for r in logged(run) if r["kind"] == "epoch"] == [44]  # metrics.jsonl: always


def test_a_raising_writer_is_reported_once_and_the_run_goes_on(dltk, tiny_recipe, seen, tmp_path):
    run = tmp_path / "raising"
    recipe = tiny_recipe('[[writers]]\nname = "tracker"\nfail_on = "step"\n')
    result = dltk("run", recipe, "recipe.epochs=1", "--run-dir", run, "-p", "tracker_plugin")
    assert result.exit_code == 0, result.err
    reported = [line for line in result.err_lines if "tracker" in line]
    assert reported == [
        "dltk: writer 'tracker' failed (RuntimeError: the tracker's server went away); dropped, training goes on"
    ]
    assert "records" not in seen and "ends" not in seen  # dropped at its first record
    assert [r["iteration"] for r in logged(run) if r["kind"] == "epoch"] == [44]


def test_a_writer_option_is_validated_like_a_callback_option(dltk, tiny_recipe, seen):
    result = dltk("check", tiny_recipe('[[writers]]\nname = "tracker"\nfail_one = "step"\n'), "-p", "tracker_plugin")
    assert result.exit_code == 2
    assert result.err_lines[-1].endswith("writers.0.fail_one: unknown key (did you mean 'fail_on'?)")


def test_a_resumed_runs_writer_is_told_the_resume_point(dltk, tiny_recipe, seen, tmp_path):
    run = tmp_path / "resumed"
    assert dltk("run", tiny_recipe(TRACKER), "recipe.epochs=1", "--run-dir", run, "-p", "tracker_plugin").exit_code == 0
    seen.clear()
    result = dltk("run", "--resume", run, "recipe.epochs=2", "-p", "tracker_plugin")
    assert result.exit_code == 0, result.err
    assert seen["starts"] == [44]
    assert min(r["iteration"] for r in seen["records"]) > 44
    assert seen["records"] == [r for r in logged(run) if r["iteration"] > 44]
