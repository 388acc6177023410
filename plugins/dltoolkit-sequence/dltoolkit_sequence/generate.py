"""Text generation of a trained language model (``dltk generate``): one character at a time from the
softmax of the last logits, at a temperature, optionally restricted to the ``top_k`` most likely or
to the smallest set holding ``top_p`` of the probability.

A model that returns a state (an LSTM's hidden state, a GPT's key/value cache) is fed only the new
character at each step; a model with a ``decoder()`` method (``gpt``'s
:class:`~dltoolkit_sequence.attention.GptDecoder`: preallocated key/value buffers and a one-token
step on vectors) goes through that instead. With ``cache=False`` it reads its whole window again
each time with its ordinary forward pass (the same text, slower: a measure of what the cache
buys). A model with positions up to ``context`` (``gpt``) reads at most that many characters: when
the text outgrows them, it goes on from the last half of its context, both ways alike.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dltoolkit import DltkError

DEFAULT_NUM_CHARS = 500
MAX_NUM_CHARS = 1_000_000
"""Most characters ``dltk generate --num-chars`` draws (one model step each)."""
SAMPLE_NAME = "sample.txt"


@contextlib.contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode under ``torch.inference_mode`` (less overhead per call than ``no_grad``,
    which counts when one character is one call), its own mode back afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def sample_text(
    model: Any,
    device: torch.device,
    *,
    prompt: str,
    num_chars: int,
    temperature: float,
    generator: torch.Generator,
    top_k: int | None = None,
    top_p: float | None = None,
    cache: bool = True,
) -> str:
    """``prompt`` continued by ``num_chars`` characters drawn one at a time from the model's softmax
    at ``temperature`` (within ``top_k`` / ``top_p`` when given), with ``generator`` (on the CPU) for
    every draw. The model conditions on the text from a window start that moves forward by half the
    model's ``context`` each time the text outgrows it (never, for a model without one)."""
    lookup = {ch: i for i, ch in enumerate(model.vocab)}
    unknown = sorted({ch for ch in prompt if ch not in lookup})
    if unknown:
        shown = ", ".join(repr(ch) for ch in unknown)
        raise DltkError(f"--prompt: characters not in the training text's vocabulary: {shown}")
    context = int(getattr(model, "context", 0) or 0)
    keep = max(context // 2, 1)

    # a model's own fast path for one sequence (gpt's preallocated key/value buffers), when it has one
    decoder = model.decoder() if cache and callable(getattr(model, "decoder", None)) else None

    def read(ids: list[int], state: Any = None) -> tuple[Tensor, Any]:
        if decoder is not None and state is None:  # a new window: the decoder forgets and reads it
            return decoder.read(torch.tensor(ids, device=device)).float().cpu(), None
        logits, state = model(torch.tensor([ids], device=device), state)
        return logits[0, -1].float().cpu(), state

    with _evaluating(model):
        if prompt:
            ids = [lookup[ch] for ch in prompt]
        else:  # no prompt: a first character drawn uniformly
            ids = [int(torch.randint(len(model.vocab), (1,), generator=generator).item())]
        drawn = 0 if prompt else 1
        start = max(len(ids) - keep, 0) if context and len(ids) > context else 0
        logits, state = read(ids[start:])
        while drawn < num_chars:
            ids.append(_draw(logits, temperature, generator, top_k, top_p))
            drawn += 1
            if drawn == num_chars:
                break
            if context and len(ids) - start > context:  # out of positions: go on from the last half
                start = len(ids) - keep
                logits, state = read(ids[start:])
            elif decoder is not None:
                logits = decoder.step(ids[-1]).float().cpu()
            elif cache:
                logits, state = read(ids[-1:], state)
            else:
                logits, _ = read(ids[start:])
    return prompt + "".join(model.vocab[i] for i in ids[len(prompt) :])


def _draw(
    logits: Tensor, temperature: float, generator: torch.Generator, top_k: int | None, top_p: float | None
) -> int:
    """One id drawn from ``softmax(logits / temperature)`` over the ``top_k`` most likely ids and the
    fewest most likely ids holding ``top_p`` of the probability (both when given); a temperature so
    small that the scaled logits overflow (``1e-45``) draws the most likely id, the limit of sampling
    as it goes to 0.

    The draw inverts the cumulative distribution at one uniform number of ``generator`` (a handful
    of tensor operations per character: at one character per model step, they count)."""
    if top_k is not None and top_k < len(logits):
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits if temperature == 1.0 else logits / temperature, dim=0)
    cumulative = list(itertools.accumulate(probs.tolist()))
    if not math.isfinite(cumulative[-1]):  # overflow: again in double precision, else the limit
        probs = torch.softmax(logits.double() / temperature, dim=0)
        cumulative = list(itertools.accumulate(probs.tolist()))
        if not math.isfinite(cumulative[-1]):
            return int(torch.argmax(logits).item())
    if top_p is not None and top_p < 1.0:
        ordered, order = torch.sort(probs, descending=True)
        before = torch.cumsum(ordered, 0) - ordered  # the probability of the ids more likely than each
        ordered[before >= top_p] = 0.0  # the most likely id always stays
        cumulative = list(itertools.accumulate(torch.zeros_like(probs).scatter(0, order, ordered).tolist()))
    total = cumulative[-1]
    target = torch.rand((), generator=generator, dtype=torch.float64).item() * total
    # the first id whose cumulative probability passes the target; never one of probability 0
    return min(bisect.bisect_right(cumulative, target), bisect.bisect_left(cumulative, total))


