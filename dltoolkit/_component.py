"""Components: named factories with a frozen attrs ``Config``, registered by plugins.

A component also says, as plain data, what it is and what it needs, so that ``dltk check`` can
refuse a recipe file whose parts do not fit before anything is built (see :mod:`dltoolkit._compat`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import attrs

KINDS: tuple[str, ...] = ("recipe", "model", "dataset", "metric", "callback", "writer")
"""The kinds of component, in the order ``dltk list`` shows them."""

RESUMABLE = "resumable"
"""Metadata key of an option that may change when a run is resumed (see :func:`option`)."""


def option(
    default: Any = attrs.NOTHING,
    *,
    doc: str,
    validator: Any = None,
    converter: Any = None,
    factory: Callable[[], Any] | None = None,
    resumable: bool = False,
) -> Any:
    """Declare one option of a component ``Config`` (an attrs field with its documentation).

    ``doc`` is shown by ``dltk list -v`` and in the recipes reference. Use attrs validators
    (``attrs.validators.ge(1)``, ``in_(...)``) for ranges and choices: dltoolkit runs them all and
    reports every problem at once. ``resumable=True`` declares that the option may be changed
    on ``dltk run --resume RUN key=value`` (epochs, learning rates, logging intervals); every
    other option is fixed once a run has started.
    """
    metadata = {"doc": doc, RESUMABLE: resumable}
    if factory is not None:
        return attrs.field(factory=factory, validator=validator, converter=converter, metadata=metadata)
    return attrs.field(default=default, validator=validator, converter=converter, metadata=metadata)


def type_name(annotation: Any) -> str:
    """``int``, ``int | None``, ``tuple[float, float]``: how an option's type reads in docs."""
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("NoneType", "None")


BETTER = ("lower", "higher", "none")


@attrs.frozen
class Scalar:
    """A number a recipe or a metric reports, declared once with its meaning and direction.

    ``better`` is ``"lower"`` (a loss, FID), ``"higher"`` (accuracy, IS) or ``"none"`` (a
    diagnostic such as a mean probability, never a ``best_by``). The loss plot draws
    scalars of one ``group`` on one panel (``bounds`` fixes its y-range); the progress line,
    TensorBoard (``<kind>/<name>``) and ``checkpoint.best_by`` use the same declarations.
    """

    name: str = attrs.field(validator=attrs.validators.instance_of(str))
    doc: str = ""
    better: str = attrs.field(default="lower", validator=attrs.validators.in_(BETTER))
    group: str = ""
    bounds: tuple[float, float] | None = None

    @property
    def higher_is_better(self) -> bool:
        return self.better == "higher"


def _tags(value: Any) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _needs(value: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    return {str(kind): _tags(tags) for kind, tags in dict(value).items()}


@attrs.frozen
class Component:
    """A named factory of one ``kind``, returned by the ``dltk_register_*`` hooks.

    ``factory(config, **context)`` builds the thing; ``config`` is an instance of ``config``, a
    frozen attrs class whose fields are the options a recipe file may set in this component's
    table (besides ``name``). What ``context`` holds depends on the kind and is documented with
    each hook in :mod:`dltoolkit.hookspecs`; a factory may accept fewer context arguments than
    its kind offers (only those it names are passed).

    What it is and what it needs, checked by ``dltk check`` before anything is built:

    * ``provides``: tags saying what the component is. A dataset says what its samples are
      (``"images"``, ``"sequences"``, ``"text"``, ``"series"``, plus ``"labels"`` when each
      sample has a class, or may have one depending on its options, as an image folder with one
      sub-folder per class: the built data's description is checked again, ``DataSpec.labelled``);
      a model says which kind of model object its factory returns (the tag
      its recipe documents, such as an ``"autoencoder"``).
    * ``needs`` (recipes and models): ``{table kind: tags}`` that the component named by that
      table must provide, e.g. ``{"model": "autoencoder", "dataset": "images"}``.
    * ``requires`` (recipes): the tables a recipe file must have, e.g. ``("model", "dataset")``.
    * ``reports`` (recipes and metrics): the :class:`Scalar` values it reports.
    * ``offers`` (recipes): ``offers(model, device) -> Trained``, what a finished run of this
      recipe can do (draw samples, predict, export), rebuilt by ``dltk generate``, ``export``
      and ``eval`` from a checkpoint or an export; if it also takes ``config`` or ``data``, it
      receives the run's validated recipe options or its :class:`DataSpec` (class names, input
      size, vocabulary). None: such commands refuse its runs.
    * ``export_formats`` (recipes): older export formats this recipe reads, ``{format: module}``:
      the file's tensors are that module's state dict.

    ``summary`` defaults to the first line of the factory's docstring. ``plugin`` is filled in by
    the registry with the name of the plugin that registered the component.
    """

    name: str = attrs.field(validator=attrs.validators.instance_of(str))
    factory: Callable[..., Any] = attrs.field(validator=attrs.validators.is_callable())
    config: type = attrs.field()
    summary: str = ""
    requires: tuple[str, ...] = attrs.field(default=(), converter=_tags)
    provides: tuple[str, ...] = attrs.field(default=(), converter=_tags)
    needs: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict, converter=_needs)
    reports: tuple[Scalar, ...] = attrs.field(default=(), converter=tuple)
    offers: Callable[..., Any] | None = None
    export_formats: Mapping[str, str] = attrs.field(factory=dict, converter=dict)
    kind: str = ""
    plugin: str = ""

    @config.validator
    def _config_is_attrs(self, _attribute: attrs.Attribute, value: type) -> None:
        if not (isinstance(value, type) and attrs.has(value)):
            raise TypeError(f"component {self.name!r}: config must be an attrs class, got {value!r}")

    @reports.validator
    def _reports_are_scalars(self, _attribute: attrs.Attribute, value: tuple[Any, ...]) -> None:
        for item in value:
            if not isinstance(item, Scalar):
                raise TypeError(f"component {self.name!r}: reports must be dltoolkit.Scalar, got {item!r}")

    def __attrs_post_init__(self) -> None:
        if not self.summary:
            doc = inspect.getdoc(self.factory) or ""
            object.__setattr__(self, "summary", doc.strip().splitlines()[0] if doc else "")

    def build(self, config: Any, **context: Any) -> Any:
        """Call the factory with a validated ``config`` and those context arguments it accepts."""
        return self.factory(config, **accepted(self.factory, context))

    def scalar(self, name: str) -> Scalar | None:
        """The declaration of the reported scalar ``name``, if this component reports it."""
        return next((s for s in self.reports if s.name == name), None)

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
            doc = field.metadata.get("doc", "")
            if field.metadata.get(RESUMABLE):
                doc = f"{doc} May change on --resume." if doc else "May change on --resume."
            rows.append((field.name, type_name(field.type), default, doc))
        return rows


def accepted(function: Callable[..., Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """The items of ``context`` that ``function`` takes as keyword arguments (all with ``**kwargs``)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return dict(context)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return dict(context)
    names = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return {k: v for k, v in context.items() if k in names}


def is_resumable(config_class: type, field_name: str) -> bool:
    """Whether ``field_name`` of ``config_class`` was declared with ``option(..., resumable=True)``."""
    for field in attrs.fields(config_class):
        if field.name == field_name:
            return bool(field.metadata.get(RESUMABLE))
    return False
