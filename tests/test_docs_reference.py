"""docs/plugin_hooks.md is generated from dltoolkit/hookspecs.py, whatever hooks the file holds.

(docs/recipes.md, the other generated reference, is checked in tests/test_hooks.py.)
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import sys
import types
from pathlib import Path

import pluggy
import pytest
import tomllib
from runs import needs_first_party

from dltoolkit import hookspecs
from dltoolkit._reference import (
    BEGIN,
    END,
    HOOKS_COMMAND,
    _call,
    checkout_plugins,
    hook_specs,
    hooks_reference,
    markdown_reference,
    registry_of,
    result_mode,
    write_pages,
)

ROOT = Path(__file__).resolve().parent.parent


def test_plugin_hooks_page_is_up_to_date():
    """The committed page is exactly what the generator makes from today's hookspecs.py."""
    page = (ROOT / "docs" / "plugin_hooks.md").read_text(encoding="utf-8")
    assert page == hooks_reference(), f"docs/plugin_hooks.md is stale; regenerate it with: {HOOKS_COMMAND}"


def test_every_hookspec_is_rendered_with_signature_docstring_and_mode():
    page = hooks_reference()
    specs = hook_specs(hookspecs)
    assert [spec.__name__ for spec in specs] == list(hookspecs.HOOK_NAMES)  # in the file's order
    for spec in specs:
        assert f"\n## `{spec.__name__}`\n\n```python\n{spec.__name__}(" in page
        assert f"| [`{spec.__name__}`](#{spec.__name__}) |" in page  # the table at the top
    assert "dltk_engine_created(run: Run, engine: Engine, role: str) -> None" in page
    assert "**Args**: the `Run`, the `ignite.engine.Engine` and its role." in page  # reST roles as code
    assert "[model_contracts.md](model_contracts.md)" in page  # docs/PAGE.md in a docstring: a link


def _module_with_new_hooks() -> types.ModuleType:
    """A hookspecs module as another change might leave it: one more hook of each result mode."""
    module = types.ModuleType("more_hookspecs")
    spec = pluggy.HookspecMarker(hookspecs.PROJECT_NAME)

    def dltk_register_writers() -> list:
        """Return the writers this plugin provides.

        Called: once per run.
        Returns: a list of writers.
        """

    def dltk_pick_device(name: str) -> str:
        """The device for ``name``; the first plugin that answers wins."""

    def not_a_hook() -> None:
        """A helper of the module: no hook, not rendered."""

    module.dltk_register_writers = spec(dltk_register_writers)
    module.dltk_pick_device = spec(firstresult=True)(dltk_pick_device)
    module.not_a_hook = not_a_hook
    return module


def test_a_hook_added_to_the_file_is_rendered_without_touching_the_generator():
    module = _module_with_new_hooks()
    page = hooks_reference(module)
    assert [s.__name__ for s in hook_specs(module)] == ["dltk_register_writers", "dltk_pick_device"]
    assert "## `dltk_register_writers`\n\n```python\ndltk_register_writers() -> list\n```" in page
    assert "**Called**: once per run.\n\n**Returns**: a list of writers." in page  # each field its own paragraph
    assert "## `dltk_pick_device`\n\n```python\ndltk_pick_device(name: str) -> str\n```" in page
    row = "| [`dltk_pick_device`](#dltk_pick_device) | The device for `name`; the first plugin that answers wins. |"
    assert row in page
    assert "not_a_hook" not in page


def test_result_mode_comes_from_the_docstring_else_from_the_marker():
    module = _module_with_new_hooks()
    assert result_mode(module.dltk_register_writers) == "collect all"
    assert result_mode(module.dltk_pick_device) == "first result"
    assert result_mode(hookspecs.dltk_register_recipes) == "collect all (every plugin's list is merged)"
    page = hooks_reference(module)
    assert page.count("**Result mode**: first result.") == 1  # added once where the docstring has none


def test_constructors_are_laid_out_as_ruff_formats_them():
    """`ruff format .` formats the Python blocks of docs/*.md: a generated page must come out as it would."""
    assert _call("Scalar", ["name", 'doc=""']) == 'Scalar(name, doc="")'
    assert _call("Record", ["a" * 50, "b" * 50], width=108) == f"Record(\n    {'a' * 50}, {'b' * 50}\n)"
    assert _call("Record", ["a" * 50, "b" * 50], width=60) == f"Record(\n    {'a' * 50},\n    {'b' * 50},\n)"