def make_generate(model: nn.Module, device: torch.device) -> Callable[..., list[Path]]:
    """``generate(out, num=, seed=, prompt=, num_chars=, temperature=, top_k=, top_p=, no_cache=)`` for
    ``dltk generate``."""

    def generate(
        out: Path,
        num: int | None = None,
        seed: int | None = None,
        prompt: str | None = None,
        num_chars: int | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        no_cache: bool = False,
        **_options: Any,
    ) -> list[Path]:
        given = [key for key, value in _options.items() if value not in (None, False)]
        if given:  # e.g. --grid: options of image samples
            flags = ", ".join(f"--{k.replace('_', '-')}" for k in given)
            raise DltkError(f"{flags}: a language model writes text; these options do not apply")
        num_chars = DEFAULT_NUM_CHARS if num_chars is None else num_chars
        temperature = 1.0 if temperature is None else temperature
        if num_chars < 1:
            raise DltkError(f"--num-chars: must be at least 1, got {num_chars}")
        if num_chars > MAX_NUM_CHARS:
            raise DltkError(f"--num-chars: at most {MAX_NUM_CHARS}, got {num_chars}")
        if not temperature > 0:
            raise DltkError(f"--temperature: must be more than 0, got {temperature:g}")
        if top_k is not None and top_k < 1:
            raise DltkError(f"--top-k: must be at least 1, got {top_k}")
        if top_p is not None and not 0.0 < top_p <= 1.0:
            raise DltkError(f"--top-p: must be more than 0 and at most 1, got {top_p:g}")
        generator = torch.Generator().manual_seed(0 if seed is None else seed)
        count = 1 if num is None else num
        texts = [
            sample_text(
                model,
                device,
                prompt=prompt or "",
                num_chars=num_chars,
                temperature=temperature,
                generator=generator,
                top_k=top_k,
                top_p=top_p,
                cache=not no_cache,
            )
            for _ in range(count)
        ]
        paths = [Path(out) / SAMPLE_NAME] if count == 1 else [Path(out) / f"sample_{i:04d}.txt" for i in range(count)]
        for path, text in zip(paths, texts, strict=True):
            path.write_text(text, encoding="utf-8")
        return paths

    return generate
