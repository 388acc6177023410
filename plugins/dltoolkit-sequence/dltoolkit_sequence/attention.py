"""Transformer models of the sequence recipes: ``gpt``, a decoder-only language model (Radford et al.
2019; nanoGPT's layout), and ``transformer``, an encoder for sequence classification and forecasting.

Both are stacks of the same pre-norm :class:`Block`: self-attention through
``torch.nn.functional.scaled_dot_product_attention`` (flash or memory-efficient kernels on GPUs),
then a GELU MLP, each added to the residual stream.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dltoolkit import DataSpec, DltkError
from dltoolkit_sequence.options import EncoderConfig, GptConfig

KeyValue = tuple[Tensor, Tensor]
"""One block's cached keys and values, each ``(N, heads, T, head_width)``."""


class SelfAttention(nn.Module):
    """Multi-head self-attention; causal (each token sees itself and those before) or not."""

    def __init__(self, width: int, heads: int, *, dropout: float, bias: bool, causal: bool):
        super().__init__()
        if width % heads:
            raise ValueError(f"{heads} heads do not divide width {width}")
        self.heads = heads
        self.causal = causal
        self.dropout = dropout
        self.qkv = nn.Linear(width, 3 * width, bias=bias)
        self.proj = nn.Linear(width, width, bias=bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, past: KeyValue | None = None) -> tuple[Tensor, KeyValue]:
        """``x`` ``(N, T, width)`` attending to the ``past`` keys and values too (a causal model's
        cache); returns the output and the keys and values of past and present together."""
        n, t, width = x.shape
        q, k, v = (
            part.view(n, t, self.heads, width // self.heads).transpose(1, 2) for part in self.qkv(x).split(width, 2)
        )
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
        mask = None
        is_causal = self.causal and t > 1 and past is None
        if self.causal and past is not None and t > 1:  # new queries see the whole past and their own prefix
            mask = torch.ones(t, k.shape[2], dtype=torch.bool, device=x.device).tril(k.shape[2] - t)
        drop = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop, is_causal=is_causal)
        return self.drop(self.proj(y.transpose(1, 2).reshape(n, t, width))), (k, v)


class Block(nn.Module):
    """A pre-norm Transformer block: ``x + attention(norm(x))``, then ``x + mlp(norm(x))``."""

    def __init__(self, width: int, heads: int, *, dropout: float, bias: bool, causal: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, bias=bias)
        self.attention = SelfAttention(width, heads, dropout=dropout, bias=bias, causal=causal)
        self.norm2 = nn.LayerNorm(width, bias=bias)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width, bias=bias),
            nn.GELU(),
            nn.Linear(4 * width, width, bias=bias),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor, past: KeyValue | None = None) -> tuple[Tensor, KeyValue]:
        attended, present = self.attention(self.norm1(x), past)
        x = x + attended
        return x + self.mlp(self.norm2(x)), present


def init_gpt2(model: nn.Module, layers: int) -> None:
    """GPT-2's initialisation: linear and embedding weights N(0, 0.02), biases 0, and the projections
    that write into the residual stream N(0, 0.02 / sqrt(2 * layers))."""
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            std = 0.02 / math.sqrt(2 * layers) if name.endswith(("attention.proj", "mlp.2")) else 0.02
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)


