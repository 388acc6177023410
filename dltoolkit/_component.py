"""Components: named factories with a frozen attrs ``Config``, registered by plugins."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import attrs

KINDS: tuple[str, ...] = ("recipe", "model", "dataset", "metric", "callback")
"""The kinds of component, in the order ``dltk list`` shows them."""


def option(
    default: Any = attrs.NOTHING,
    *,
    doc: str,
    validator: Any = None,
    converter: Any = None,
    factory: Callable[[], Any] | None = None,
) -> Any:
    """Declare one option of a component ``Config`` (an attrs field with its documentation).

    ``doc`` is shown by ``dltk list -v`` and in the recipes reference. Use attrs validators
    (``attrs.validators.ge(1)``, ``in_(...)``) for ranges and choices: dltoolkit runs them all and
    reports every problem at once.
    """
    if factory is not None:
        return attrs.field(factory=factory, validator=validator, converter=converter, metadata={"doc": doc})
    return attrs.field(default=default, validator=validator, converter=converter, metadata={"doc": doc})


def type_name(annotation: Any) -> str:
    """``int``, ``int | None``, ``tuple[float, float]``: how an option's type reads in docs."""
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("NoneType", "None")


@attrs.frozen
class Component:
    """A named factory of one ``kind``, returned by the ``dltk_register_*`` hooks.

    ``factory(config, **context)`` builds the thing; ``config`` is an instance of ``config``, a
    frozen attrs class whose fields are the options a recipe file may set in this component's
    table (besides ``name``). What ``context`` holds depends on the kind and is documented with
    each hook in :mod:`dltoolkit.hookspecs`.

    ``requires`` (recipes only) names the tables a recipe file must have for it, such as
    ``("model", "dataset")``; ``dltk check`` reports a missing one.

    ``summary`` defaults to the first line of the factory's docstring. ``plugin`` is filled in by
    the registry with the name of the plugin that registered the component.
    """

    name: str = attrs.field(validator=attrs.validators.instance_of(str))
    factory: Callable[..., Any] = attrs.field(validator=attrs.validators.is_callable())
    config: type = attrs.field()
    summary: str = ""
    requires: tuple[str, ...] = ()
    kind: str = ""
    plugin: str = ""

    @config.validator
    def _config_is_attrs(self, _attribute: attrs.Attribute, value: type) -> None:
        if not (isinstance(value, type) and attrs.has(value)):
            raise TypeError(f"component {self.name!r}: config must be an attrs class, got {value!r}")

    def __attrs_post_init__(self) -> None:
        if not self.summary:
            doc = inspect.getdoc(self.factory) or ""
            object.__setattr__(self, "summary", doc.strip().splitlines()[0] if doc else "")

    def build(self, config: Any, **context: Any) -> Any:
        """Call the factory with a validated ``config`` and the kind's context."""
        return self.factory(config, **context)

    def options(self) -> list[tuple[str, str, Any, str]]:
        """``(name, type, default, doc)`` for every option, for listings and docs."""
        rows = []
        attrs.resolve_types(self.config)
        for field in attrs.fields(self.config):
            if field.default is attrs.NOTHING:
                default: Any = "(required)"
            elif isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
                default = field.default.factory()  # type: ignore[union-attr]
            else:
                default = field.default
            rows.append((field.name, type_name(field.type), default, field.metadata.get("doc", "")))
        return rows
