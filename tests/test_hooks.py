"""Every hook of the contract: called when the spec says, with what it says (test_hook_<name>)."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import attrs
import pytest

from dltoolkit import Component, DataSpec, DltkError, ExitCode, hookimpl, hookspecs, option
from dltoolkit._manager import make_plugin_host
from dltoolkit._registry import Registry

ROOT = Path(__file__).resolve().parent.parent


@attrs.frozen
class NoOptions:
    pass


@attrs.frozen
class EveryConfig:
    every: int = option(1, doc="epochs")
    num_samples: int = option(8, doc="samples")
    higher_is_better: bool = option(False, doc="direction")


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []


def make_plugin(recorder: Recorder) -> types.ModuleType:
    module = types.ModuleType("recording_plugin")

    def noop_recipe(config, *, run):
        """Does nothing at all."""
        recorder.calls.append(("recipe", {"run": run}))

    class Counter:  # a dltoolkit.SampleMetric
        name = "count"

        def __init__(self, config):
            self.every = config.every

        @staticmethod
        def evaluate_together(run, metrics):
            recorder.calls.append(("evaluate", {"n": len(metrics)}))
            return {"count": {"value": 1.0, "note": "protocol"}}

    def probe_recipe(config, **context):
        """Builds every part the way recipes do, so each factory's arguments can be checked."""
        recorder.calls.append(("recipe-factory", context))
        run = context["run"]
        run.build_dataset()
        run.build_model()
        run.reference("test")
        run.build_metrics()
        run.build_callbacks()

    class Samples:
        spec = DataSpec.images((1, 4, 4))

        def __len__(self) -> int:
            return 4

    def model_factory(config, **context):
        recorder.calls.append(("model-factory", context))

    def dataset_factory(config, **context):
        recorder.calls.append(("dataset-factory", context))
        return Samples()

    def metric_factory(config, **context):
        recorder.calls.append(("metric-factory", context))
        return Counter(config)

    def callback_factory(config, **context):
        recorder.calls.append(("callback-factory", context))

    @hookimpl
    def dltk_register_recipes():
        return [Component("noop", noop_recipe, NoOptions), Component("probe", probe_recipe, NoOptions)]

    @hookimpl
    def dltk_register_models():
        return [Component("null-model", model_factory, NoOptions, summary="a model")]

    @hookimpl
    def dltk_register_datasets():
        return [Component("null-data", dataset_factory, NoOptions, summary="a dataset")]

    @hookimpl
    def dltk_register_metrics():
        return [Component("count", metric_factory, EveryConfig, summary="a metric")]

    @hookimpl
    def dltk_register_callbacks():
        return [Component("null-callback", callback_factory, NoOptions, summary="a callback")]

    @hookimpl
    def dltk_configure(run):
        recorder.calls.append(("configure", {"created": run.created}))

    @hookimpl
    def dltk_engine_created(run, engine, role):
        recorder.calls.append(("engine_created", {"role": role, "engine": engine}))

    @hookimpl
    def dltk_run_finished(run, exit_code):
        recorder.calls.append(("run_finished", {"exit_code": exit_code}))

    for name, value in list(locals().items()):
        if name.startswith("dltk_"):
            setattr(module, name, value)
    return module


@pytest.fixture
def recorder(monkeypatch) -> Recorder:
    rec = Recorder()
    monkeypatch.setitem(sys.modules, "recording_plugin", make_plugin(rec))
    return rec


def registry_with(module) -> Registry:
    return Registry(make_plugin_host([module], env={"DLTK_LOAD_PLUGINS": ""}))


@pytest.mark.parametrize(
    ("hook", "kind", "name"),
    [
        ("dltk_register_recipes", "recipe", "noop"),
        ("dltk_register_models", "model", "null-model"),
        ("dltk_register_datasets", "dataset", "null-data"),
        ("dltk_register_metrics", "metric", "count"),
        ("dltk_register_callbacks", "callback", "null-callback"),
    ],
)
def test_register_hooks_feed_the_registry(recorder, hook, kind, name):
    registry = registry_with("recording_plugin")
    component = registry.get(kind, name)
    assert component.plugin == "recording_plugin"
    assert hookspecs.REGISTER_HOOKS[kind] == hook


def test_hook_dltk_register_recipes(recorder, dltk, recipe_file):
    registry = registry_with("recording_plugin")
    assert registry.get("recipe", "noop").summary == "Does nothing at all."
    result = dltk("run", recipe_file('[recipe]\nname = "noop"\n[run]\ndevice = "cpu"\n'), "-p", "recording_plugin")
    assert result.exit_code == 0, result.err
    assert [c[0] for c in recorder.calls] == ["configure", "recipe", "run_finished"]


PROBE = """
[run]
device = "cpu"
[recipe]
name = "probe"
[model]
name = "null-model"
[dataset]
name = "null-data"
[[metrics]]
name = "count"
[[callbacks]]
name = "null-callback"
"""


