"""The public API: a small top level, documented public modules, and plugins that use nothing else.

Plugins (first-party, built-in, the templates of ``dltk new plugin``, the example plugin) and the
docs' code import only the public modules below and only the names in their ``__all__``; names
that moved out of the top level still resolve, with a warning that names their new home.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import dltoolkit

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = (
    "dltoolkit",
    "dltoolkit.data",
    "dltoolkit.images",
    "dltoolkit.files",
    "dltoolkit.sampling",
    "dltoolkit.writers",
    "dltoolkit.testing",
)
"""The documented public modules (docs/api.md): everything a plugin may import."""
LIGHT = PUBLIC[:-1]
"""Public modules that registration code may import: they import no torch (testing imports pytest)."""


def public_api() -> dict[str, set[str]]:
    """Each public module's names: its ``__all__``, and for the package its public modules too."""
    api = {name: set(importlib.import_module(name).__all__) for name in PUBLIC}
    api["dltoolkit"] |= {name.split(".")[1] for name in PUBLIC if name != "dltoolkit"}
    return api


API = public_api()


def _dotted(node: ast.AST) -> list[str] | None:
    """``["dltoolkit", "data", "make_loader"]`` for ``dltoolkit.data.make_loader``; None for other expressions."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id, *reversed(parts)]
    return None


def _check_name(module: str, name: str) -> str | None:
    """What is wrong with using ``name`` of the public module ``module`` (None: nothing)."""
    if name.startswith("__") and name.endswith("__"):
        return None
    if name not in API[module]:
        return f"{module}.{name} is not public (not in {module}.__all__; see docs/api.md)"
    return None


def _check_module(module: str) -> str | None:
    if module not in API:
        return f"{module} is not a public module (see docs/api.md)"
    return None


def private_uses(source: str) -> Iterator[tuple[int, str]]:
    """``(line, problem)`` for each use of dltoolkit outside its public API in Python ``source``:
    imports of modules and names, and attributes of ``import dltoolkit[.module]``."""
    tree = ast.parse(source)
    modules: dict[str, str] = {}  # local name -> the dltoolkit module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != "dltoolkit":
                    continue
                if problem := _check_module(alias.name):
                    yield node.lineno, problem
                if alias.asname:
                    modules[alias.asname] = alias.name
                else:
                    modules["dltoolkit"] = "dltoolkit"
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            if node.module.split(".")[0] != "dltoolkit":
                continue
            if problem := _check_module(node.module):
                yield node.lineno, problem
                continue
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if full in API:
                    modules[alias.asname or alias.name] = full
                elif problem := _check_name(node.module, alias.name):
                    yield node.lineno, problem
    seen: set[tuple[int, str]] = set()
    for node in ast.walk(tree):
        parts = _dotted(node) if isinstance(node, ast.Attribute) else None
        if not parts or parts[0] not in modules:
            continue
        module, rest = modules[parts[0]], parts[1:]
        while rest and f"{module}.{rest[0]}" in API:
            module, rest = f"{module}.{rest[0]}", rest[1:]
        if not rest or module not in API:
            continue
        if (problem := _check_name(module, rest[0])) and (node.lineno, problem) not in seen:
            seen.add((node.lineno, problem))
            yield node.lineno, problem


def plugin_sources() -> Iterator[tuple[str, str]]:
    """``(where, Python source)`` of every plugin module: first-party, built-in, example, templates."""
    from dltoolkit._new_plugin import names_for, render

    folders = [ROOT / "plugins", ROOT / "dltoolkit" / "builtin", ROOT / "tests" / "example_plugin"]
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            first_party_tests = folder.name == "plugins" and "tests" in path.relative_to(folder).parts[1:2]
            if not {".venv", "build"} & set(path.parts) and not first_party_tests:  # their tests are the core's kind
                yield str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")
    tokens = names_for("sample-name") | {"__KIND__": "model", "__IMPL__": "models", "__DEPENDENCIES__": '"dltoolkit"'}
    for path in sorted((ROOT / "dltoolkit" / "templates").rglob("*.py.tmpl")):
        yield str(path.relative_to(ROOT)), render(path.read_text(encoding="utf-8"), tokens)


def docs_snippets() -> Iterator[tuple[str, str]]:
    """``(page:line, code)`` of each Python block of the docs that parses as a whole."""
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for match in re.finditer(r"^```python\n(.*?)^```", text, re.M | re.S):
            line = text.count("\n", 0, match.start()) + 1
            try:
                ast.parse(match.group(1))
            except SyntaxError:
                continue
            yield f"{page.relative_to(ROOT)}:{line}", match.group(1)


def test_the_top_level_is_small():
    """The plugin contract and Run's surface; helpers live in the public modules."""
    assert len(dltoolkit.__all__) <= 15, dltoolkit.__all__
    assert len(set(dltoolkit.__all__)) == len(dltoolkit.__all__)


