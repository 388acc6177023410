"""Options of component configs: attrs fields with their documentation, shared by components and
the metric config the core owns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

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


def is_resumable(config_class: type, field_name: str) -> bool:
    """Whether ``field_name`` of ``config_class`` was declared with ``option(..., resumable=True)``."""
    for field in attrs.fields(config_class):
        if field.name == field_name:
            return bool(field.metadata.get(RESUMABLE))
    return False
