"""The command line: help, check, list, plugins, and user errors (exit 2, one line each, no traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command", ["run", "check", "list", "plugins", "generate", "export", "predict", "eval"])
def test_every_command_has_help(dltk, command):
    result = dltk(command, "--help")
    assert result.exit_code == 0 and f"usage: dltk {command}" in result.out


def test_the_help_test_covers_every_command():
    from dltoolkit.cli import COMMANDS

    covered = {"run", "check", "list", "plugins", "generate", "export", "predict", "eval"}
    assert set(COMMANDS) - covered <= {"compare", "new"}, "add the new command to test_every_command_has_help"


def test_check_validates_without_building(dltk, tiny_recipe, tmp_path):
    path = tiny_recipe()
    result = dltk("check", path)
    assert (result.exit_code, result.out.strip()) == (
        0,
        f"{path}: ok (recipe toy; model toy-mlp; dataset digits; callbacks samples)",
    )
    assert not (tmp_path / "runs").exists()


def test_check_reports_all_problems_at_once(dltk, tiny_recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("DLTK_LOAD_PLUGINS", "toy")  # the message lists what is available: pin it
    path = tiny_recipe()
    result = dltk("check", path, "recipe.epochs=0", "model.depthh=2", "dataset.name=mnistt")
    assert result.exit_code == 2
    assert result.err_lines == [
        f"{path}: recipe.epochs: must be >= 1, got 0",
        f"{path}: model.depthh: unknown key (did you mean 'depth'?)",
        f"{path}: dataset.name: unknown dataset 'mnistt' (did you mean 'mnist'?); available: "
        "'cifar10', 'digits', 'fashion-mnist', 'image-folder' or 'mnist'",
    ]
    assert "Traceback" not in result.err


def test_list_shows_components_with_plugin(dltk):
    result = dltk("list")
    assert result.exit_code == 0
    lines = result.out.splitlines()
    assert "recipes:" in lines and "models:" in lines and "callbacks:" in lines
    assert any(line.split()[:1] == ["toy-mlp"] and line.endswith("[dltoolkit-toy]") for line in lines)
    assert any(line.split()[:1] == ["digits"] and line.endswith("[dltoolkit.builtin.datasets]") for line in lines)


def test_list_one_kind_verbose(dltk):
    result = dltk("list", "models", "-v")
    assert result.exit_code == 0
    assert result.out.startswith("models:\n")
    assert "      hidden_dim (int, default 32): " in result.out


def test_list_unknown_kind(dltk):
    result = dltk("list", "modle")
    assert (result.exit_code, result.err_lines) == (
        2,
        [
            "dltk list: unknown kind 'modle' (did you mean 'model'?); choose 'callback', 'dataset', 'metric', "
            "'model', 'recipe' or 'writer'"
        ],
    )


def test_plugins_lists_builtins_and_installed(dltk):
    result = dltk("plugins")
    assert result.exit_code == 0
    rows = {line.split()[0]: line for line in result.out.splitlines()}
    assert rows["dltoolkit.builtin.datasets"].split()[-1] == "ok"
    assert "dltoolkit-toy 0.1.0" in rows["toy"] and rows["toy"].endswith("ok")


def test_plugins_reports_failures(dltk, fake_plugins):
    fake_plugins(("dltoolkit-broken", "0.2", {"broken": "no_such_module_xyz"}))
    result = dltk("plugins")
    row = next(line for line in result.out.splitlines() if line.startswith("broken"))
    assert "dltoolkit-broken 0.2" in row and "FAILED: ModuleNotFoundError: No module named 'no_such_module_xyz'" in row


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run"], "dltk run: give a recipe file (dltk run RECIPE [KEY=VALUE ...]) or --resume RUN_DIR"),
        (["run", "nope.toml"], "nope.toml: no such file"),
        (
            ["run", "recipe.epochs=3"],
            "dltk run: the first argument must be the recipe file, got override 'recipe.epochs=3'",
        ),
        (["check", "nope.toml"], "nope.toml: no such file"),
    ],
)
def test_user_errors_are_one_line_exit_2(dltk, args, message):
    result = dltk(*args)
    assert (result.exit_code, result.err_lines) == (2, [message])


def test_bad_override_is_reported_and_nothing_written(dltk, tiny_recipe, tmp_path):
    path = tiny_recipe()
    result = dltk("run", path, "recipe.epochs")
    assert (result.exit_code, result.err_lines) == (
        2,
        ["override 'recipe.epochs': expected KEY=VALUE (for example recipe.epochs=3)"],
    )
    assert not (tmp_path / "runs").exists()


def test_run_dir_must_be_new_or_empty(dltk, tiny_recipe, tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    result = dltk("run", tiny_recipe(), "--run-dir", taken)
    assert (result.exit_code, result.err_lines) == (
        2,
        [f"--run-dir: '{taken}' exists and is not empty; use --resume to continue it"],
    )
    assert sorted(p.name for p in taken.iterdir()) == ["keep.txt"]
    afile = tmp_path / "afile"
    afile.write_text("")
    result = dltk("run", tiny_recipe(), "--run-dir", afile)
    assert (result.exit_code, result.err_lines) == (
        2,
        [f"--run-dir: '{afile}' is a file, not a folder; give a new or empty folder"],
    )
    assert afile.read_text() == ""


def test_unwritable_run_dir_reported_before_training(dltk, tiny_recipe, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    recipe = tiny_recipe()
    result = dltk("run", recipe, f"run.dir={blocker / 'runs'}")
    assert result.exit_code == 2
    assert result.err_lines == [
        f"{recipe}: run.dir: cannot write under '{blocker / 'runs'}' ({blocker} is not a writable folder)"
    ]
    assert blocker.read_text() == "not a folder"


def test_console_script_runs_as_a_process(tmp_path):
    """The installed `dltk` entry point works, and a user error has no traceback."""
    exe = Path(sys.executable).parent / "dltk"
    result = subprocess.run([str(exe), "check", str(tmp_path / "missing.toml")], capture_output=True, text=True)
    assert (result.returncode, result.stderr.strip()) == (2, f"{tmp_path / 'missing.toml'}: no such file")


@pytest.mark.slow
def test_overrides_after_options_and_plugins_before_the_command(dltk, tiny_recipe, tmp_path):
    path = tiny_recipe()
    result = dltk(
        "-p", "dltoolkit.builtin.callbacks", "check", path, "-p", "dltoolkit.builtin.datasets", "recipe.epochs=0"
    )
    assert result.exit_code == 2
    assert result.err_lines == [f"{path}: recipe.epochs: must be >= 1, got 0"]
    result = dltk("run", path, "--run-dir", tmp_path / "r", "recipe.epochs=1", "recipe.batch_size=600")
    assert result.exit_code == 0, result.err
    assert "epochs = 1" in (tmp_path / "r" / "recipe.toml").read_text()
    result = dltk("run", path, "--run-dir", tmp_path / "r2", "--bogus")
    assert result.exit_code == 2 and "unrecognized arguments: --bogus" in result.err


def test_eval_of_a_missing_source_names_it_before_asking_for_metrics(dltk, tmp_path):
    result = dltk("eval", tmp_path / "no-such-run")
    assert (result.exit_code, result.err_lines) == (2, [f"{tmp_path / 'no-such-run'}: no such run directory or file"])
