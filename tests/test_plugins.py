"""Plugin discovery: built-ins, entry points (faked and real), -p modules, failures, tracing."""

from __future__ import annotations

import types

import pytest
from toy_plugin import ToyMlpConfig, toy_mlp

from dltoolkit import Component, DltkError, RecipeFile, hookimpl
from dltoolkit._manager import BUILTIN_PLUGINS, make_plugin_host
from dltoolkit._registry import Registry
from dltoolkit.testing import run_cli


def model_plugin(module_name: str, model_name: str) -> types.ModuleType:
    module = types.ModuleType(module_name)

    @hookimpl
    def dltk_register_models():
        return [Component(model_name, toy_mlp, ToyMlpConfig, summary=f"{model_name} from {module_name}")]

    module.dltk_register_models = dltk_register_models
    return module


def test_builtins_always_load(fake_plugins):
    fake_plugins()
    host = make_plugin_host(env={})
    assert [p.name for p in host.plugins] == list(BUILTIN_PLUGINS)
    registry = Registry(host)
    assert registry.names("dataset") == ["cifar10", "digits", "fashion-mnist", "image-folder", "mnist"]
    assert registry.names("model") == []


def test_entry_point_plugin_components_appear(fake_plugins):
    fake_plugins(("dltoolkit-thirdparty", "1.2.3", {"third": model_plugin("thirdparty_mod", "tiny-gan")}))
    host = make_plugin_host(env={})
    info = host.info("third")
    assert (info.distribution, info.version, info.failed) == ("dltoolkit-thirdparty", "1.2.3", False)
    component = Registry(host).get("model", "tiny-gan")
    assert component.plugin == "third" and component.kind == "model"
    assert component.summary == "tiny-gan from thirdparty_mod"


def test_plugin_failing_at_import_does_not_take_others_down(fake_plugins, tiny_recipe):
    fake_plugins(
        ("dltoolkit-broken", "0.1", {"broken": "no_such_module_anywhere"}),
        ("dltoolkit-toy", "0.1.0", {"toy": "toy_plugin"}),
    )
    host = make_plugin_host(env={})
    broken = host.info("broken")
    assert broken.failed
    assert broken.error.startswith("ModuleNotFoundError: No module named 'no_such_module_anywhere'")
    registry = Registry(host)
    # the recipe that needs only working plugins still validates
    RecipeFile.from_toml(tiny_recipe(), registry)
    # a recipe naming something only the broken plugin could provide names that plugin
    with pytest.raises(DltkError) as info:
        registry.get("model", "fancy-gan")
    assert "plugins that failed to load and may provide it: plugin 'broken' (dltoolkit-broken 0.1)" in str(info.value)


def test_duplicate_component_names_name_both_plugins(fake_plugins):
    fake_plugins(
        ("dist-a", "1.0", {"a": model_plugin("mod_a", "twin")}),
        ("dist-b", "2.0", {"b": model_plugin("mod_b", "twin")}),
    )
    registry = Registry(make_plugin_host(env={}))
    assert registry.problems == [
        "model 'twin' is registered by both plugin 'a' (dist-a 1.0) and plugin 'b' (dist-b 2.0)"
    ]
    with pytest.raises(
        DltkError,
        match=r"model 'twin' is registered by both plugin 'a' \(dist-a 1.0\) and "
        r"plugin 'b' \(dist-b 2.0\); uninstall one of them",
    ):
        registry.get("model", "twin")


def test_misspelled_hook_is_reported_and_plugin_skipped(fake_plugins):
    module = types.ModuleType("typo_mod")

    @hookimpl
    def dltk_register_model():  # missing "s"
        return []

    module.dltk_register_model = dltk_register_model
    fake_plugins(("dist-typo", "1.0", {"typo": module}), ("ok-dist", "1.0", {"ok": model_plugin("ok_mod", "fine")}))
    host = make_plugin_host(env={})
    typo = host.info("typo")
    assert typo.failed and "unknown hook 'dltk_register_model'" in typo.error
    assert Registry(host).names("model") == ["fine"]
    # `dltk list` shows what loaded, and says on stderr what did not (user trial: it printed nothing)
    result = run_cli("list", "models")
    assert result.exit_code == 0 and "fine" in result.out
    assert any(
        line.startswith("warning: plugin 'typo' (dist-typo 1.0) failed to load: ")
        and "unknown hook 'dltk_register_model'" in line
        and line.endswith("(dltk plugins)")
        for line in result.err_lines
    ), result.err


def test_wrong_hook_signature_is_reported(fake_plugins):
    module = types.ModuleType("sig_mod")

    @hookimpl
    def dltk_configure(run, surprise):
        pass

    module.dltk_configure = dltk_configure
    fake_plugins(("dist-sig", "1.0", {"sig": module}))
    info = make_plugin_host(env={}).info("sig")
    assert info.failed and "surprise" in info.error


