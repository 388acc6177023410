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

    def decoder(self) -> GptDecoder:
        """A :class:`GptDecoder`: generation's fast path, one token at a time against buffers."""
        return GptDecoder(self)


class GptDecoder:
    """Generation's fast path through a :class:`Gpt`, for one sequence and inference only.

    The keys and values of every block live in buffers allocated once for the whole context, and a
    step for one new token calls a few operations per block on vectors (``mv``, ``addmv``, two
    ``bmm``), without :meth:`Gpt.forward`'s modules, concatenations and masks: with one query, the
    whole past is what it may see. Its logits are those of ``Gpt.forward`` on the same tokens up to
    float rounding (tested); :func:`dltoolkit_sequence.generate.sample_text` uses it when the cache
    is on. The weights are read when it is made: make a new one after changing them.
    """

    def __init__(self, model: Gpt):
        weight = model.token.weight
        self.model = model
        self.context = model.context
        width, heads = weight.shape[1], model.blocks[0].attention.heads
        self.width, self.heads, self.head_width = width, heads, width // heads
        self.length = 0
        # (layer, keys or values, head, position, head width): a layer's keys up to a position are one slice
        self.cache = torch.zeros(
            len(model.blocks), 2, heads, model.context, width // heads, dtype=weight.dtype, device=weight.device
        )
        scale = torch.ones(3 * width, dtype=weight.dtype, device=weight.device)
        scale[:width] = 1.0 / math.sqrt(width // heads)  # the attention's scale, folded into the queries
        self.layers = []
        for index, block in enumerate(model.blocks):
            attention, up, down = block.attention, block.mlp[0], block.mlp[2]
            qkv_bias = None if attention.qkv.bias is None else attention.qkv.bias.detach() * scale
            self.layers.append(
                (
                    block.norm1,
                    attention.qkv.weight.detach() * scale[:, None],
                    qkv_bias,
                    attention.proj,
                    block.norm2,
                    up,
                    down,
                    self.cache[index],
                )
            )

    def read(self, ids: Tensor) -> Tensor:
        """Forget what was read, read the token ids ``(T,)`` from position 0 (one call of the model)
        and keep their keys and values; the logits ``(V,)`` after the last of them."""
        logits, present = self.model(ids[None])
        length = ids.shape[0]
        for index, (keys, values) in enumerate(present):
            self.cache[index, 0, :, :length] = keys[0]
            self.cache[index, 1, :, :length] = values[0]
        self.length = length
        return logits[0, -1]

    def step(self, token: int) -> Tensor:
        """The logits ``(V,)`` after one more token (an id), read at the next position."""
        position = self.length
        if position >= self.context:
            raise ValueError(f"{position + 1} positions are more than the model's context of {self.context}")
        model, width, heads, head_width = self.model, self.width, self.heads, self.head_width
        x = model.token.weight[token] + model.position.weight[position]
        for norm1, qkv_weight, qkv_bias, proj, norm2, up, down, cache in self.layers:
            h = F.layer_norm(x, (width,), norm1.weight, norm1.bias, norm1.eps)
            qkv = torch.mv(qkv_weight, h) if qkv_bias is None else torch.addmv(qkv_bias, qkv_weight, h)
            cache.select(2, position).copy_(qkv[width:].view(2, heads, head_width))
            keys_values = cache.narrow(2, 0, position + 1)
            query = qkv[:width].view(heads, 1, head_width)
            weights = torch.softmax(torch.bmm(query, keys_values[0].transpose(1, 2)), dim=2)
            y = torch.bmm(weights, keys_values[1]).view(width)
            x = torch.addmv(x, proj.weight, y) if proj.bias is None else torch.addmv(x + proj.bias, proj.weight, y)
            h = F.layer_norm(x, (width,), norm2.weight, norm2.bias, norm2.eps)
            h = F.gelu(torch.mv(up.weight, h) if up.bias is None else torch.addmv(up.bias, up.weight, h))
            x = torch.addmv(x, down.weight, h) if down.bias is None else torch.addmv(x + down.bias, down.weight, h)
        self.length = position + 1
        x = F.layer_norm(x, (width,), model.norm.weight, model.norm.bias, model.norm.eps)
        return torch.mv(model.head.weight, x)


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
