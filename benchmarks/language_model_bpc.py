"""Held-out bits per character of the ``language-model`` recipe against the text's unigram entropy.

The text is Python's own help topics (``pydoc_data.topics``, shipped with every CPython: about
465 KB of English documentation prose with code examples), written to a file in a fixed order,
so the figure is repeatable offline. The recipe file is ``recipes/rnn_text.toml`` with the
overrides given on the command line; the text-file dataset holds out the last 10% by position.

Two baselines are printed beside the model's held-out bpc:

- the unigram entropy of the whole text (what a model that only learned character frequencies
  would approach), and
- the cross-entropy of the held-out tail under the training part's character frequencies
  (that model, evaluated exactly as the recipe is).

    uv run python benchmarks/language_model_bpc.py [--epochs 2] [--hidden 128] [--layers 1] [-- OVERRIDE ...]
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def corpus() -> str:
    """Python's help topics, in sorted order: the same text on every run of the same CPython."""
    import pydoc_data.topics as topics

    return "\n\n".join(topics.topics[key] for key in sorted(topics.topics))


def unigram_bits(text: str) -> float:
    """Entropy in bits of the character frequencies of ``text``."""
    counts = collections.Counter(text)
    total = sum(counts.values())
    return -sum(c / total * math.log2(c / total) for c in counts.values())


def cross_bits(train: str, test: str) -> float:
    """Bits per character of ``test`` under ``train``'s character frequencies (add-one smoothing)."""
    counts = collections.Counter(train)
    vocab = set(train) | set(test)
    total = sum(counts.values()) + len(vocab)
    return -sum(math.log2((counts[ch] + 1) / total) for ch in test) / len(test)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("overrides", nargs="*", help="more recipe overrides (after --)")
    args = parser.parse_args()
    text = corpus()
    split = int(len(text) * 0.9)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pydoc_topics.txt"
        path.write_text(text, encoding="utf-8")
        run = Path(tmp) / "run"
        command = [
            str(Path(sys.executable).parent / "dltk"), "run", str(ROOT / "recipes" / "rnn_text.toml"),
            f"dataset.path={path}", f"recipe.epochs={args.epochs}", f"model.hidden_size={args.hidden}",
            f"model.num_layers={args.layers}", f"run.threads={args.threads}", "run.device=cpu",
            *args.overrides, "--run-dir", str(run),
        ]  # fmt: skip
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r.get("kind") == "eval" and "bpc" in r]
    size, chars = len(text.encode()), len(set(text))
    print(f"text: Python {sys.version.split()[0]} help topics, {size:,} bytes, {chars} characters")
    print(f"unigram entropy of the whole text:                    {unigram_bits(text):.3f} bits/char")
    tail = cross_bits(text[:split], text[split:])
    print(f"held-out tail under the training part's frequencies: {tail:.3f} bits/char")
    for r in evals:
        print(f"epoch {r['epoch']}: held-out bpc {r['bpc']:.3f}, perplexity {r['perplexity']:.2f}")
    print(
        f"LSTM {args.layers}x{args.hidden}, {args.epochs} epoch(s), {args.threads} thread(s): "
        f"{seconds:.0f} s wall for the whole run"
    )


if __name__ == "__main__":
    main()
