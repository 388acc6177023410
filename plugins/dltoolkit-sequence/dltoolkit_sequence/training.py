"""What Transformer training needs, for every model of the ``language-model`` recipe: Adam or AdamW
with weight decay on matrices only, linear warm-up then a cosine decay to a floor, gradient
accumulation, bf16 autocast, and random windows of the training text drawn per step.

Each piece is a function of the options and the step number alone, so that a run resumed from a
checkpoint (after ``kill -9`` too) continues exactly as if it had never stopped.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from ignite.engine import Engine
from torch import Tensor, nn

from dltoolkit import DltkError
from dltoolkit_sequence.options import LanguageModelConfig


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """The trainable parameters as two optimizer groups: matrices (linear, attention and recurrent
    weights) with ``weight_decay``, everything else without: norms, biases, embeddings, and a head
    tied to an embedding (a parameter shared with an ``nn.Embedding`` counts as an embedding)."""
    embedded = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, keep, seen = [], [], set()
    for param in model.parameters():
        if not param.requires_grad or id(param) in seen:
            continue
        seen.add(id(param))
        (decay if param.dim() >= 2 and id(param) not in embedded else keep).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": keep, "weight_decay": 0.0}]


def make_optimizer(config: LanguageModelConfig, model: nn.Module) -> torch.optim.Optimizer:
    """``recipe.optimizer`` over :func:`decay_groups`: Adam (L2 decay) or AdamW (decoupled)."""
    groups = decay_groups(model, config.weight_decay)
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=config.lr, betas=config.betas)


def scheduled_lr(config: LanguageModelConfig, step: int, total: int) -> float:
    """The learning rate of the 1-based ``step`` of ``total``: linear warm-up over ``warmup_steps``
    (``lr * step / warmup_steps``), then ``lr`` ('constant') or half a cosine from ``lr`` down to
    ``min_lr`` at step ``total`` ('cosine'), as nanoGPT's ``get_lr``."""
    if step <= config.warmup_steps:
        return config.lr * step / config.warmup_steps
    if config.schedule == "constant":
        return config.lr
    span = max(total - config.warmup_steps, 1)
    progress = min((step - config.warmup_steps) / span, 1.0)
    floor = min(config.min_lr, config.lr)
    return floor + 0.5 * (1.0 + math.cos(math.pi * progress)) * (config.lr - floor)


class RandomWindows:
    """``batch_size`` windows of ``length`` ids at random offsets of ``ids`` (and the ids that follow),
    drawn from a generator seeded by ``(seed, step, rank)``: the same step always draws the same."""

    def __init__(self, ids: Tensor, length: int, batch_size: int, seed: int, rank: int = 0):
        if len(ids) < length + 1:
            raise ValueError(f"{len(ids)} ids are too few for one window of {length} and its next id")
        self.ids = ids
        self.length = length
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank

    def __call__(self, step: int) -> tuple[Tensor, Tensor]:
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + step) * 1_009 + self.rank)
        starts = torch.randint(len(self.ids) - self.length, (self.batch_size,), generator=generator)
        index = starts[:, None] + torch.arange(self.length)
        return self.ids[index], self.ids[index + 1]


def text_ids(dataset: Any) -> Tensor:
    """The whole training text of a language-model dataset as ids: its ``ids`` attribute (``text-file``
    has one), else its consecutive windows put back together."""
    ids = getattr(dataset, "ids", None)
    if isinstance(ids, Tensor):
        return ids
    inputs, targets = getattr(dataset, "inputs", None), getattr(dataset, "targets", None)
    if isinstance(inputs, Tensor) and isinstance(targets, Tensor) and len(inputs):
        return torch.cat([inputs.flatten(), targets[-1, -1:]])
    raise DltkError(
        "recipe.windows: 'random' draws windows from the whole training text, and this dataset does not hold it "
        "(an `ids` tensor); use windows = 'consecutive'"
    )


class Steps(torch.utils.data.Dataset):
    """What a loader of random-window training iterates over: ``length`` placeholders (the step draws
    its own windows), so that epochs, checkpoints and resuming work as for any loader."""

    def __init__(self, length: int):
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> int:
        return index

    def __getitems__(self, indices: Any) -> tuple[Tensor]:
        return (torch.as_tensor(indices, dtype=torch.int64),)  # a tuple: the loader passes it through


def autocast(precision: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """The context of the forward pass: bfloat16 autocast for ``precision == "bf16"``, else none."""
    if precision == "bf16":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def micro_batches(x: Tensor, y: Tensor, count: int) -> Iterator[tuple[Tensor, Tensor]]:
    """``(x, y)`` cut into ``count`` equal consecutive parts (the last takes what remains)."""
    size = math.ceil(len(x) / count)
    for start in range(0, len(x), size):
        yield x[start : start + size], y[start : start + size]


def make_transformer_language_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: LanguageModelConfig,
    *,
    device: torch.device,
    total_steps: Callable[[Engine], int],
    windows: RandomWindows | None = None,
) -> Callable[[Engine, Any], dict[str, Any]]:
    """One optimizer step of next-character cross-entropy with the recipe's schedule, accumulation,
    clipping and precision; the batch comes from the loader, or from ``windows`` (random windows
    drawn for the step) when given. Returns ``loss`` (nats per character, the batch's mean) and ``lr``."""
    params = [p for p in model.parameters() if p.requires_grad]
    context = autocast(config.precision, device)

    def step(engine: Engine, batch: Any) -> dict[str, Any]:
        model.train()
        iteration = engine.state.iteration
        lr = scheduled_lr(config, iteration, total_steps(engine))
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = windows(iteration) if windows is not None else (batch[0], batch[1])
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=device)
        for part_x, part_y in micro_batches(x, y, config.accumulate):
            with context():
                logits, _ = model(part_x)
            loss = F.cross_entropy(logits.float().flatten(0, 1), part_y.flatten())
            (loss * (len(part_x) / len(x))).backward()
            total += loss.detach() * (len(part_x) / len(x))
        if config.clip_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, config.clip_grad_norm)
        optimizer.step()
        return {"loss": total, "lr": lr}

    return step
