"""Components: named factories with a frozen attrs ``Config``, registered by plugins.

A component also says, as plain data, what it is and what it needs, so that ``dltk check`` can
refuse a recipe file whose parts do not fit before anything is built (see :mod:`dltoolkit._compat`).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from dltoolkit._errors import DltkError
from dltoolkit._metrics import as_run_metric
from dltoolkit._options import RESUMABLE, is_resumable, option, type_name

__all__ = ["KINDS", "Component", "Ref", "Scalar", "accepted", "is_resumable", "option", "type_name"]

KINDS: tuple[str, ...] = ("recipe", "model", "dataset", "metric", "callback", "writer")
"""The kinds of component, in the order ``dltk list`` shows them."""

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
    formerly: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    """Names this scalar had before (``"train_loss"``): a bare ``best_by`` of a run directory
    written then still finds it."""

    @property
    def higher_is_better(self) -> bool:
        return self.better == "higher"


_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class Ref:
    """A callable named by a ``"module:attr"`` string, imported when it is first called.

    A component's ``factory``, ``offers`` and ``check`` may be given this way, so that registering a plugin
    imports nothing heavy (``dltk list``, ``plugins`` and ``check`` never load torch). ``where``
    names the plugin, component and role in the one-line error raised when the string does not
    import or names no callable. ``inspect.signature`` of a ``Ref`` is that of its target.
    """

    def __init__(self, target: str, where: str = "factory"):
        if not _TARGET.match(target):
            raise TypeError(f"{where}: expected 'module:attr', got {target!r}")
        self.target = target
        self.where = where
        self._loaded: Callable[..., Any] | None = None

    def _problem(self, what: str) -> DltkError:
        return DltkError(f"{self.where} {self.target!r} {what}")

    def load(self) -> Callable[..., Any]:
        """The callable named by the string (a :class:`DltkError` of one line if there is none)."""
        if self._loaded is None:
            module_name, _, attribute = self.target.partition(":")
            try:
                value: Any = importlib.import_module(module_name)
            except ImportError as exc:
                raise self._problem(f"does not import: {exc}") from None
            for part in attribute.split("."):
                try:
                    value = getattr(value, part)
                except AttributeError:
                    raise self._problem(f"names no attribute '{attribute}' of module {module_name}") from None
            if not callable(value):
                raise self._problem(f"names {type(value).__name__}, not a callable")
            self._loaded = value
        return self._loaded

    def missing_module(self) -> str | None:
        """Why the module cannot be found, if that can be seen without importing anything new."""
        parts = self.target.partition(":")[0].split(".")
        for index in range(1, len(parts) + 1):
            name = ".".join(parts[:index])
            if name in sys.modules:
                continue
            if index > 1 and ".".join(parts[: index - 1]) not in sys.modules:
                return None  # looking deeper would import the parent package
            try:
                spec = importlib.util.find_spec(name)
            except (ImportError, ValueError):
                return None
            if spec is None:
                return str(self._problem(f"does not import: no module named '{name}'"))
        return None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.load()(*args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(self.load())

    def __eq__(self, other: object) -> bool:
        """Equal to another ``Ref`` or to the string naming the same target."""
        if isinstance(other, str):
            return other == self.target
        return isinstance(other, Ref) and other.target == self.target

    def __hash__(self) -> int:
        return hash(self.target)

    def __repr__(self) -> str:
        return f"Ref({self.target!r})"

    def __str__(self) -> str:
        return self.target


def _callable_or_target(value: Any) -> Any:
    return str(value) if isinstance(value, Ref) else value


def _tags(value: Any) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _needs(value: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    return {str(kind): _tags(tags) for kind, tags in dict(value).items()}


@attrs.frozen
class Component:
    """A named factory of one ``kind``, returned by the ``dltk_register_*`` hooks.

    ``factory(config, **context)`` builds the thing. Name it by a ``"module:attr"`` string
    (imported when a run first builds the component, so that registration imports nothing heavy;
    then ``summary`` is required) or give the callable itself. ``config`` is an instance of
    ``config``, a frozen attrs class whose fields are the options a recipe file may set in this
    component's table (besides ``name``). What ``context`` holds depends on the kind and is documented with
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
    * ``offers`` (recipes): ``offers(model, device) -> Trained`` (a callable or a ``"module:attr"``
      string, like ``factory``), what a finished run of this recipe can do (draw samples,
      predict, export), rebuilt by ``dltk generate``, ``export`` and ``eval`` from a checkpoint
      or an export; if it also takes ``config`` or ``data``, it
      receives the run's validated recipe options or its :class:`DataSpec` (class names, input
      size, vocabulary). None: such commands refuse its runs.
    * ``export_formats`` (recipes): older export formats this recipe reads, ``{format: module}``:
      the file's tensors are that module's state dict.
    * ``check`` (any kind): this component's own check of its options against the others, run by
      ``dltk check`` and ``dltk run`` after the recipe file is validated and before anything is
      built. A function (or a ``"module:attr"`` string naming one, imported when it runs) called
      as ``check(config, where=, tables=, stage=)`` with those arguments it names: its
      validated ``config``; ``where``, its table's key path (``"model"``, ``"metrics.0"``);
      ``tables``, ``{kind: ComponentTable}`` of the recipe, model and dataset; ``stage``,
      ``"check"`` (``dltk check``: the recipe file alone; files it names are the run's to
      check, as dataset folders are), ``"run"`` (a run starts) or ``"resume"``. It returns the
      problems it finds, each a line starting with the key it is about (``f"{where}.arch:
      ..."``), or nothing.

    ``formerly``: names this component had before (``"top_k"``); a recipe file naming one still
    works, with a one-line note on stderr.

    ``summary`` is the one line ``dltk list`` shows; with a callable factory it defaults to the
    first line of its docstring. ``plugin`` and ``kind`` are filled in by the registry. A factory,
    ``offers`` or ``check`` given as a string is kept as a :class:`Ref`, a callable that imports its
    target on first use.

    A metric's factory returns an Ignite ``Metric`` (a held-out metric; its ``config`` is a
    :class:`~dltoolkit.MetricConfig`) or a :class:`~dltoolkit.SampleMetric`;
    :meth:`build` gives the evaluation code one object for either (see :mod:`dltoolkit._metrics`).
    """

    name: str = attrs.field(validator=attrs.validators.instance_of(str))
    factory: Callable[..., Any] | str = attrs.field(converter=_callable_or_target)
    config: type = attrs.field()
    summary: str = ""
    requires: tuple[str, ...] = attrs.field(default=(), converter=_tags)
    provides: tuple[str, ...] = attrs.field(default=(), converter=_tags)
    needs: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict, converter=_needs)
    reports: tuple[Scalar, ...] = attrs.field(default=(), converter=tuple)
    offers: Callable[..., Any] | str | None = attrs.field(default=None, converter=_callable_or_target)
    export_formats: Mapping[str, str] = attrs.field(factory=dict, converter=dict)
    check: Callable[..., Any] | str | None = attrs.field(default=None, converter=_callable_or_target)
    formerly: tuple[str, ...] = attrs.field(default=(), converter=tuple)
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

    @factory.validator
    def _factory_is_callable_or_named(self, _attribute: attrs.Attribute, value: Any) -> None:
        if isinstance(value, str):
            if not self.summary:
                raise TypeError(
                    f"component {self.name!r}: give summary= with a factory named by a string "
                    "(its docstring is not read, so that registering imports nothing)"
                )
        elif not callable(value):
            raise TypeError(f"component {self.name!r}: factory must be a callable or a 'module:attr' string")

    def __attrs_post_init__(self) -> None:
        where = f"plugin '{self.plugin}': {self.kind or 'component'} '{self.name}'"
        for role in ("factory", "offers", "check"):
            value = getattr(self, role)
            if isinstance(value, str):
                object.__setattr__(self, role, Ref(value, f"{where}: {role}"))
        if not self.summary:
            doc = inspect.getdoc(self.factory) or ""
            object.__setattr__(self, "summary", doc.strip().splitlines()[0] if doc else "")

    def missing_module(self) -> str | None:
        """Why a factory or ``offers`` named by a string cannot import, where that shows without
        importing anything (``dltk check`` refuses the component then); None otherwise."""
        for value in (self.factory, self.offers):
            if isinstance(value, Ref) and (problem := value.missing_module()):
                return problem
        return None

    def build(self, config: Any, **context: Any) -> Any:
        """Call the factory with a validated ``config`` and those context arguments it accepts.

        A metric is returned as the evaluation code consumes it: an Ignite ``Metric`` wrapped as
        a :class:`~dltoolkit._metrics.HeldOutMetric` (the factory is called again for each
        evaluation's fresh ``Metric``), a sample metric as it is.
        """
        factory = self.factory.load() if isinstance(self.factory, Ref) else self.factory
        arguments = accepted(factory, context)
        built = factory(config, **arguments)
        if self.kind == "metric":
            return as_run_metric(self, config, built, lambda: factory(config, **arguments))
        return built

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
