"""What the Ignite engine and dltoolkit's handlers cost per GAN iteration, against a plain loop.

Same model (mlp-gan, MNIST-size), same in-memory data, same batch, same process, alternating
runs. Also: in-memory batches against torchvision's per-item ToTensor DataLoader path.

    uv run python benchmarks/gan_step_overhead.py [--rounds 6] [--iterations 600]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import alternating_blocks, dltk_seconds_per_iteration, plain_seconds_per_iteration, summary, use_clock

from dltoolkit.testing import write_mnist
from dltoolkit_gan import MlpGanConfig, mlp_gan

RECIPE = """
seed = 0
[run]
device = "cpu"
[recipe]
name = "gan"
batch_size = 64
log_every = 50
[model]
name = "mlp-gan"
latent_dim = 64
hidden_dim = 256
depth = 2
[dataset]
name = "bench-images"
count = {count}
image_size = 28
channels = 1
[checkpoint]
every = 1
keep = 1
"""


def plain_loop(count: int, iterations: int, warmup: int) -> float:
    """A plain PyTorch GAN loop: the step every tutorial writes, on the same data."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, 1, 28, 28), dtype=torch.uint8, generator=generator)
    model = mlp_gan(MlpGanConfig(latent_dim=64, hidden_dim=256, depth=2), image_shape=(1, 28, 28))
    g, d = model.generator, model.discriminator
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    batches_per_epoch = count // 64
    perm = torch.randperm(count)

    def step(i: int) -> None:
        nonlocal perm
        b = i % batches_per_epoch
        if b == 0:
            perm = torch.randperm(count)
        real = images[perm[b * 64 : (b + 1) * 64]].float().div(127.5).sub(1)
        z = torch.randn(64, 64)
        fake = g(z)
        d_real, d_fake = d(real), d(fake.detach())
        loss_d = F.binary_cross_entropy_with_logits(
            d_real, torch.ones_like(d_real)
        ) + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        d_g = d(fake)
        loss_g = F.binary_cross_entropy_with_logits(d_g, torch.ones_like(d_g))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

    return plain_seconds_per_iteration(step, iterations, warmup)


def loader_speed(n: int) -> tuple[float, float]:
    """Images per second: torchvision MNIST + ToTensor per item, and dltoolkit's in-memory batches."""
    import torchvision
    from torchvision import transforms

    from dltoolkit.builtin.datasets import ImageDatasetConfig, mnist
    from dltoolkit.data import make_loader

    with tempfile.TemporaryDirectory() as tmp:
        write_mnist(Path(tmp), n_train=n, n_test=10)
        per_item = torchvision.datasets.MNIST(
            tmp,
            train=True,
            download=False,
            transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))]),
        )
        loader = torch.utils.data.DataLoader(per_item, batch_size=64, shuffle=True, drop_last=True)
        start = time.perf_counter()
        seen = sum(len(x) for x, _ in loader)
        torchvision_rate = seen / (time.perf_counter() - start)
        ours = make_loader(mnist(ImageDatasetConfig(root=tmp)), 64, seed=0)
        start = time.perf_counter()
        seen = sum(len(x) for x, _ in ours)
        our_rate = seen / (time.perf_counter() - start)
    return torchvision_rate, our_rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="cpu: this process's CPU time")
    args = parser.parse_args()
    use_clock(args.clock)
    count = args.iterations * 64 // 2  # two epochs, so epoch-end handlers (checkpoint, logs) count too
    ratios = []
    for r in range(args.rounds):
        if r % 2 == 0:  # alternate the order: drift on a shared machine hits both sides alike
            plain = plain_loop(count, args.iterations, args.warmup)
            ours = dltk_seconds_per_iteration(RECIPE.format(count=count), ["recipe.epochs=2"], args.warmup)
        else:
            ours = dltk_seconds_per_iteration(RECIPE.format(count=count), ["recipe.epochs=2"], args.warmup)
            plain = plain_loop(count, args.iterations, args.warmup)
        ratios.append(plain / ours)
        print(
            f"round {r + 1}: plain {plain * 1e3:.3f} ms/it, dltk run {ours * 1e3:.3f} ms/it, "
            f"throughput ratio dltk/plain {plain / ours:.3f}"
        )
    print(f"MLP GAN step, throughput ratio dltk run / plain loop: {summary(ratios)}")
    blocks = engine_block_overhead()
    print(
        f"Ignite engine + per-iteration recipe work, alternating 50-iteration blocks, throughput ratio "
        f"engine / plain for-loop: {summary(blocks)}"
    )
    tv, ours = loader_speed(60000)
    print(
        f"MNIST-size loading: torchvision per-item ToTensor {tv:,.0f} img/s, in-memory batches "
        f"{ours:,.0f} img/s, speed-up {ours / tv:.1f}x"
    )


def engine_block_overhead(blocks: int = 16, block: int = 50) -> list[float]:
    """Per-iteration cost of the Ignite engine and the recipe's per-iteration work, isolated.

    One model, one loader, one step function; blocks of ``block`` iterations alternate between a
    plain ``for`` loop and the Ignite ``Engine`` (continued with a larger ``max_epochs``) running
    the gan recipe's per-iteration work: the same step, the finiteness check, the running
    statistics and the every-50 log window. Adjacent blocks see the same machine state, so the
    ratio of each pair is robust to drift. Returns plain/engine throughput ratios.
    """
    from ignite.engine import Engine, Events

    from dltoolkit._scalars import ScalarMeans
    from dltoolkit.data import InMemoryImages, make_loader
    from dltoolkit_gan.options import STAT_NAMES
    from dltoolkit_gan.recipe import make_gan_step

    torch.manual_seed(0)
    images = torch.randint(0, 256, (block * 64, 1, 28, 28), dtype=torch.uint8)
    model = mlp_gan(MlpGanConfig(latent_dim=64, hidden_dim=256, depth=2), image_shape=(1, 28, 28))
    opt_g = torch.optim.Adam(model.generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(model.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    device = torch.device("cpu")
    step = make_gan_step(
        model.generator,
        model.discriminator,
        opt_g,
        opt_d,
        latent_dim=64,
        device=device,
        loss="non-saturating",
        precision="fp32",
        channels_last=False,
        scaler=torch.amp.GradScaler("cpu", enabled=False),
    )
    stats = ScalarMeans(STAT_NAMES, device)

    def process(engine, batch):
        values = step(batch[0])
        if not bool(torch.isfinite(values).all()):
            raise RuntimeError("non-finite")
        stats.add(values)
        return values

    trainer = Engine(process)
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED(every=50), lambda _: (stats.window_means(), stats.mark_window())
    )
    loader = make_loader(InMemoryImages(images), 64, seed=0, engine=trainer)
    plain_loader = make_loader(InMemoryImages(images), 64, seed=0)

    def plain_block() -> None:
        for batch in plain_loader:
            process(None, batch)

    return alternating_blocks(plain_block, lambda b: trainer.run(loader, max_epochs=b + 1), blocks)


if __name__ == "__main__":
    main()
