"""What the Ignite engine and dltoolkit's handlers cost per sequence-classify iteration, against a plain loop.

Same model (the plugin's LSTM, one layer of ``--hidden`` units, reading scikit-learn's 8x8 digits
row by row: 8 steps of 8 features, the ``digit-rows`` dataset), same optimizer (Adam), same
gradient clipping (global norm 1), same in-memory data, same batch size (the last partial batch
dropped), same process, same thread count, alternating runs. The plain loop is what a tutorial
writes: shuffle each epoch, cut a batch, forward, cross-entropy, backward, clip, step; and, so
that both sides do the same work, it also computes the batch accuracy the recipe reports and
saves a durable checkpoint (model and optimizer, written, fsynced, renamed) at each epoch end,
as ``dltk run`` does with ``checkpoint.every = 1``.

    uv run python benchmarks/sequence_overhead.py [--rounds 6] [--epochs 6] [--hidden 128] [--threads 1] [--clock cpu]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from common import (
    CLOCKS,
    alternating_blocks,
    dltk_seconds_per_iteration,
    plain_seconds_per_iteration,
    summary,
    use_clock,
)

from dltoolkit_sequence import DigitRowsConfig, RnnConfig, build, digit_rows

BATCH = 32
LR = 3e-3
RECIPE = """
seed = 0
[run]
device = "cpu"
threads = {threads}
[recipe]
name = "sequence-classify"
batch_size = {batch}
lr = {lr}
clip_grad_norm = 1.0
log_every = 20
[model]
name = "lstm"
hidden_size = {hidden}
[dataset]
name = "digit-rows"
[checkpoint]
every = 1
keep = 1
"""


def plain_loop(rows: torch.Tensor, labels: torch.Tensor, spec, hidden: int, iterations: int, warmup: int) -> float:
    """A plain PyTorch loop on the same data, model, optimizer and clipping."""
    torch.manual_seed(0)
    count = len(rows)
    model = build("lstm", RnnConfig(hidden_size=hidden), spec)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    params = list(model.parameters())
    per_epoch = count // BATCH
    perm = torch.randperm(count)
    model.train()

    folder = Path(tempfile.mkdtemp(prefix="plain-"))

    def save() -> None:
        tmp = folder / ".tmp-checkpoint.pt"
        with open(tmp, "wb") as handle:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, folder / "checkpoint.pt")

    def step(i: int) -> None:
        nonlocal perm
        b = i % per_epoch
        if b == 0:
            perm = torch.randperm(count)
        index = perm[b * BATCH : (b + 1) * BATCH]
        model.train()
        logits = model(rows[index])
        loss = F.cross_entropy(logits, labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        accuracy = (logits.detach().argmax(1) == labels[index]).float().mean()  # the recipe reports it
        del accuracy
        if b == per_epoch - 1:
            save()

    return plain_seconds_per_iteration(step, iterations, warmup)


def engine_blocks(data, hidden: int, blocks: int = 16) -> list[float]:
    """The Ignite engine with run.fit's per-iteration work against a for loop, in alternating blocks.

    One model, one step function (the recipe's own ``make_classify_step``), the same per-iteration
    work on both sides (stack the reported scalars, check they are finite, add them to the running
    means); blocks of one epoch (44 iterations) alternate, so each pair sees the same machine
    state. Returns plain/engine throughput ratios.
    """
    from ignite.engine import Engine

    from dltoolkit._scalars import ScalarMeans
    from dltoolkit.data import make_loader
    from dltoolkit_sequence.recipe import make_classify_step

    torch.manual_seed(0)
    model = build("lstm", RnnConfig(hidden_size=hidden), data.spec)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    step = make_classify_step(model, optimizer, device=torch.device("cpu"), clip_grad_norm=1.0)
    means = ScalarMeans(("loss", "accuracy"), torch.device("cpu"))

    def process(engine, batch):
        out = step(engine, batch)
        values = torch.stack([out["loss"], out["accuracy"]]).to(torch.float64)
        if not bool(torch.isfinite(values).all()):
            raise RuntimeError("non-finite")
        means.add(values)
        return out

    trainer = Engine(process)
    loader = make_loader(data, BATCH, seed=0, engine=trainer)
    plain_loader = make_loader(data, BATCH, seed=0)

    def plain_block() -> None:
        for batch in plain_loader:
            process(None, batch)

    return alternating_blocks(plain_block, lambda b: trainer.run(loader, max_epochs=b + 1), blocks)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=6, help="epochs of digit rows (44 iterations each) per run")
    parser.add_argument("--hidden", type=int, default=128, help="LSTM hidden units")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads, for both sides")
    parser.add_argument("--blocks", type=int, default=16, help="alternating one-epoch blocks of the engine comparison")
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall time, or this process's CPU time (robust when other work shares the cores)",
    )
    args = parser.parse_args()
    use_clock(args.clock)
    data = digit_rows(DigitRowsConfig())
    rows, labels = data.inputs, data.targets
    iterations = args.epochs * (len(rows) // BATCH)
    recipe = RECIPE.format(threads=args.threads, batch=BATCH, lr=LR, hidden=args.hidden)
    overrides = [f"recipe.epochs={args.epochs}"]
    before = torch.get_num_threads()
    ratios = []
    for r in range(args.rounds):
        torch.set_num_threads(args.threads)
        if r % 2 == 0:  # alternate the order: drift on a shared machine hits both sides alike
            plain = plain_loop(rows, labels, data.spec, args.hidden, iterations, args.warmup)
            ours = dltk_seconds_per_iteration(recipe, overrides, args.warmup)
        else:
            ours = dltk_seconds_per_iteration(recipe, overrides, args.warmup)
            torch.set_num_threads(args.threads)
            plain = plain_loop(rows, labels, data.spec, args.hidden, iterations, args.warmup)
        ratios.append(plain / ours)
        print(
            f"round {r + 1}: plain {plain * 1e3:.3f} ms/it, dltk run {ours * 1e3:.3f} ms/it, "
            f"throughput ratio dltk/plain {plain / ours:.3f}",
            flush=True,
        )
    torch.set_num_threads(args.threads)
    blocks = engine_blocks(data, args.hidden, args.blocks)
    torch.set_num_threads(before)
    print(
        "Ignite engine + run.fit's per-iteration work, alternating one-epoch blocks, throughput ratio "
        f"engine / plain for-loop: {summary(blocks)}"
    )
    print(
        f"LSTM sequence-classify step ({iterations} iterations per run, hidden {args.hidden}, "
        f"{args.threads} thread(s), {args.clock} clock), throughput ratio dltk run / plain loop: {summary(ratios)}"
    )


if __name__ == "__main__":
    main()