def test_hook_raising_is_reported_by_name(fake_plugins):
    module = types.ModuleType("raising_mod")

    @hookimpl
    def dltk_register_models():
        raise RuntimeError("boom")

    module.dltk_register_models = dltk_register_models
    fake_plugins(("dist-raise", "3.0", {"raiser": module}))
    registry = Registry(make_plugin_host(env={}))
    assert registry.problems == ["plugin 'raiser' (dist-raise 3.0): dltk_register_models failed: RuntimeError: boom"]
    # a recipe naming the model it would have registered is told why it is missing
    problem = registry.problem_with("model", "raised-net")
    assert problem is not None and problem.endswith(
        "; plugins whose dltk_register_models failed: plugin 'raiser' (dist-raise 3.0) (RuntimeError: boom)"
    )
    assert registry.problem_with("dataset", "anything").count("failed") == 0  # only for the kind that failed


def test_load_plugins_env_restricts(fake_plugins):
    fake_plugins(
        ("dist-a", "1.0", {"a": model_plugin("mod_a2", "model-a")}),
        ("dist-b", "1.0", {"b": model_plugin("mod_b2", "model-b")}),
    )
    assert Registry(make_plugin_host(env={"DLTK_LOAD_PLUGINS": "b"})).names("model") == ["model-b"]
    assert Registry(make_plugin_host(env={"DLTK_LOAD_PLUGINS": "dist-a"})).names("model") == ["model-a"]
    assert Registry(make_plugin_host(env={"DLTK_LOAD_PLUGINS": ""})).names("model") == []


def test_dash_p_modules_load_last(fake_plugins, monkeypatch):
    fake_plugins()
    module = model_plugin("local_plugin_mod", "local-gan")
    monkeypatch.setitem(__import__("sys").modules, "local_plugin_mod", module)
    host = make_plugin_host(["local_plugin_mod", "missing_local_mod"], env={})
    assert [p.name for p in host.plugins][-2:] == ["local_plugin_mod", "missing_local_mod"]
    assert host.info("missing_local_mod").failed
    assert Registry(host).names("model") == ["local-gan"]


def test_trace_env_traces_hook_calls(fake_plugins, capsys):
    fake_plugins()
    host = make_plugin_host(env={"DLTK_TRACE_PLUGINS": "1"})
    Registry(host)
    host.hook.dltk_configure(run=None)
    assert "dltk_configure" in capsys.readouterr().err


def test_non_component_result_is_reported(fake_plugins):
    module = types.ModuleType("bad_result_mod")

    @hookimpl
    def dltk_register_datasets():
        return ["not a component"]

    module.dltk_register_datasets = dltk_register_datasets
    fake_plugins(("dist-bad", "1.0", {"bad": module}))
    registry = Registry(make_plugin_host(env={}))
    assert registry.problems == [
        "plugin 'bad' (dist-bad 1.0): dltk_register_datasets returned 'not a component', not a dltoolkit.Component"
    ]


def test_two_distributions_with_one_entry_point_name(fake_plugins):
    fake_plugins(
        ("dist-a", "1.0", {"same": model_plugin("mod_same_a", "model-a")}),
        ("dist-b", "2.0", {"same": model_plugin("mod_same_b", "model-b")}),
    )
    host = make_plugin_host(env={})
    failed = [p for p in host.plugins if p.failed]
    assert [(p.distribution, p.error) for p in failed] == [
        ("dist-b", "entry-point name 'same' is already taken by plugin 'same' (dist-a 1.0)")
    ]
    assert Registry(host).names("model") == ["model-a"]


def test_a_plugin_that_exits_or_interrupts_takes_nothing_down(dltk, tmp_path, monkeypatch):
    """sys.exit or KeyboardInterrupt at import, or in a registration hook, and bad return values:
    each is the plugin's failure, shown by name; the other plugins and the command keep working."""
    (tmp_path / "p_exit.py").write_text("import sys\nsys.exit(3)\n")
    (tmp_path / "p_kbd.py").write_text("raise KeyboardInterrupt\n")
    (tmp_path / "p_hooks.py").write_text(
        "import sys\nfrom dltoolkit import hookimpl\n"
        "@hookimpl\ndef dltk_register_models():\n    return 5\n"
        "@hookimpl\ndef dltk_register_datasets():\n    yield 1 / 0\n"
        "@hookimpl\ndef dltk_register_metrics():\n    sys.exit(4)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    result = dltk("plugins", "-p", "p_exit", "-p", "p_kbd", "-p", "p_hooks")
    assert result.exit_code == 0, result.err
    rows = {line.split()[0]: line for line in result.out.splitlines()}
    assert rows["p_exit"].endswith(f"FAILED: SystemExit: 3 ({tmp_path / 'p_exit.py'}:2)")
    assert rows["p_kbd"].endswith(f"FAILED: KeyboardInterrupt ({tmp_path / 'p_kbd.py'}:1)")
    assert rows["toy"].endswith("ok") and rows["p_hooks"].endswith("ok")
    assert [line for line in result.out.splitlines() if line.startswith("problem:")] == [
        "problem: plugin 'p_hooks': dltk_register_models failed: TypeError: returned 5, not a list of "
        "dltoolkit.Component",
        "problem: plugin 'p_hooks': dltk_register_datasets failed: ZeroDivisionError: division by zero",
        "problem: plugin 'p_hooks': dltk_register_metrics failed: SystemExit: 4",
    ]
    listed = dltk("list", "models", "-p", "p_exit", "-p", "p_kbd", "-p", "p_hooks")
    assert listed.exit_code == 0 and "toy-mlp" in listed.out
