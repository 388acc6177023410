"""One meaning per name: training scalars and held-out scores live in distinct namespaces.

A record of kind ``step`` or ``epoch`` holds training scalars, shown as ``train/<name>``; a record
of kind ``eval`` holds held-out scores, shown as ``eval/<name>``; a plugin's own kind ``k`` as
``k/<name>``. ``metrics.jsonl`` keeps bare keys in each record (its ``kind`` says the namespace);
everything that shows or chooses a name (``best_by``, the progress line, the loss plot,
TensorBoard, ``dltk compare``) uses the namespaced one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dltoolkit._suggest import did_you_mean, one_of

TRAIN = "train"
EVAL = "eval"
TRAINING_KINDS = ("step", "epoch")


def namespace(kind: str) -> str:
    """The namespace of a record's values: ``train`` for ``step``/``epoch``, else the kind."""
    return TRAIN if kind in TRAINING_KINDS else kind


def qualified(kind: str, name: str) -> str:
    """``name`` of a record of ``kind`` in its namespace (``epoch``, ``loss`` -> ``train/loss``)."""
    return f"{namespace(kind)}/{name}"


def split(name: str) -> tuple[str | None, str]:
    """``"eval/accuracy"`` -> ``("eval", "accuracy")``; a bare name -> ``(None, name)``."""
    space, sep, bare = name.partition("/")
    return (space, bare) if sep and space in (TRAIN, EVAL) else (None, name)


def file_safe(name: str) -> str:
    """A namespaced name as it may appear in a file name (``eval/accuracy`` -> ``eval-accuracy``)."""
    return name.replace("/", "-")


def resolve(
    name: str, scores: Mapping[str, Any], old_names: Mapping[str, str] | None = None
) -> tuple[str | None, str | None]:
    """``(namespaced name, None)`` for a score ``name`` (``checkpoint.best_by``), or ``(None, problem)``.

    ``scores`` maps namespaced names to their :class:`~dltoolkit.Scalar`. A namespaced name must be
    one of them; a bare name is accepted when one namespace has it, or when one scalar had it before
    (its ``formerly``). ``old_names`` (a run directory written before namespaces: ``{namespaced
    name: the bare name it had then}``) reads a bare name first as it was meant then, when names
    were unique across training scalars and held-out scores.
    """
    if name in scores:
        return name, None
    space, bare = split(name)
    choices = sorted(scores)
    if space is None:
        old = [q for q, was in (old_names or {}).items() if was == bare and q in scores]
        if len(old) == 1:
            return old[0], None
        found = [q for q in choices if split(q)[1] == bare]
        if len(found) == 1:
            return found[0], None
        if len(found) > 1:
            return None, f"'{bare}' is both {' and '.join(repr(q) for q in found)}; name one of them"
        former = [q for q, s in scores.items() if bare in getattr(s, "formerly", ())]
        if len(former) == 1:
            return former[0], None
    hint = did_you_mean(name, choices) or did_you_mean(bare, choices)
    return None, f"'{name}' is not a score of this recipe file{hint}; choose {one_of(choices)}"


def namespaced(values: Iterable[tuple[str, Any]], kind: str) -> dict[str, Any]:
    """A record's ``values`` keyed by their namespaced names."""
    return {qualified(kind, k): v for k, v in values}