@pytest.fixture
def probed(recorder, dltk, recipe_file) -> dict[str, list[dict]]:
    """Each factory's keyword arguments in a run of the probe recipe, by kind."""
    result = dltk("run", recipe_file(PROBE), "-p", "recording_plugin")
    assert result.exit_code == 0, result.err
    calls: dict[str, list[dict]] = {}
    for name, context in recorder.calls:
        if name.endswith("-factory"):
            calls.setdefault(name.removesuffix("-factory"), []).append(context)
    return calls


def test_hook_dltk_register_models(recorder, probed):
    assert registry_with("recording_plugin").get("model", "null-model").summary == "a model"
    assert probed["model"]  # the documented arguments: data=DataSpec and, for images, image_shape=(C, H, W)
    for context in probed["model"]:
        assert set(context) == {"data", "image_shape"}
        assert context["data"] == DataSpec.images((1, 4, 4)) and context["image_shape"] == (1, 4, 4)


def test_hook_dltk_register_datasets(recorder, probed):
    assert registry_with("recording_plugin").get("dataset", "null-data").summary == "a dataset"
    assert probed["dataset"] == [{}, {"split": "test"}]  # the training data, then an evaluation's split


def test_hook_dltk_register_metrics(recorder, probed):
    assert registry_with("recording_plugin").get("metric", "count").summary == "a metric"
    (context,) = probed["metric"]
    assert set(context) == {"run"} and context["run"].recipe_file.recipe.name == "probe"


def test_hook_dltk_register_callbacks(recorder, probed):
    assert registry_with("recording_plugin").get("callback", "null-callback").summary == "a callback"
    assert probed["callback"] == [{}]  # factory(config), nothing else
    (context,) = probed["recipe"]
    assert set(context) == {"run"}  # and a recipe's factory(config, run=run)


def test_hook_dltk_configure(recorder, dltk, recipe_file):
    dltk("run", recipe_file('[recipe]\nname = "noop"\n'), "-p", "recording_plugin")
    assert recorder.calls[0] == ("configure", {"created": False})  # before anything is written


def test_hook_dltk_configure_can_refuse_the_run(monkeypatch, dltk, recipe_file, tmp_path):
    module = make_plugin(Recorder())

    def refuse(run):
        raise DltkError("policy: no runs today")

    module.dltk_configure = hookimpl(refuse)
    monkeypatch.setitem(sys.modules, "recording_plugin", module)
    result = dltk("run", recipe_file('[recipe]\nname = "noop"\n'), "-p", "recording_plugin")
    assert (result.exit_code, result.err_lines[-1]) == (2, "policy: no runs today")
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_hook_dltk_engine_created(dltk, tiny_recipe, monkeypatch):
    rec = Recorder()
    monkeypatch.setitem(sys.modules, "recording_plugin", make_plugin(rec))
    result = dltk("run", tiny_recipe(), "recipe.epochs=1", "-p", "recording_plugin")
    assert result.exit_code == 0, result.err
    (engine_call,) = [c for c in rec.calls if c[0] == "engine_created"]
    assert engine_call[1]["role"] == "trainer"
    assert engine_call[1]["engine"].state.epoch == 1  # the engine the recipe then ran


def test_hook_dltk_add_options(dltk, monkeypatch):
    """A plugin's options show in the command's --help under its name, and only for that command."""
    module = types.ModuleType("options_plugin")

    @hookimpl
    def dltk_add_options(command, parser):
        if command == "predict":
            parser.add_argument("--outline", metavar="DIR", help="also outline the boxes into DIR")

    module.dltk_add_options = dltk_add_options
    monkeypatch.setitem(sys.modules, "options_plugin", module)
    result = dltk("predict", "--help", "-p", "options_plugin")
    assert result.exit_code == 0
    assert "options of plugin options_plugin:\n  --outline DIR" in result.out
    assert "--outline" not in dltk("generate", "--help", "-p", "options_plugin").out
    assert "--outline" not in dltk("predict", "--help").out  # (dltoolkit-detect adds a real --draw)


@pytest.mark.slow
def test_hook_dltk_run_finished(dltk, tiny_recipe, monkeypatch):
    rec = Recorder()
    monkeypatch.setitem(sys.modules, "recording_plugin", make_plugin(rec))
    assert dltk("run", tiny_recipe(), "recipe.epochs=1", "-p", "recording_plugin").exit_code == 0
    assert rec.calls[-1] == ("run_finished", {"exit_code": ExitCode.OK})
    rec.calls.clear()
    # also after a failure: a dataset too small for the batch is refused before training
    result = dltk("run", tiny_recipe(), "recipe.batch_size=5000", "-p", "recording_plugin")
    assert result.exit_code == 2
    assert rec.calls[-1] == ("run_finished", {"exit_code": ExitCode.BAD_INPUT})
    # after a failure during training (a non-finite loss) and after an interrupt (SIGTERM)
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent / "helpers"))
    for env, code in (("DLTK_FAULT_NAN_AT", ExitCode.RUN_FAILED), ("DLTK_FAULT_SIGNAL_AT", ExitCode.TERMINATED)):
        monkeypatch.setenv(env, "3" if env.endswith("NAN_AT") else "3:TERM")
        rec.calls.clear()
        result = dltk("run", tiny_recipe(), "recipe.epochs=1", "-p", "recording_plugin", "-p", "fault_plugin")
        monkeypatch.delenv(env)
        assert result.exit_code == code, result.err
        assert rec.calls[-1] == ("run_finished", {"exit_code": code})


