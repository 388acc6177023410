"""What the Ignite engine and dltoolkit's handlers cost per GAN iteration, against a plain loop.

Same model (mlp-gan, MNIST-size), same in-memory data, same batch, same process, alternating
runs. Also: in-memory batches against torchvision's per-item ToTensor DataLoader path.

    uv run python benchmarks/gan_step_overhead.py [--rounds 3] [--iterations 600]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import dltk_seconds_per_iteration, plain_seconds_per_iteration, summary

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

    from dltoolkit import make_loader
    from dltoolkit.builtin.datasets import ImageDatasetConfig, mnist

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
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    count = args.iterations * 64 // 2  # two epochs, so epoch-end handlers (checkpoint, logs) count too
    ratios = []
    for r in range(args.rounds):
        plain = plain_loop(count, args.iterations, args.warmup)
        ours = dltk_seconds_per_iteration(RECIPE.format(count=count), ["recipe.epochs=2"], args.warmup)
        ratios.append(plain / ours)
        print(
            f"round {r + 1}: plain {plain * 1e3:.3f} ms/it, dltk run {ours * 1e3:.3f} ms/it, "
            f"throughput ratio dltk/plain {plain / ours:.3f}"
        )
    print(f"MLP GAN step, throughput ratio dltk run / plain loop: {summary(ratios)}")
    tv, ours = loader_speed(60000)
    print(
        f"MNIST-size loading: torchvision per-item ToTensor {tv:,.0f} img/s, in-memory batches "
        f"{ours:,.0f} img/s, speed-up {ours / tv:.1f}x"
    )


if __name__ == "__main__":
    main()
