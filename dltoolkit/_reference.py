"""Generate the reference pages from the code: docs/recipes.md and docs/plugin_hooks.md.

``python -m dltoolkit._reference PLUGIN ...`` prints the component part of docs/recipes.md for the
built-ins and the named installed plugins (the project's docs name its first-party ones), from the
registered components' Configs. ``python -m dltoolkit._reference hooks`` prints the whole of
docs/plugin_hooks.md, from the docstrings of every hook in :mod:`dltoolkit.hookspecs` and of the
public records the hooks exchange. Tests keep both pages in step (``tests/test_hooks.py``,
``tests/test_docs_reference.py``). ``python -m dltoolkit._reference --write``, run at the root of a
checkout, rewrites both pages in place.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs

from dltoolkit._component import KINDS, type_name
from dltoolkit._config import RECIPE_CORE_OPTIONS, CheckpointSection, RunSection
from dltoolkit._manager import make_plugin_host
from dltoolkit._registry import Registry

BEGIN = "<!-- BEGIN GENERATED: python -m dltoolkit._reference -->"
END = "<!-- END GENERATED -->"


def _table(rows: list[tuple[str, str, object, str]]) -> list[str]:
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for name, shown_type, default, doc in rows:
        shown = "(required)" if default == "(required)" else f"`{default!r}`".replace("|", "\\|")
        lines.append(f"| `{name}` | {shown_type.replace('|', 'or')} | {shown} | {doc} |")
    return lines


def _section_rows(cls: type) -> list[tuple[str, str, object, str]]:
    attrs.resolve_types(cls)
    return [(f.name, type_name(f.type), f.default, f.metadata.get("doc", "")) for f in attrs.fields(cls)]


def markdown_reference(registry: Registry) -> str:
    lines = [
        BEGIN,
        "",
        "### `[run]`",
        "",
        *_table(_section_rows(RunSection)),
        "",
        "### `[checkpoint]`",
        "",
        *_table(_section_rows(CheckpointSection)),
        "",
        "### `[recipe]`: options of every recipe",
        "",
        "Besides its own options (below), every `[recipe]` table takes these; the core applies them.",
        "",
        *_table([(name, "bool", False, doc) for name, doc in RECIPE_CORE_OPTIONS.items()]),
    ]
    for kind in KINDS:
        for name in registry.names(kind):
            component = registry.components[kind][name]
            lines += ["", f"### {kind} `{name}`", "", f"{component.summary} (plugin `{component.plugin}`)", ""]
            options = component.options()
            lines += _table(options) if options else ["No options besides `name`."]
    lines += ["", END]
    return "\n".join(lines)


def registry_of(plugins: Sequence[str]) -> Registry:
    """The built-ins and the named installed plugins only, whatever else is installed."""
    return Registry(make_plugin_host(env={"DLTK_LOAD_PLUGINS": ",".join(plugins)}))


# --- docs/plugin_hooks.md ----------------------------------------------------------------------

HOOKS_COMMAND = "uv run python -m dltoolkit._reference --write"
"""Regenerates this page (and docs/recipes.md's generated part), run at the root of a checkout."""

HOOKS_INTRO = """\
# Plugin hooks

<!-- GENERATED from dltoolkit/hookspecs.py by: {command}
     Edit the docstrings there (or the introduction in dltoolkit/_reference.py), not this page. -->

The contract between dltoolkit and its plugins is one file,
[`dltoolkit/hookspecs.py`](../dltoolkit/hookspecs.py); this page is generated from it (every hook,
its signature, its docstring and its result mode) and from the docstrings of the records the hooks
exchange ([`Component`](#component), [`Scalar`](#scalar), [`option`](#option),
[`DataSpec`](#dataspec), [`Trained`](#trained)). A plugin is a module with functions decorated by
`dltoolkit.hookimpl` whose names are the hooks below. To write one, start with
[writing_plugins.md](writing_plugins.md); what each first-party recipe expects of its model is in
[model_contracts.md](model_contracts.md), what a run writes in [run_directory.md](run_directory.md).

Discovery order: built-ins (`dltoolkit.builtin.*`), then the `dltoolkit` entry-point group of
installed distributions, then modules given with `dltk -p MODULE`. `DLTK_LOAD_PLUGINS=a,b` loads
only those entry points (by entry-point or distribution name; built-ins and `-p` modules always
load; an empty value loads none). `DLTK_TRACE_PLUGINS=1` traces every hook call, the registry hooks
included, to stderr. `dltk plugins` lists what loaded and what failed, and why.

Rules that hold for every hook:

- Hooks are called with keyword arguments; an implementation may take fewer arguments than the
  specification lists (pluggy matches by name).
- Registry hooks (`dltk_register_*`) return data, a list of `dltoolkit.Component`; the host checks
  it. They are called once per `dltk` invocation, each plugin's implementation on its own: a hook
  that raises (or returns something that is not a list of components) is reported by plugin name
  as a `problem:` in `dltk plugins`, and the other plugins keep working. Two plugins registering
  the same name for one kind is an error naming both plugins and their distributions; neither
  component can be used.
- A plugin that fails to import, misspells a hook name (`dltk_register_model`) or implements one
  with arguments the spec does not have is listed as `FAILED:` by `dltk plugins`; only a recipe
  file that needs one of its components fails, with a message naming it.
- Inside the training loop the extension point is Ignite's `Events`, not pluggy: attach handlers
  to the engine in `dltk_engine_created` (or from a callback component). There is no per-batch
  hook dispatch.
- Result modes: *collect all* calls every plugin's implementation and collects what each returns;
  *first result* stops at the first implementation that returns something other than None.
- A user error is a `dltoolkit.DltkError` whose lines read `key.path: what is wrong`; the user
  sees them prefixed with the recipe file, exit code 2, no traceback, and nothing is written.
"""

_ROLES = re.compile(r":(?:class|func|meth|data|mod|attr|exc):`(~?)([^`]+)`")
_FIELD = re.compile(r"^(Called|Args|Returns|Raises|Result mode|When|Example)s?:")
_DOC_PAGE = re.compile(r"(?<!\]\()(?<![\w/`\[])docs/([\w-]+\.md)")
_MODE = re.compile(r"Result mode:\s*([^.;\n]+)")


def _role(match: re.Match[str]) -> str:
    """``:class:`~dltoolkit.Run``` as ``Run``; ``:meth:`dltoolkit.Run.fit``` as ``Run.fit``."""
    target = match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target.removeprefix('dltoolkit.')}`"


def _markdown(doc: str) -> str:
    """A reST-flavoured docstring as Markdown: roles and double backquotes as code, ``docs/PAGE.md`` as
    a link; a line starting with a field (``Called:``, ``Args:``, ``Returns:``, ...) starts a
    paragraph, the field in bold."""
    text = _ROLES.sub(_role, doc).replace("``", "`")
    text = _DOC_PAGE.sub(lambda m: f"[{m.group(1)}]({m.group(1)})", text)  # the page sits beside them
    lines: list[str] = []
    for line in text.splitlines():
        if _FIELD.match(line) and lines and lines[-1].strip():
            lines.append("")
        lines.append(_FIELD.sub(lambda m: f"**{m.group(0)[:-1]}**:", line))
    return "\n".join(lines)