class Gpt(nn.Module):
    """A decoder-only Transformer language model (GPT-2's layout, as nanoGPT's): token and learned
    position embeddings, pre-norm causal blocks, a final norm and a head tied to the token embedding.

    ``forward(ids, state=None)`` maps token ids ``(N, T)`` to next-token logits ``(N, T, V)`` and the
    key/value cache of every block (the ``state``); given back, the cache lets the next call feed only
    the new tokens, which continue at the positions after the cached ones. Positions stop at
    ``context``: a longer sequence is a :class:`ValueError` (generation starts a new cache from the
    last half of its context, see :mod:`dltoolkit_sequence.generate`).
    """

    task = "next-char"

    def __init__(self, config: GptConfig, vocab: tuple[str, ...]):
        super().__init__()
        self.vocab = tuple(vocab)
        self.context = config.context
        self.token = nn.Embedding(len(vocab), config.width)
        self.position = nn.Embedding(config.context, config.width)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            Block(config.width, config.heads, dropout=config.dropout, bias=config.bias, causal=True)
            for _ in range(config.layers)
        )
        self.norm = nn.LayerNorm(config.width, bias=config.bias)
        self.head = nn.Linear(config.width, len(vocab), bias=False)
        init_gpt2(self, config.layers)
        self.head.weight = self.token.weight  # weight tying (Press & Wolf 2017)

    def forward(self, ids: Tensor, state: list[KeyValue] | None = None) -> tuple[Tensor, list[KeyValue]]:
        start = 0 if state is None else int(state[0][0].shape[2])
        end = start + ids.shape[1]
        if end > self.context:
            raise ValueError(f"{end} positions are more than the model's context of {self.context}")
        positions = torch.arange(start, end, device=ids.device)
        x = self.drop(self.token(ids) + self.position(positions))
        present: list[KeyValue] = []
        for index, block in enumerate(self.blocks):
            x, kv = block(x, None if state is None else state[index])
            present.append(kv)
        return self.head(self.norm(x)), present


class Encoder(nn.Module):
    """A Transformer encoder over float sequences ``(N, T, F)``: a linear embedding of each step plus a
    learned position, pre-norm blocks that attend both ways, a final norm, then the steps pooled (mean
    or last) into a linear head: class logits (``task == "classify"``) or the ``horizon`` next values
    (``task == "forecast"``), as :class:`dltoolkit_sequence.SequenceModel`'s contract says."""

    def __init__(self, config: EncoderConfig, *, task: str, steps: int, features: int, outputs: int):
        super().__init__()
        self.task = task
        self.pooling = config.pooling
        self.class_names: tuple[str, ...] = tuple(str(i) for i in range(outputs))
        self.scale = (0.0, 1.0)
        self.context = steps
        self.column = ""
        self.embed = nn.Linear(features, config.width)
        self.position = nn.Parameter(torch.zeros(1, steps, config.width))
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            Block(config.width, config.heads, dropout=config.dropout, bias=True, causal=False)
            for _ in range(config.layers)
        )
        self.norm = nn.LayerNorm(config.width)
        self.head = nn.Linear(config.width, outputs)
        init_gpt2(self, config.layers)
        nn.init.normal_(self.position, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] > self.position.shape[1]:
            raise ValueError(f"{x.shape[1]} steps are more than the {self.position.shape[1]} the model was built for")
        h = self.drop(self.embed(x) + self.position[:, : x.shape[1]])
        for block in self.blocks:
            h, _ = block(h)
        h = self.norm(h)
        pooled = h.mean(1) if self.pooling == "mean" else h[:, -1]
        return self.head(pooled)


def gpt(config: GptConfig, *, data: DataSpec) -> Gpt:
    """A GPT (decoder-only Transformer) character language model for the ``language-model`` recipe."""
    if data.kind != "text" or not data.vocab_size:
        raise DltkError(f"model: gpt is a language model and takes text, the dataset gives {data.describe()}")
    window = int(data.shape[0]) if data.shape else 0
    if window > config.context:
        raise DltkError(
            f"model.context: {config.context} is shorter than the training windows of dataset.seq_len = {window}; "
            "raise model.context or lower dataset.seq_len"
        )
    return Gpt(config, tuple(data.vocab))


def transformer(config: EncoderConfig, *, data: DataSpec) -> Encoder:
    """A Transformer encoder for labelled sequences (``sequence-classify``) and series (``forecast``)."""
    if data.kind == "sequences" and data.num_classes is not None and len(data.shape) == 2:
        model = Encoder(config, task="classify", steps=data.shape[0], features=data.shape[1], outputs=data.num_classes)
        model.class_names = tuple(data.class_names) or model.class_names
        return model
    if data.kind == "series" and data.horizon and len(data.shape) == 2:
        model = Encoder(config, task="forecast", steps=data.shape[0], features=data.shape[1], outputs=data.horizon)
        model.scale = (float(data.extra.get("mean", 0.0)), float(data.extra.get("std", 1.0)))
        model.column = str(data.extra.get("column", ""))
        return model
    raise DltkError(
        f"model: transformer takes labelled sequences (length x features) or series; for text use gpt, "
        f"the dataset gives {data.describe()}"
    )
