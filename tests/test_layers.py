"""The core's layers: no import circle, each module imports only its own layer and those below.

Read from the source with ``ast``, so a violation is found without running anything. Lowest first:

errors and paths -> components and data descriptions -> plugin host and registry -> recipe files
-> run parts -> run -> public API -> plugins (built-ins) -> command line

Where a new module goes: name it in ``LAYERS`` below. A new internal ``_*.py`` module that is not
named there is a run part (the default); a module that is not internal must be named.
Module-level imports set the order; imports inside functions may reach up (that is how the core
imports torch and its own heavier parts late), and ``if TYPE_CHECKING:`` imports never run.
Two rules hold for every import, wherever it is: nothing imports ``dltoolkit.cli`` (only the
entry points ``__main__`` and ``testing``, which run the command line), and the built-in plugins,
written like third-party ones, import no ``dltoolkit._*`` module (tests/test_public_api.py checks
the names they import), while the core imports no plugin.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dltoolkit"

LAYERS: dict[str, tuple[str, ...]] = {
    "errors and paths": ("_errors", "_paths", "_atomic", "_suggest", "_lazy", "_rundir", "_names"),
    "components and data descriptions": (
        "_component",
        "_dataspec",
        "_compat",
        "_data",
        "_datasources",
        "_images",
        "_sampling",
        "_trained",
        "_options",
        "_metrics",
    ),
    "plugin host and registry": ("hookspecs", "_manager", "_registry"),
    "recipe files": ("_toml", "_config", "_reference"),
    "run parts": ("_checkpoint", "_limits", "_resume", "_scalars", "_distributed"),
    "run": ("_run",),
    "public API": ("", "data", "images", "files", "sampling", "writers"),
    "plugins": ("builtin",),
    "command line": (
        "cli",
        "_cli_args",
        "_launch",
        "_listing",
        "__main__",
        "testing",
        "_generate",
        "_evaluate",
        "_compare",
        "_new_plugin",
        "_predict",
        "_runrecords",
    ),
}
"""Module names relative to ``dltoolkit`` (``""`` is the package itself); ``builtin`` stands for
``dltoolkit.builtin`` and every module in it."""

DEFAULT_LAYER = "run parts"
ORDER = list(LAYERS)
CLI_ENTRY_POINTS = {"dltoolkit.__main__", "dltoolkit.testing"}


def module_files() -> dict[str, Path]:
    """Every module of the package (templates aside), by dotted name."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(ROOT).with_suffix("")
        if "templates" in relative.parts:
            continue
        parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
        found[".".join(parts)] = path
    return found


MODULES = module_files()


def layer_of(module: str) -> str:
    """The layer of ``module`` (a dotted name inside dltoolkit)."""
    relative = module.removeprefix("dltoolkit").removeprefix(".")
    if relative == "builtin" or relative.startswith("builtin."):
        relative = "builtin"
    for layer, names in LAYERS.items():
        if relative in names:
            return layer
    if relative.startswith("_") and "." not in relative:
        return DEFAULT_LAYER
    raise KeyError(f"{module}: not in LAYERS of {__file__} (only internal _*.py modules have a default layer)")