def hook_specs(module: ModuleType) -> list[Callable[..., Any]]:
    """Every function of ``module`` marked as a hook specification, in the order it defines them."""
    from dltoolkit.hookspecs import PROJECT_NAME

    marker = f"{PROJECT_NAME}_spec"
    return [value for value in vars(module).values() if inspect.isfunction(value) and hasattr(value, marker)]


def result_mode(spec: Callable[..., Any]) -> str:
    """What the caller does with the implementations' results: the docstring's ``Result mode:``, else
    what the marker says (``first result`` for ``firstresult``, ``collect all`` otherwise)."""
    from dltoolkit.hookspecs import PROJECT_NAME

    found = _MODE.search(inspect.getdoc(spec) or "")
    if found:
        return found.group(1).strip()
    options = getattr(spec, f"{PROJECT_NAME}_spec", {}) or {}
    mode = "first result" if options.get("firstresult") else "collect all"
    return f"{mode}, historic" if options.get("historic") else mode


def _signature(function: Callable[..., Any]) -> str:
    return f"{function.__name__}{inspect.signature(function)}".replace("'", "")


def _summary(doc: str) -> str:
    return _markdown(doc.split("\n\n", 1)[0].replace("\n", " ")).replace("|", "\\|")


def _records() -> list[tuple[str, Any]]:
    """The public records the hooks exchange, documented by their own docstrings."""
    import dltoolkit

    return [(name, getattr(dltoolkit, name)) for name in ("Component", "Scalar", "option", "DataSpec", "Trained")]


