"""Factories named by ``"module:attr"`` strings: imported when a run builds the component, never by
``dltk list``/``check``; a string that names nothing is one line naming the plugin, component and
string (exit 2), at check time when the module is missing, else when the component is built."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import attrs
import pytest

import dltoolkit
from dltoolkit._component import Ref

PLUGIN = """
import attrs
import dltoolkit


@attrs.frozen
class MlpConfig:
    hidden: int = dltoolkit.option(16, doc="Hidden units.")


@dltoolkit.hookimpl
def dltk_register_models():
    return [
        dltoolkit.Component(
            "lazy-mlp", "lazyplug.heavy:mlp", MlpConfig, summary="An MLP classifier, built lazily.",
            provides="classifier", needs={"dataset": "images"},
        ),
        dltoolkit.Component(
            "lazy-typo", "lazyplug.heavy:mpl", MlpConfig, summary="A factory string naming no attribute.",
            provides="classifier", needs={"dataset": "images"},
        ),
    ]


@dltoolkit.hookimpl
def dltk_register_metrics():
    return [
        dltoolkit.Component(
            "lazy-accuracy", "lazyplug.heavy:accuracy", dltoolkit.MetricConfig, summary="Accuracy, built lazily.",
            needs={"recipe": "evaluate"}, reports=[dltoolkit.Scalar("lazy-accuracy", "Held-out accuracy.", "higher")],
        )
    ]
"""

HEAVY = '''
import math

import torch
from ignite.metrics import Accuracy
from torch import nn


def mlp(config, *, data):
    """An MLP from images to class logits."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(data.shape), config.hidden), nn.ReLU(),
                          nn.Linear(config.hidden, data.num_classes))
    model.spec = data
    return model


def accuracy(config):
    return Accuracy()
