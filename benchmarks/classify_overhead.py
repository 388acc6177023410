"""What the Ignite engine and dltoolkit's handlers cost per classify iteration, against a plain loop.

Same model (LeNet-5, MNIST-size 28x28 grey images), same optimizer (SGD, Nesterov momentum,
weight decay), same learning-rate schedule and augmentation (random crops padded by 2), same
in-memory data (MNIST-format files written here and read by the real ``mnist`` dataset), same
batch, same process, same thread count, alternating runs. The plain loop is what a tutorial
writes: cut a batch, augment, set the learning rate, forward, cross-entropy, backward, step.

    uv run python benchmarks/classify_overhead.py [--rounds 6] [--iterations 600] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from common import alternating_blocks, dltk_seconds_per_iteration, plain_seconds_per_iteration, summary

from dltoolkit import DataSpec
from dltoolkit.testing import write_mnist
from dltoolkit_vision.models import build_lenet
from dltoolkit_vision.options import ClassifyConfig, LenetConfig
from dltoolkit_vision.recipe import augment, learning_rate

BATCH = 64
RECIPE = """
seed = 0
[run]
device = "cpu"
threads = {threads}
[recipe]
name = "classify"
batch_size = 64
optimizer = "sgd"
lr = 0.05
crop_padding = 2
log_every = 50
[model]
name = "lenet"
[dataset]
name = "mnist"
root = "{root}"
[checkpoint]
every = 1
keep = 1
"""


def plain_loop(images: torch.Tensor, labels: torch.Tensor, iterations: int, warmup: int, epochs: int) -> float:
    """A plain PyTorch classification loop on the same data, model, optimizer, schedule and augmentation."""
    torch.manual_seed(0)
    count = len(images)
    config = ClassifyConfig(epochs=epochs, batch_size=BATCH, lr=0.05, crop_padding=2)
    model = build_lenet(LenetConfig(), DataSpec.images((1, 28, 28), 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    per_epoch = count // BATCH
    perm = torch.randperm(count)

    def step(i: int) -> None:
        nonlocal perm
        b = i % per_epoch
        if b == 0:
            perm = torch.randperm(count)
        index = perm[b * BATCH : (b + 1) * BATCH]
        x = augment(images[index].float().div(127.5).sub(1), 2, False)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, i + 1, per_epoch)
        loss = F.cross_entropy(model(x), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return plain_seconds_per_iteration(step, iterations, warmup)


def engine_block_overhead(images: torch.Tensor, labels: torch.Tensor, blocks: int = 16, block: int = 50) -> list[float]:
    """Per-iteration cost of the Ignite ``Engine`` and the recipe's per-iteration work, isolated.

    One model, one loader, the recipe's own step function (``make_classify_step``); blocks of
    ``block`` iterations alternate between a plain ``for`` loop and the Ignite engine (continued
    with a larger ``max_epochs``) doing what ``run.fit`` adds per iteration: the finiteness check,
    the running means and the every-50 log window. Returns plain/engine throughput ratios.
    """
    from ignite.engine import Engine, Events

    from dltoolkit._scalars import ScalarMeans
    from dltoolkit.data import InMemoryImages, make_loader
    from dltoolkit_vision.recipe import STAT_NAMES, make_classify_step

    torch.manual_seed(0)
    data = InMemoryImages(images[: block * BATCH], labels[: block * BATCH])
    model = build_lenet(LenetConfig(), DataSpec.images((1, 28, 28), 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    device = torch.device("cpu")
    config = ClassifyConfig(epochs=blocks, batch_size=BATCH, lr=0.05, crop_padding=2)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    step = make_classify_step(model, optimizer, config, device=device, scaler=scaler)
    stats = ScalarMeans(STAT_NAMES, device)

    class State:  # what the step reads of an engine when it runs outside one
        iteration, epoch_length = 0, block

    outside = type("Outside", (), {"state": State()})()

    def process(engine, batch):
        output = step(engine, batch)
        values = torch.stack([torch.as_tensor(output[n]).reshape(()) for n in STAT_NAMES]).to(torch.float64)
        if not bool(torch.isfinite(values).all()):
            raise RuntimeError("non-finite")
        stats.add(values)
        return output

    trainer = Engine(process)

    @trainer.on(Events.ITERATION_COMPLETED(every=50))
    def _log_window(_engine: Engine) -> None:
        stats.window_means()
        stats.mark_window()

    loader = make_loader(data, BATCH, seed=0, engine=trainer)
    plain_loader = make_loader(data, BATCH, seed=0)

    def plain_block() -> None:
        for batch in plain_loader:
            outside.state.iteration += 1
            process(outside, batch)

    return alternating_blocks(plain_block, lambda b: trainer.run(loader, max_epochs=b + 1), blocks)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads, for both sides")
    args = parser.parse_args()
    epochs = 2  # two epochs, so epoch-end handlers (checkpoint, logs) count too
    count = args.iterations * BATCH // epochs
    with tempfile.TemporaryDirectory() as tmp:
        write_mnist(Path(tmp), n_train=count, n_test=16)
        from dltoolkit.builtin.datasets import ImageDatasetConfig, mnist

        data = mnist(ImageDatasetConfig(root=tmp))
        images, labels = data.images, data.labels
        recipe = RECIPE.format(root=tmp, threads=args.threads)
        before = torch.get_num_threads()
        ratios = []
        for r in range(args.rounds):
            overrides = [f"recipe.epochs={epochs}"]
            torch.set_num_threads(args.threads)
            if r % 2 == 0:  # alternate the order: drift on a shared machine hits both sides alike
                plain = plain_loop(images, labels, args.iterations, args.warmup, epochs)
                ours = dltk_seconds_per_iteration(recipe, overrides, args.warmup)
            else:
                ours = dltk_seconds_per_iteration(recipe, overrides, args.warmup)
                torch.set_num_threads(args.threads)
                plain = plain_loop(images, labels, args.iterations, args.warmup, epochs)
            ratios.append(plain / ours)
            print(
                f"round {r + 1}: plain {plain * 1e3:.3f} ms/it, dltk run {ours * 1e3:.3f} ms/it, "
                f"throughput ratio dltk/plain {plain / ours:.3f}",
                flush=True,
            )
        print(f"LeNet classify step, throughput ratio dltk run / plain loop: {summary(ratios)}")
        torch.set_num_threads(args.threads)
        blocks = engine_block_overhead(images, labels)
        torch.set_num_threads(before)
    print(
        f"Ignite engine + per-iteration recipe work, alternating 50-iteration blocks, throughput ratio "
        f"engine / plain for-loop: {summary(blocks)}"
    )


if __name__ == "__main__":
    main()
