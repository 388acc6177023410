"""Failures during and around a run are one line with the right exit code, and said once (issue 13,
items 8-9): full disks, run directories made read-only or removed mid-run, damaged run
directories, CIFAR-10 files with the right name and the wrong content."""

from __future__ import annotations

import errno
import os
import pickle
import shutil
from pathlib import Path

import pytest
from runs import helpers_env

HELPERS = Path(__file__).resolve().parent / "helpers"


@pytest.fixture(autouse=True)
def _helpers(monkeypatch):
    monkeypatch.syspath_prepend(str(HELPERS))


@pytest.mark.slow
def test_an_error_inside_training_is_printed_once(tiny_recipe, tmp_path):
    """In a real process (in-process, pytest's log capture would hide Ignite's own logging of it)."""
    args = ["run", str(tiny_recipe()), "recipe.epochs=1", "--run-dir", str(tmp_path / "run")]
    result = _subprocess(*args, DLTK_FAULT_NAN_AT="3")
    assert result.returncode == 1
    assert result.stderr.count("non-finite loss at iteration 3") == 1, result.stderr


def _subprocess(*args: str, **env: str):
    import subprocess
    import sys

    dltk = Path(sys.executable).parent / "dltk"
    return subprocess.run(
        [str(dltk), *args, "-p", "fault_plugin"], capture_output=True, text=True, env=helpers_env(**env), timeout=300
    )


@pytest.mark.slow
@pytest.mark.parametrize("what", ["READONLY", "RMTREE"])
def test_run_directory_made_read_only_or_deleted_mid_run_is_exit_1(tiny_recipe, tmp_path, what):
    if what == "READONLY" and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    run = tmp_path / "run"
    args = ["run", str(tiny_recipe()), "recipe.epochs=1", "checkpoint.unit=iteration", "checkpoint.every=20"]
    result = _subprocess(*args, "--run-dir", str(run), **{f"DLTK_FAULT_{what}_AT": "12"})
    if run.exists():
        for sub in (run, *[p for p in run.rglob("*") if p.is_dir()]):
            sub.chmod(0o700)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert " at iteration " in last and f"continue with: dltk run --resume {run}" in last, result.stderr


def test_full_disk_before_a_run_is_one_line_and_leaves_nothing(dltk, tiny_recipe, tmp_path, monkeypatch):
    from dltoolkit import _atomic

    def full(path, write, **_):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(_atomic, "atomic_write", full)
    run = tmp_path / "run"
    result = dltk("run", tiny_recipe(), "--run-dir", run)
    assert result.exit_code == 2, result.err
    assert result.err_lines[-1] == (
        f"{run / 'recipe.toml'}: disk full (No space left on device); free some space and try again"
    )
    assert "Traceback" not in result.err
    assert not run.exists()


@pytest.mark.parametrize("damage", ["no-checkpoints-folder", "recipe-not-toml", "checkpoints-is-a-file"])
@pytest.mark.slow
def test_resuming_a_damaged_run_directory_is_one_line(dltk, tiny_recipe, tmp_path, damage):
    run = tmp_path / "run"
    assert dltk("run", tiny_recipe(), "recipe.epochs=1", "--run-dir", run).exit_code == 0
    if damage == "no-checkpoints-folder":
        shutil.rmtree(run / "checkpoints")
        (run / "metrics.jsonl").write_text("{not json\n")
    elif damage == "recipe-not-toml":
        (run / "recipe.toml").write_bytes(b"\xff\xfe garbage")
    else:
        shutil.rmtree(run / "checkpoints")
        (run / "checkpoints").write_text("not a folder")
    result = dltk("run", "--resume", run, "recipe.epochs=2")
    assert "Traceback" not in result.err
    if damage == "no-checkpoints-folder":  # no checkpoint yet: starts again (the broken log line is dropped)
        assert result.exit_code == 0, result.err
    else:
        assert result.exit_code == 2, result.err
        assert len(result.err_lines) == 1, result.err


def test_cifar10_file_with_the_right_name_and_wrong_content_is_one_line(dltk, tiny_recipe, tmp_path):
    from dltoolkit.testing import use_cifar10_checksums, write_cifar10

    root = tmp_path / "data"
    sums = write_cifar10(root)
    batch = root / "cifar-10-batches-py" / "data_batch_1"
    with open(batch, "wb") as handle:
        pickle.dump({"labels": [0]}, handle)  # no 'data' key
    import hashlib

    sums = {**sums, "data_batch_1": hashlib.md5(batch.read_bytes()).hexdigest()}
    with use_cifar10_checksums(sums):
        result = dltk("run", tiny_recipe(), "dataset.name=cifar10", f"dataset.root={root}", "--run-dir", tmp_path / "r")
    assert result.exit_code == 2, result.err
    assert "Traceback" not in result.err
    assert len(result.err_lines) == 1
    assert "dataset: CIFAR-10: could not load from" in result.err_lines[0]
