"""The mlflow writer's store is checked before a run (issue 23): a bad URI, a missing folder, a file
that is not a database, a locked database, an unreachable server: one line naming the key, exit 2,
nothing written; with no MLflow import at dltk check or --help. A store failing mid-run is reported
once and training goes on."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dltoolkit_mlflow.store import store_problem

CLASSIFY = """
[run]
device = "cpu"
[recipe]
name = "classify"
epochs = 1
[model]
name = "lenet"
[dataset]
name = "digits"
[[writers]]
name = "mlflow"
tracking_uri = "{uri}"
"""


def files(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("mlruns", "'mlruns' is not a tracking URI (give one of sqlite:///FILE.db, http(s)://HOST:PORT, "
                   "postgresql://USER@HOST/DB, mysql://..., file:///FOLDER)"),
        ("ftp://host/x", "'ftp://host/x' is not a tracking URI MLflow can open"),
        ("sqlite:///nowhere/mlruns.db", "folder nowhere does not exist (the database mlruns.db would be made there)"),
        ("sqlite:///notes.db", "notes.db is not a SQLite database (file is not a database)"),
        ("sqlite://", "an in-memory database keeps nothing after the run (give sqlite:///FILE.db)"),
        ("http://127.0.0.1:9", "cannot reach the tracking server at http://127.0.0.1:9 ("),
    ],
)  # fmt: skip
def test_a_store_that_cannot_be_opened_is_one_line_at_check(dltk, recipe_file, tmp_path, uri, problem):
    (tmp_path / "notes.db").write_text("not a database\n" * 200)
    recipe = recipe_file(CLASSIFY.format(uri=uri))
    before = files(tmp_path)
    result = dltk("check", recipe)
    assert result.exit_code == 2
    assert len(result.err_lines) == 1
    assert result.err_lines[0].startswith(f"{recipe}: writers.0.tracking_uri: {problem}")
    assert files(tmp_path) == before


def test_a_locked_database_is_refused_at_check_and_at_start(dltk, recipe_file, tmp_path, monkeypatch):
    monkeypatch.setattr("dltoolkit_mlflow.store.TIMEOUT", 0.2)
    database = tmp_path / "mlruns.db"
    holder = sqlite3.connect(database)
    holder.execute("CREATE TABLE t (x)")
    holder.commit()
    holder.execute("BEGIN EXCLUSIVE")  # another process writing
    recipe = recipe_file(CLASSIFY.format(uri="sqlite:///mlruns.db"))
    line = f"{recipe}: writers.0.tracking_uri: database mlruns.db is locked by another process (waited 0.2 s)"
    before = files(tmp_path)
    for command in (["check", recipe], ["run", recipe, "--run-dir", tmp_path / "run"]):
        result = dltk(*command)
        assert (result.exit_code, result.err_lines) == (2, [line])
    assert files(tmp_path) == before
    holder.rollback()
    holder.close()
    assert store_problem("sqlite:///mlruns.db") is None


def test_a_writer_named_in_run_writers_is_checked_with_its_defaults(dltk, recipe_file, tmp_path):
    (tmp_path / "mlruns.db").mkdir()  # the default store's file is a folder here
    recipe = recipe_file(CLASSIFY.format(uri="sqlite:///x.db").split("[[writers]]")[0])
    result = dltk("check", recipe, 'run.writers=["progress", "mlflow"]')
    assert (result.exit_code, result.err_lines) == (
        2,
        [f"{recipe}: run.writers.1.tracking_uri: mlruns.db is a folder, not a database file"],
    )


@pytest.mark.slow
def test_check_and_help_do_not_import_mlflow(recipe_file, tmp_path):
    recipe = recipe_file(CLASSIFY.format(uri="sqlite:///mlruns.db"))
    probe = (
        "import sys\nfrom dltoolkit.cli import main\ncode = main(sys.argv[1:])\n"
        "print('EXIT', code, 'MLFLOW', any(m == 'mlflow' or m.startswith('mlflow.') for m in sys.modules))"
    )
    for args in (["check", str(recipe)], ["list", "writer"]):
        done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, cwd=tmp_path)
        assert done.stdout.strip().splitlines()[-1] == "EXIT 0 MLFLOW False", done.stderr
    assert not (tmp_path / "mlruns.db").exists()  # dltk check writes nothing


@pytest.mark.slow
def test_a_store_failing_mid_run_is_reported_once_and_training_goes_on(dltk, tiny_gan, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    logged = MlflowClient.log_batch

    def failing(self, run_id, metrics=(), params=(), tags=(), **kwargs):
        if metrics:
            raise ConnectionError("the tracking server went away")
        return logged(self, run_id, metrics=metrics, params=params, tags=tags, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_batch", failing)
    run = tmp_path / "gan"
    writer = f'[[writers]]\nname = "mlflow"\ntracking_uri = "sqlite:///{tmp_path / "m.db"}"\n'
    result = dltk("run", tiny_gan(writer), "recipe.epochs=1", "--run-dir", run)
    assert result.exit_code == 0, result.err
    assert [line for line in result.err_lines if "mlflow" in line] == [
        "dltk: writer 'mlflow' failed (ConnectionError: the tracking server went away); dropped, training goes on"
    ]
    assert [r for r in (run / "metrics.jsonl").read_text().splitlines() if '"epoch"' in r]
