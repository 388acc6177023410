"""dltoolkit-sequence: recurrent models (LSTM, GRU), sequence classification and character language
models and forecasters for dltoolkit.

Names are imported on first use (PEP 562), so that loading the plugin to register it does not
import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "CLASSIFY_REPORTS": "dltoolkit_sequence.options",
    "LANGUAGE_REPORTS": "dltoolkit_sequence.options",
    "DigitRowsConfig": "dltoolkit_sequence.options",
    "FORECAST_REPORTS": "dltoolkit_sequence.options",
    "ForecastConfig": "dltoolkit_sequence.options",
    "TimeSeriesConfig": "dltoolkit_sequence.options",
    "read_column": "dltoolkit_sequence.data",
    "time_series": "dltoolkit_sequence.data",
    "forecast_mae": "dltoolkit_sequence.metrics",
    "naive_mae": "dltoolkit_sequence.metrics",
    "forecast_eval_step": "dltoolkit_sequence.recipe",
    "make_forecast_step": "dltoolkit_sequence.recipe",
    "train_forecaster": "dltoolkit_sequence.recipe",
    "LanguageModelConfig": "dltoolkit_sequence.options",
    "RnnConfig": "dltoolkit_sequence.options",
    "SequenceClassifyConfig": "dltoolkit_sequence.options",
    "TextFileConfig": "dltoolkit_sequence.options",
    "TensorSequences": "dltoolkit_sequence.data",
    "char_windows": "dltoolkit_sequence.data",
    "digit_rows": "dltoolkit_sequence.data",
    "mnist_rows": "dltoolkit_sequence.data",
    "MnistRowsConfig": "dltoolkit_sequence.options",
    "digits_split_indices": "dltoolkit_sequence.data",
    "read_text": "dltoolkit_sequence.data",
    "text_file": "dltoolkit_sequence.data",
    "SequenceModel": "dltoolkit_sequence.models",
    "build": "dltoolkit_sequence.models",
    "gru": "dltoolkit_sequence.models",
    "lstm": "dltoolkit_sequence.models",
    "bpc": "dltoolkit_sequence.metrics",
    "perplexity": "dltoolkit_sequence.metrics",
    "classify_eval_step": "dltoolkit_sequence.recipe",
    "make_classify_step": "dltoolkit_sequence.recipe",
    "make_generate": "dltoolkit_sequence.generate",
    "make_language_step": "dltoolkit_sequence.recipe",
    "next_char_eval_step": "dltoolkit_sequence.recipe",
    "sample_text": "dltoolkit_sequence.generate",
    "Gpt": "dltoolkit_sequence.attention",
    "Encoder": "dltoolkit_sequence.attention",
    "Block": "dltoolkit_sequence.attention",
    "SelfAttention": "dltoolkit_sequence.attention",
    "gpt": "dltoolkit_sequence.attention",
    "transformer": "dltoolkit_sequence.attention",
    "GptConfig": "dltoolkit_sequence.options",
    "EncoderConfig": "dltoolkit_sequence.options",
    "decay_groups": "dltoolkit_sequence.training",
    "scheduled_lr": "dltoolkit_sequence.training",
    "RandomWindows": "dltoolkit_sequence.training",
    "sequence_offers": "dltoolkit_sequence.recipe",
    "train_classifier": "dltoolkit_sequence.recipe",
    "train_language_model": "dltoolkit_sequence.recipe",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'dltoolkit_sequence' has no attribute {name!r}")
