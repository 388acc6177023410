"""Built-in plugin: a recipe's own evaluator handlers (``Trained.evaluator_handlers``) on its evaluators.

A recipe hands ``run.fit`` a :class:`~dltoolkit.Trained` whose ``evaluator_handlers`` attach
the recipe's reports to each evaluator engine scoring that model; this plugin calls them, so a
recipe needs no global ``dltk_engine_created`` implementation that filters for its own runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dltoolkit import hookimpl

if TYPE_CHECKING:
    from ignite.engine import Engine


@hookimpl
def dltk_engine_created(run: Any, engine: Engine, role: str) -> None:
    """On an evaluator: call each of the run's ``trained.evaluator_handlers(engine, run)``."""
    trained = getattr(run, "trained", None)
    if role != "evaluator" or trained is None:
        return
    for handler in trained.evaluator_handlers:
        handler(engine, run)