def test_the_reference_documents_the_plugins_of_the_checkout():
    assert sorted(checkout_plugins(ROOT)) == [
        "detect",
        "fidelity",
        "fidelity-commandline",
        "gan",
        "mlflow",
        "optuna",
        "sequence",
        "sequence-commandline",
        "translate",
        "translate-commandline",
        "vae",
        "vision",
    ]


def test_write_regenerates_both_pages_in_place_and_keeps_the_hand_written_part(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "plugins").symlink_to(ROOT / "plugins")
    recipes = (ROOT / "docs" / "recipes.md").read_text(encoding="utf-8")
    stale = recipes.replace(recipes[recipes.index(BEGIN) : recipes.index(END)], BEGIN + "\nold\n")
    (tmp_path / "docs" / "recipes.md").write_text(stale, encoding="utf-8")
    assert write_pages(tmp_path) == [tmp_path / "docs" / "recipes.md", tmp_path / "docs" / "plugin_hooks.md"]
    assert (tmp_path / "docs" / "plugin_hooks.md").read_text(encoding="utf-8") == hooks_reference()
    written = (tmp_path / "docs" / "recipes.md").read_text(encoding="utf-8")
    assert written[: written.index(BEGIN)] == recipes[: recipes.index(BEGIN)]  # the hand-written part stays
    assert markdown_reference(registry_of(checkout_plugins(ROOT))) in written
    assert write_pages(tmp_path) == []  # nothing left to change


# --- the opening example of docs/writing_plugins.md --------------------------------------------

WRITING = "docs/writing_plugins.md"
PAGE_FILE = re.compile(r"<!-- file: (\S+) -->\n```\w*\n(.*?)\n```", flags=re.S)


def page_files(page: str = WRITING) -> dict[str, str]:
    """The files a page spells out in full: each block right after a ``<!-- file: PATH -->`` line."""
    return {path: body + "\n" for path, body in PAGE_FILE.findall((ROOT / page).read_text(encoding="utf-8"))}


def test_the_opening_example_is_a_whole_plugin_of_under_30_lines_of_python():
    files = page_files()
    assert set(files) == {
        "dltoolkit-tinynet/pyproject.toml",
        "dltoolkit-tinynet/dltoolkit_tinynet/__init__.py",
        "tiny.toml",
    }
    code = [line for line in files["dltoolkit-tinynet/dltoolkit_tinynet/__init__.py"].splitlines() if line.strip()]
    assert len(code) < 30
    project = tomllib.loads(files["dltoolkit-tinynet/pyproject.toml"])
    assert project["project"]["entry-points"]["dltoolkit"] == {"tinynet": "dltoolkit_tinynet"}


def load_test_module(name: str) -> types.ModuleType:
    """A module of tests/ by file (pytest's importlib mode puts no test folder on sys.path)."""
    spec = importlib.util.spec_from_file_location(f"_docs_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@needs_first_party("vision")
@pytest.mark.slow
def test_the_opening_example_installs_checks_trains_and_predicts(tmp_path, fake_plugins):
    """The page's plugin, written from the page, is found through its entry point (beside the installed
    plugins), and every command of the page that uses its recipe file prints what the page shows."""
    docs_commands = load_test_module("test_docs_commands")
    commands_of, run_command = docs_commands.commands_of, docs_commands.run_command

    for path, text in page_files().items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text, encoding="utf-8")
    project = tomllib.loads((tmp_path / "dltoolkit-tinynet" / "pyproject.toml").read_text())
    ((entry, target),) = project["project"]["entry-points"]["dltoolkit"].items()
    spec = importlib.util.spec_from_file_location(target, tmp_path / "dltoolkit-tinynet" / target / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    installed = []  # the environment's plugins (the page runs beside them), then the page's
    for dist in importlib.metadata.distributions():
        points = {ep.name: ep.value for ep in dist.entry_points if ep.group == "dltoolkit"}
        if points:
            installed.append((dist.metadata["Name"], dist.version, points))
    fake_plugins(*installed, (project["project"]["name"], project["project"]["version"], {entry: module}))

    commands = [c for c in commands_of(WRITING) if "tiny.toml" in c.text or "runs/tiny" in c.text]
    assert len(commands) >= 6, [c.text for c in commands]
    made: dict[str, Path] = {}
    for command in sorted(commands, key=lambda c: " predict " in c.text):  # the run before the predict
        run_command(command, tmp_path, made)
    assert (tmp_path / "runs" / "tiny" / "checkpoints").is_dir()
    rows = (tmp_path / "predictions.csv").read_text().splitlines()
    assert rows[0] == "input,label,probability,true_label" and len(rows) == 361
