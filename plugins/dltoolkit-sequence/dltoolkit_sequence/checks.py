"""The sequence plugin's component checks: run by ``dltk check`` and ``dltk run`` before anything is
built (no torch here)."""

from __future__ import annotations

from typing import Any


def check_gpt(config: Any, *, where: str, tables: dict[str, Any]) -> list[str]:
    """The training windows (``dataset.seq_len``) must fit in ``model.context``, the model's positions."""
    dataset = tables.get("dataset")
    seq_len = getattr(getattr(dataset, "config", None), "seq_len", None)
    if isinstance(seq_len, int) and seq_len > config.context:
        return [
            f"{where}.context: {config.context} is shorter than the training windows of dataset.seq_len = "
            f"{seq_len}; raise {where}.context or lower dataset.seq_len"
        ]
    return []


def check_transformer(config: Any, *, where: str, tables: dict[str, Any]) -> list[str]:
    """The encoder reads float sequences or series; text (a language model's data) is ``gpt``'s."""
    dataset = tables.get("dataset")
    provides = getattr(getattr(dataset, "component", None), "provides", ())
    if "text" in provides:
        return [
            f"{where}.name: 'transformer' is an encoder of labelled sequences and series, dataset "
            f"'{dataset.name}' gives text; use {where}.name=gpt for a language model"
        ]
    return []