'''

BROKEN = """
import attrs
import dltoolkit


@attrs.frozen
class Options:
    size: int = dltoolkit.option(1, doc="A size.")


@dltoolkit.hookimpl
def dltk_register_models():
    return [
        dltoolkit.Component(
            "ghost", "brokenplug.nowhere:build", Options, summary="Its module does not exist.",
            provides="classifier", needs={"dataset": "images"},
        )
    ]
"""

RECIPE = """
seed = 0
[run]
device = "cpu"
threads = 1
[recipe]
name = "classify"
epochs = 1
batch_size = 64
log_every = 1000
[model]
name = "{model}"
[dataset]
name = "digits"
[[metrics]]
name = "lazy-accuracy"
"""

PROBE = """
import sys
from dltoolkit.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in ("torch", "ignite", "lazyplug.heavy") if m in sys.modules)
print("EXIT", code, "HEAVY", ",".join(heavy) or "-")
"""


@pytest.fixture
def plugins_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "site"
    for package, files in {"lazyplug": {"plugin": PLUGIN, "heavy": HEAVY}, "brokenplug": {"plugin": BROKEN}}.items():
        (folder / package).mkdir(parents=True)
        (folder / package / "__init__.py").write_text("")
        for name, text in files.items():
            (folder / package / f"{name}.py").write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(folder))
    return folder


def probe(folder: Path, *args: str) -> tuple[str, str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "PYTHONPATH": str(folder)},
        cwd=folder.parent,
    )
    return result.stdout.strip().splitlines()[-1], result.stderr


def test_list_and_check_never_import_a_factory_named_by_a_string(plugins_dir, recipe_file):
    pytest.importorskip("dltoolkit_vision")  # the classify recipe
    recipe = recipe_file(RECIPE.format(model="lazy-mlp"))
    for args in (["-p", "lazyplug.plugin", "list", "-v"], ["-p", "lazyplug.plugin", "check", str(recipe)]):
        last, err = probe(plugins_dir, *args)
        assert last == "EXIT 0 HEAVY -", (args, last, err)


def test_a_run_imports_the_factory_when_it_builds_the_component(plugins_dir, recipe_file, dltk):
    pytest.importorskip("dltoolkit_vision")
    sys.modules.pop("lazyplug.heavy", None)
    result = dltk("-p", "lazyplug.plugin", "run", recipe_file(RECIPE.format(model="lazy-mlp")), "--run-dir", "r")
    assert result.exit_code == 0, result.err
    assert "lazyplug.heavy" in sys.modules
    assert '"lazy-accuracy":' in Path("r/metrics.jsonl").read_text()


def test_a_module_that_does_not_exist_is_one_line_at_check_time(plugins_dir, recipe_file):
    pytest.importorskip("dltoolkit_vision")
    recipe = recipe_file(RECIPE.format(model="ghost").replace('[[metrics]]\nname = "lazy-accuracy"\n', ""))
    last, err = probe(plugins_dir, "-p", "brokenplug.plugin", "check", str(recipe))
    assert last.startswith("EXIT 2 ") and last.endswith("HEAVY -"), (last, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "plugin 'brokenplug.plugin'" in lines[0] and "model 'ghost'" in lines[0]
    assert "'brokenplug.nowhere:build' does not import: no module named 'brokenplug.nowhere'" in lines[0]
    assert "Traceback" not in err


def test_an_attribute_that_does_not_exist_is_one_line_when_built(plugins_dir, recipe_file, dltk):
    pytest.importorskip("dltoolkit_vision")
    recipe = recipe_file(RECIPE.format(model="lazy-typo"))
    assert dltk("-p", "lazyplug.plugin", "check", recipe).exit_code == 0  # not visible without importing
    result = dltk("-p", "lazyplug.plugin", "run", recipe, "--run-dir", "r")
    assert result.exit_code == 2, result.err
    assert len(result.err_lines) == 1, result.err
    assert (
        "model 'lazy-typo': factory 'lazyplug.heavy:mpl' names no attribute 'mpl' of module lazyplug.heavy"
        in (result.err_lines[0])
    )
    assert "Traceback" not in result.err


@attrs.frozen
class Options:
    size: int = 1


def test_a_string_factory_needs_a_summary_and_the_form_module_colon_attr():
    with pytest.raises(TypeError, match="give summary= with a factory named by a string"):
        dltoolkit.Component("x", "json:dumps", Options)
    with pytest.raises(TypeError, match=r"expected 'module:attr', got 'json\.dumps'"):
        dltoolkit.Component("x", "json.dumps", Options, summary="Dumps.")


def test_a_ref_is_a_lazy_callable_equal_to_its_string():
    ref = Ref("json:dumps", "plugin 'p': model 'x': factory")
    assert ref == "json:dumps" and ref != "json:loads" and str(ref) == "json:dumps"
    assert ref({"a": 1}) == '{"a": 1}'
    import inspect

    assert "obj" in inspect.signature(ref).parameters  # accepted() reads the target's arguments
    component = dltoolkit.Component("x", "json:dumps", Options, summary="Dumps.")
    assert isinstance(component.factory, Ref) and component.factory == "json:dumps"
    assert attrs.evolve(component, plugin="p").factory == component.factory
    with pytest.raises(dltoolkit.DltkError, match=r"^plugin 'p': model 'x': factory 'json:nope' names no attribute"):
        Ref("json:nope", "plugin 'p': model 'x': factory").load()
    with pytest.raises(dltoolkit.DltkError, match=r"'json:__doc__' names str, not a callable"):
        Ref("json:__doc__", "here").load()


def test_a_check_named_by_a_string_is_a_ref_too():
    """One path resolves every ``"module:attr"`` of a component: a ``check`` string that names
    nothing is the same one-line error as a factory's, naming the plugin, component and role."""
    component = attrs.evolve(
        dltoolkit.Component("x", "json:dumps", Options, summary="Dumps.", check="json:nope"), plugin="p", kind="model"
    )
    assert isinstance(component.check, Ref) and component.check == "json:nope"
    with pytest.raises(dltoolkit.DltkError, match=r"^plugin 'p': model 'x': check 'json:nope' names no attribute"):
        component.check({})
