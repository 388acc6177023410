"""Generate the component part of docs/recipes.md from the registered components' Configs.

``python -m dltoolkit._reference PLUGIN ...`` prints it for the built-ins and the named installed
plugins (the project's docs name its first-party ones); a test keeps docs/recipes.md in step.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

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


if __name__ == "__main__":  # pragma: no cover
    print(markdown_reference(registry_of(sys.argv[1:])))
