"""Names of a public module imported on first use, so that importing the module stays light.

``dltk --help``, ``list`` and ``check`` import every plugin's registration module, and those
import :mod:`dltoolkit` and its public modules: what needs torch is imported only when a name is
first looked up.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(module: str, homes: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for the public module ``module``: each name of ``homes`` is read
    from the module ``homes[name]`` when first looked up, and then kept in ``module``."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        setattr(importlib.import_module(module), name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(importlib.import_module(module)), *homes})

    return __getattr__, __dir__
