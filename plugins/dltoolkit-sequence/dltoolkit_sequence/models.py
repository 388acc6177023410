"""Recurrent models (LSTM, GRU) with a head that follows the data: classes for labelled sequences,
the next character for text."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from dltoolkit import DataSpec, DltkError
from dltoolkit_sequence.options import RnnConfig

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


class SequenceModel(nn.Module):
    """A stack of recurrent layers and a linear head; what the sequence recipes train.

    * ``task == "classify"`` (``sequences`` data with labels): ``forward(x)`` maps float
      sequences ``(N, T, F)`` to class logits ``(N, num_classes)``, read from the last layer's
      final hidden state (both directions when bidirectional).
    * ``task == "forecast"`` (``series`` data): the same, with ``horizon`` outputs: the next
      values, normalised; ``scale`` is the ``(mean, std)`` that maps them back to the series' units.
    * ``task == "next-char"`` (``text`` data): ``forward(ids, state)`` maps token ids ``(N, T)``
      to next-token logits ``(N, T, vocab_size)`` and the recurrent state after the last step,
      which :meth:`forward` takes back to continue a sequence. ``vocab`` decodes ids.
    """

    def __init__(
        self,
        cell: str,
        config: RnnConfig,
        *,
        task: str,
        input_size: int,
        outputs: int,
        vocab: tuple[str, ...] = (),
        class_names: tuple[str, ...] = (),
    ):
        super().__init__()
        self.cell = cell
        self.task = task
        self.vocab = tuple(vocab)
        self.class_names = tuple(class_names) or tuple(str(i) for i in range(outputs))
        self.scale = (0.0, 1.0)
        self.context = 0
        self.column = ""
        self.directions = 2 if config.bidirectional else 1
        self.embed = nn.Embedding(outputs, config.embedding_dim) if task == "next-char" else None
        self.rnn = CELLS[cell](
            config.embedding_dim if self.embed is not None else input_size,
            config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            bidirectional=config.bidirectional,
            batch_first=True,
        )
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size * self.directions, outputs)

    def forward(self, x: Tensor, state: Any = None) -> Any:
        if self.embed is None:
            _, final = self.rnn(x)
            hidden = final[0] if isinstance(final, tuple) else final  # (layers * directions, N, H)
            last = hidden[-self.directions :].transpose(0, 1).flatten(1)  # the last layer, every direction
            return self.head(self.drop(last))
        out, state = self.rnn(self.embed(x), state)
        return self.head(self.drop(out)), state


def build(cell: str, config: RnnConfig, data: DataSpec) -> SequenceModel:
    """A :class:`SequenceModel` for ``data``: a classifier for labelled sequences, a language model for text."""
    if data.kind == "sequences" and data.num_classes is not None and len(data.shape) == 2:
        return SequenceModel(
            cell,
            config,
            task="classify",
            input_size=data.shape[1],
            outputs=data.num_classes,
            class_names=data.class_names,
        )
    if data.kind == "text" and data.vocab_size:
        if config.bidirectional:
            raise DltkError(
                "model.bidirectional: a language model predicts the next character and may not read the "
                "text backwards; set it to false"
            )
        return SequenceModel(cell, config, task="next-char", input_size=0, outputs=data.vocab_size, vocab=data.vocab)
    if data.kind == "series" and data.horizon and len(data.shape) == 2:
        model = SequenceModel(cell, config, task="forecast", input_size=data.shape[1], outputs=data.horizon)
        model.scale = (float(data.extra.get("mean", 0.0)), float(data.extra.get("std", 1.0)))
        model.context = int(data.shape[0])  # what a forecast reads: the last `context` values of `column`
        model.column = str(data.extra.get("column", ""))
        return model
    raise DltkError(
        f"model: {cell} takes labelled sequences (length x features), series or text, "
        f"the dataset gives {data.describe()}"
    )


def lstm(config: RnnConfig, *, data: DataSpec) -> SequenceModel:
    """LSTM (Hochreiter & Schmidhuber 1997) with a classification or next-character head, per the data."""
    return build("lstm", config, data)


def gru(config: RnnConfig, *, data: DataSpec) -> SequenceModel:
    """GRU (Cho et al. 2014) with a classification or next-character head, per the data."""
    return build("gru", config, data)