@pytest.mark.slow
def test_metrics_are_evaluated_together_on_schedule(recorder, dltk, tiny_recipe):
    path = tiny_recipe('[[metrics]]\nname = "count"\nevery = 2\n')
    result = dltk("run", path, "recipe.epochs=3", "-p", "recording_plugin")
    assert result.exit_code == 0, result.err
    assert [c for c in recorder.calls if c[0] == "evaluate"] == [("evaluate", {"n": 1})] * 2  # epochs 2 and 3


def test_hook_dltk_register_writers(tiny_recipe):
    """A plugin's writers join the registry and the recipe file names them (runs: test_writers.py)."""
    from dltoolkit._config import RecipeFile

    module = types.ModuleType("writer_plugin")
    module.dltk_register_writers = hookimpl(lambda: [Component("mine", lambda config: object(), NoOptions)])
    registry = Registry(make_plugin_host([module]))
    assert {"jsonl", "tensorboard", "progress", "mine"} <= set(registry.names("writer"))
    recipe = RecipeFile.from_toml(tiny_recipe(), registry, ["run.writers=['mine']"])
    assert recipe.run.writers == ("mine",)
    with pytest.raises(DltkError, match=r"run.writers.0: unknown writer 'mne' \(did you mean 'mine'\?\)"):
        RecipeFile.from_toml(tiny_recipe(), registry, ["run.writers=['mne']"])


def test_hook_dltk_register_commands(dltk, monkeypatch, capsys):
    """A plugin adds a command: listed by dltk --help, parsed with its own options, its handler
    called with the registry; its one-line errors and exit code are any command's; the built-in
    commands do not load plugins for it, and a plugin taking a built-in's name is reported."""
    module = types.ModuleType("command_plugin")
    calls: list = []

    def handler(args, registry):
        calls.append((args.count, "digits" in registry.names("dataset")))
        if args.count < 0:
            raise DltkError("--count: must be at least 0")
        return ExitCode.OK

    @hookimpl
    def dltk_register_commands(subparsers):
        parser = subparsers.add_parser("greet", help="say hello", description="Say hello COUNT times.")
        parser.add_argument("--count", type=int, default=1)
        parser.set_defaults(handler=handler)

    module.dltk_register_commands = dltk_register_commands
    monkeypatch.setitem(sys.modules, "command_plugin", module)
    assert "greet" in dltk("--help", "-p", "command_plugin").out
    assert "--count COUNT" in dltk("greet", "--help", "-p", "command_plugin").out
    assert dltk("greet", "--count", "3", "-p", "command_plugin").exit_code == 0
    assert calls == [(3, True)]
    refused = dltk("-p", "command_plugin", "greet", "--count", "-1")
    assert (refused.exit_code, refused.err_lines) == (2, ["--count: must be at least 0"])
    assert dltk("greet").exit_code == 2  # without the plugin the command does not exist

    clash = types.ModuleType("clash_plugin")
    clash.dltk_register_commands = hookimpl(lambda subparsers: subparsers.add_parser("run"))
    monkeypatch.setitem(sys.modules, "clash_plugin", clash)
    result = dltk("--help", "-p", "clash_plugin")
    if sys.version_info >= (3, 11):  # argparse refuses a second parser of one name from 3.11 on
        assert result.err.startswith("warning: plugin 'clash_plugin': dltk_register_commands: ")
        assert "conflicting subparser: run" in result.err
    assert result.exit_code == 0


def test_every_hook_is_documented_and_tested():
    """Each hook is in hookspecs.HOOK_NAMES, in docs/plugin_hooks.md, and has a test_hook_<name> here."""
    spec_names = sorted(n for n in dir(hookspecs) if n.startswith("dltk_"))
    assert sorted(hookspecs.HOOK_NAMES) == spec_names
    docs = (ROOT / "docs" / "plugin_hooks.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^## `?(dltk_\w+)", docs, flags=re.M))
    assert documented == set(spec_names)
    tests = set(re.findall(r"^def test_hook_(dltk_\w+?)(?:_can_\w+)?\(", Path(__file__).read_text(), flags=re.M))
    assert tests == set(spec_names)
    for name in spec_names:
        assert getattr(hookspecs, name).__doc__, f"{name} has no docstring"