class Import:
    """One import statement's target module, where it is (module level or not) and its line."""

    def __init__(self, target: str, line: int, *, module_level: bool, type_checking: bool):
        self.target = target
        self.line = line
        self.module_level = module_level
        self.type_checking = type_checking


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports_of(module: str, path: Path) -> Iterator[Import]:
    """The dltoolkit modules that ``module`` imports: ``from dltoolkit import _checkpoint`` is
    an import of ``dltoolkit._checkpoint``, ``from dltoolkit import Component`` one of the package."""
    is_package = path.name == "__init__.py"

    def walk(node: ast.AST, module_level: bool, type_checking: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(alias.name, child.lineno, module_level=module_level, type_checking=type_checking)
            elif isinstance(child, ast.ImportFrom):
                base = _resolve(module, is_package, child)
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    target = sub if sub in MODULES else base
                    yield Import(target, child.lineno, module_level=module_level, type_checking=type_checking)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                yield from walk(child, False, type_checking)
            elif isinstance(child, ast.If) and _is_type_checking(child):
                for statement in child.body:
                    yield from walk(ast.Module(body=[statement], type_ignores=[]), module_level, True)
                for statement in child.orelse:
                    yield from walk(ast.Module(body=[statement], type_ignores=[]), module_level, type_checking)
            else:
                yield from walk(child, module_level, type_checking)

    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for found in walk(tree, True, False):
        if (
            found.target == "dltoolkit"
            or found.target.startswith("dltoolkit.")
            or found.target.startswith("dltoolkit_")
        ):
            yield found


IMPORTS = {module: list(imports_of(module, path)) for module, path in MODULES.items()}


def runtime_graph() -> dict[str, set[str]]:
    """Module-level imports that run when the module is imported, between dltoolkit's modules."""
    return {
        module: {
            i.target
            for i in found
            if i.module_level and not i.type_checking and i.target in MODULES and i.target != module
        }
        for module, found in IMPORTS.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_parser_sees_imports_at_every_level(tmp_path):
    """The rules below are only as good as the import finder: pin what it reports."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "from dltoolkit import _errors, Component\n"
        "if TYPE_CHECKING:\n"
        "    from dltoolkit._run import Run\n"
        "def late():\n"
        "    import dltoolkit.cli\n"
    )
    path = tmp_path / "probe.py"
    path.write_text(source, encoding="utf-8")
    found = [(i.target, i.module_level, i.type_checking) for i in imports_of("dltoolkit._probe", path)]
    assert found == [
        ("dltoolkit._errors", True, False),
        ("dltoolkit", True, False),
        ("dltoolkit._run", True, True),
        ("dltoolkit.cli", False, False),
    ]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_module_has_a_layer():
    assert len(MODULES) > 30
    problems = []
    for module in MODULES:
        try:
            layer_of(module)
        except KeyError as exc:
            problems.append(str(exc.args[0]))
    assert not problems, "\n".join(problems)


def test_no_import_circle_among_module_level_imports():
    assert not cycles(runtime_graph()), "import circles: " + "; ".join(" <-> ".join(c) for c in cycles(runtime_graph()))


KNOWN_LATE_CIRCLES: list[list[str]] = []
"""Circles closed only by an import inside a function (none: ``resolve_device`` lives in ``_limits``)."""


def test_no_import_circle_even_through_late_imports():
    """Imports inside functions may reach up, but may not close a circle (those the list above names aside)."""
    graph = {
        module: {i.target for i in found if not i.type_checking and i.target in MODULES and i.target != module}
        for module, found in IMPORTS.items()
    }
    assert [c for c in cycles(graph) if c not in KNOWN_LATE_CIRCLES] == []


def test_module_level_imports_go_down_the_layers():
    """A module imports, when it is imported, only modules of its own layer or of those below."""
    wrong = []
    for module, targets in sorted(runtime_graph().items()):
        mine = ORDER.index(layer_of(module))
        for target in sorted(targets):
            theirs = ORDER.index(layer_of(target))
            if theirs > mine:
                wrong.append(f"{module} ({ORDER[mine]}) imports {target} ({ORDER[theirs]})")
    assert not wrong, "\n".join(wrong)


def test_nothing_imports_the_command_line():
    wrong = [
        f"{MODULES[module].relative_to(ROOT)}:{i.line}: imports {i.target}"
        for module, found in IMPORTS.items()
        for i in found
        if (i.target == "dltoolkit.cli" or i.target.startswith("dltoolkit.cli.")) and module not in CLI_ENTRY_POINTS
    ]
    assert not wrong, "\n".join(wrong)


def test_built_in_plugins_import_only_public_modules_and_the_core_no_plugin():
    wrong = []
    for module, found in IMPORTS.items():
        plugin = layer_of(module) == "plugins"
        for i in found:
            target_is_plugin = i.target.startswith("dltoolkit.builtin.") or i.target.startswith("dltoolkit_")
            internal = i.target.split(".")[1:2] in (["cli"], ["hookspecs"]) or any(
                part.startswith("_") for part in i.target.split(".")[1:]
            )
            if plugin and internal:
                wrong.append(f"{MODULES[module].relative_to(ROOT)}:{i.line}: the plugin imports {i.target}")
            if not plugin and target_is_plugin:
                wrong.append(f"{MODULES[module].relative_to(ROOT)}:{i.line}: the core imports the plugin {i.target}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    ("module", "layer"),
    [
        ("dltoolkit._errors", "errors and paths"),
        ("dltoolkit._a_part_added_later", DEFAULT_LAYER),
        ("dltoolkit.builtin.datasets", "plugins"),
        ("dltoolkit", "public API"),
        ("dltoolkit.cli", "command line"),
    ],
)
def test_layer_of(module, layer):
    assert layer_of(module) == layer


def test_a_public_module_must_be_placed():
    with pytest.raises(KeyError, match=r"dltoolkit\.somewhere: not in LAYERS"):
        layer_of("dltoolkit.somewhere")