@pytest.mark.parametrize("name", PUBLIC)
def test_each_public_module_is_documented_and_its_names_resolve(name):
    module = importlib.import_module(name)
    assert (module.__doc__ or "").strip(), f"{name} has no module docstring"
    assert module.__all__ and len(set(module.__all__)) == len(module.__all__)
    undocumented = []
    for item in module.__all__:
        value = getattr(module, item)  # AttributeError: a name in __all__ that does not resolve
        if (inspect.isclass(value) or inspect.isfunction(value)) and not inspect.getdoc(value):
            undocumented.append(item)
    assert not undocumented, f"{name}: no docstring on {undocumented}"


def test_docs_api_lists_every_public_module_and_name():
    page = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    missing = [f"{m}" for m in PUBLIC if f"`{m}`" not in page]
    missing += [f"{m}.{n}" for m in PUBLIC for n in importlib.import_module(m).__all__ if f"`{n}`" not in page]
    assert not missing, f"docs/api.md does not list {missing}"


def test_importing_the_public_modules_imports_no_torch():
    """What registration modules import stays light: `dltk --help`, `list` and `check` import no torch."""
    code = (
        f"import sys; import {', '.join(LIGHT)}; import dltoolkit; dltoolkit.data; "
        "print(sorted(m for m in ('torch', 'ignite', 'torchvision', 'sklearn') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(dltoolkit.MOVED))
def test_a_moved_name_still_resolves_and_says_where_it_went(name):
    home = dltoolkit.MOVED[name]
    with pytest.warns(DeprecationWarning, match=rf"^dltoolkit\.{name} moved: it is now "):
        value = getattr(dltoolkit, name)
    assert value is getattr(importlib.import_module(home), name)
    if not home.startswith("dltoolkit._"):
        assert name in importlib.import_module(home).__all__
    assert name not in dltoolkit.__all__


def test_the_old_spelling_still_imports():
    moved_to_data = r"dltoolkit\.make_loader moved: it is now dltoolkit\.data\.make_loader"
    with pytest.warns(DeprecationWarning, match=moved_to_data):
        from dltoolkit import make_loader
    from dltoolkit.data import make_loader as moved

    assert make_loader is moved
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        dltoolkit.no_such_name  # noqa: B018


def test_the_checker_finds_private_uses():
    source = """
import dltoolkit
import dltoolkit.data
import dltoolkit.cli
from dltoolkit import Component, make_loader, images
from dltoolkit._data import InMemoryImages
from dltoolkit.images import save_png, resize
import dltoolkit.images as im

dltoolkit.Run, dltoolkit.data.make_loader, dltoolkit.__version__, dltoolkit.sampling.ImageSampler.noise
dltoolkit.InMemoryImages, dltoolkit.data.nothing, im.to_uint8, im.hidden, images.image_grid, images.hidden2
"""
    assert [(line, problem.split(" ")[0]) for line, problem in private_uses(source)] == [
        (4, "dltoolkit.cli"),
        (5, "dltoolkit.make_loader"),
        (6, "dltoolkit._data"),
        (7, "dltoolkit.images.resize"),
        (11, "dltoolkit.InMemoryImages"),
        (11, "dltoolkit.data.nothing"),
        (11, "dltoolkit.images.hidden"),
        (11, "dltoolkit.images.hidden2"),
    ]


def test_plugins_use_only_the_public_api():
    sources = list(plugin_sources())
    assert len(sources) > 40 and any(w.endswith(".py.tmpl") for w, _ in sources)
    wrong = [f"{where}:{line}: {problem}" for where, source in sources for line, problem in private_uses(source)]
    assert not wrong, "\n".join(wrong)


def test_the_docs_code_uses_only_the_public_api():
    snippets = list(docs_snippets())
    assert len(snippets) > 10
    wrong = [f"{where} (+{line}): {problem}" for where, code in snippets for line, problem in private_uses(code)]
    assert not wrong, "\n".join(wrong)
