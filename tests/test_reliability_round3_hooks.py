"""Reliability, round three (issue 25): a plugin raising in a run hook is said in one line naming the
plugin and the hook (exit 2 before training, 1 during), and ``DLTK_TRACE_PLUGINS`` still shows its
traceback; ``--resume`` of a run whose metrics.jsonl is garbled is one line and writes nothing."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from dltoolkit import DltkError, ExitCode, hookimpl

RECIPE = """
seed = 0
[run]
device = "cpu"
threads = 1
[recipe]
name = "toy"
epochs = 1
batch_size = 64
log_every = 100
[model]
name = "toy-mlp"
latent_dim = 4
hidden_dim = 8
depth = 1
[dataset]
name = "digits"
"""


def raising_plugin(monkeypatch: pytest.MonkeyPatch, hook_name: str) -> str:
    module = types.ModuleType("raising_hooks_plugin")

    def explode() -> None:
        raise ValueError("the plugin's own bug")

    if hook_name == "dltk_configure":

        @hookimpl
        def dltk_configure(run):
            explode()

        module.dltk_configure = dltk_configure
    else:

        @hookimpl
        def dltk_engine_created(run, engine, role):
            explode()

        module.dltk_engine_created = dltk_engine_created
    monkeypatch.setitem(__import__("sys").modules, module.__name__, module)
    return module.__name__


@pytest.mark.parametrize("hook_name", ["dltk_configure", "dltk_engine_created"])
def test_a_plugin_raising_in_a_run_hook_is_one_line_naming_plugin_and_hook(dltk, tmp_path, monkeypatch, hook_name):
    plugin = raising_plugin(monkeypatch, hook_name)
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE)
    result = dltk("-p", plugin, "run", recipe, "--run-dir", tmp_path / "run")
    assert (result.exit_code, result.err_lines) == (
        2,
        [f"plugin '{plugin}': {hook_name} failed: ValueError: the plugin's own bug"],
    )
    assert not (tmp_path / "run").exists()


def test_dltk_trace_plugins_still_shows_the_plugins_traceback(dltk, tmp_path, monkeypatch):
    plugin = raising_plugin(monkeypatch, "dltk_configure")
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE)
    monkeypatch.setenv("DLTK_TRACE_PLUGINS", "1")
    result = dltk("-p", plugin, "run", recipe, "--run-dir", tmp_path / "run")
    assert result.exit_code == 2
    assert "Traceback" in result.err and "in explode" in result.err
    assert result.err_lines[-1] == f"plugin '{plugin}': dltk_configure failed: ValueError: the plugin's own bug"


def test_a_hook_raising_once_training_ran_exits_1():
    from dltoolkit._manager import call_run_hook

    class Caller:
        def __call__(self, **kwargs):
            raise RuntimeError("late")

        def get_hookimpls(self):
            return []

    trainer = types.SimpleNamespace(state=types.SimpleNamespace(iteration=5))
    hook = types.SimpleNamespace(dltk_engine_created=Caller())
    with pytest.raises(DltkError) as info:
        call_run_hook(hook, "dltk_engine_created", run=types.SimpleNamespace(trainer=trainer), engine=None, role="x")
    assert info.value.exit_code == ExitCode.RUN_FAILED
    assert info.value.problems == ("a plugin: dltk_engine_created failed: RuntimeError: late",)


# --- resuming a run whose metrics.jsonl is garbled ------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    from dltoolkit.testing import run_cli

    folder = tmp_path_factory.mktemp("resume")
    (folder / "r.toml").write_text(RECIPE)
    result = run_cli("run", folder / "r.toml", "--run-dir", folder / "run")
    assert result.exit_code == 0, result.err
    return folder / "run"


def snapshot(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("garble", ["not-utf8", "a-folder"])
def test_resume_of_a_run_whose_metrics_are_garbled_is_one_line_and_writes_nothing(dltk, finished, tmp_path, garble):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    metrics = run / "metrics.jsonl"
    if garble == "not-utf8":
        metrics.write_bytes(metrics.read_bytes() + b'{"kind": "step", "x": "\xff\xfe"}\n')
    else:
        metrics.unlink()
        metrics.mkdir()
    before = snapshot(run)
    result = dltk("run", "--resume", run, "recipe.epochs=2")
    assert result.exit_code == 2 and "Traceback" not in result.err, result.err
    assert len(result.err_lines) == 1 and result.err_lines[0].startswith(f"{metrics}: "), result.err
    assert snapshot(run) == before