def hooks_reference(module: ModuleType | None = None) -> str:
    """docs/plugin_hooks.md: the introduction, a table of the hooks, each hook, then the records."""
    if module is None:
        from dltoolkit import hookspecs as module
    specs = hook_specs(module)
    lines = [HOOKS_INTRO.format(command=HOOKS_COMMAND).rstrip(), "", "| hook | what | mode |", "|---|---|---|"]
    for spec in specs:
        doc = inspect.getdoc(spec) or ""
        lines.append(f"| [`{spec.__name__}`](#{spec.__name__}) | {_summary(doc)} | {result_mode(spec)} |")
    for spec in specs:
        lines += ["", f"## `{spec.__name__}`", "", "```python", _signature(spec), "```", ""]
        doc = inspect.getdoc(spec) or "(undocumented)"
        lines.append(_markdown(doc))
        if not _MODE.search(doc):
            lines += ["", f"**Result mode**: {result_mode(spec)}."]
    lines += ["", "## The records the hooks exchange"]
    for name, record in _records():
        shown = _signature(record) if inspect.isfunction(record) else _call(name, _fields(record))
        lines += ["", f"### `{name}`", "", "```python", shown, "```", "", _markdown(inspect.getdoc(record) or "")]
    return "\n".join(lines) + "\n"


def _literal(value: Any) -> str:
    """A default as ruff formats it: strings in double quotes."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' if isinstance(value, str) else repr(value)


def _call(name: str, arguments: list[str], width: int = 120) -> str:
    """``name(a, b=1)`` laid out as ruff lays out a call: on one line if it fits in ``width``, else the
    arguments on one indented line, else one argument a line with a trailing comma."""
    joined = ", ".join(arguments)
    if len(name) + len(joined) + 2 <= width:
        return f"{name}({joined})"
    if len(joined) + 4 <= width:
        return f"{name}(\n    {joined}\n)"
    return name + "(\n" + "".join(f"    {argument},\n" for argument in arguments) + ")"


def _fields(record: type) -> list[str]:
    """``name``, ``summary=""``, ...: an attrs class's constructor arguments, as users write them."""
    shown = []
    for field in attrs.fields(record):
        if not field.init:
            continue
        if field.default is attrs.NOTHING:
            shown.append(field.name)
        elif isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
            shown.append(f"{field.name}={_literal(field.default.factory())}")  # type: ignore[union-attr]
        else:
            shown.append(f"{field.name}={_literal(field.default)}")
    return shown


# --- both pages at once -----------------------------------------------------------------------


def checkout_plugins(root: Path) -> tuple[str, ...]:
    """The entry-point names of the plugins under ``root/plugins/*/pyproject.toml``: the first-party
    plugins whose components docs/recipes.md documents (read from the checkout, never listed here)."""
    from dltoolkit._toml import tomllib

    names: list[str] = []
    for pyproject in sorted((root / "plugins").glob("*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        names += list(project.get("entry-points", {}).get("dltoolkit", {}))
    return tuple(names)


def write_pages(root: Path) -> list[Path]:
    """Regenerate ``root/docs/plugin_hooks.md`` and the generated part of ``root/docs/recipes.md``
    (the built-ins and the plugins of ``root/plugins/``) in place; return the pages that changed."""
    docs = root / "docs"
    recipes = docs / "recipes.md"
    text = recipes.read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    pages = {
        recipes: text[:start] + markdown_reference(registry_of(checkout_plugins(root))) + text[end:],
        docs / "plugin_hooks.md": hooks_reference(),
    }
    changed = []
    for path, new in pages.items():
        if not path.is_file() or path.read_text(encoding="utf-8") != new:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[1:] == ["hooks"]:
        sys.stdout.write(hooks_reference())
    elif sys.argv[1:] == ["--write"]:
        for page in write_pages(Path.cwd()):
            print(f"rewrote {page}")
    else:
        print(markdown_reference(registry_of(sys.argv[1:])))
