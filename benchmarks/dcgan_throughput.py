"""DCGAN 64x64 training throughput through `dltk run` against a plain PyTorch loop.

Same model (dcgan, base 64), same batch (128), same in-memory data, same process, alternating
runs; images/s and the ratio. With CUDA it also compares precision and memory format:
fp32, bf16 and bf16 + channels_last (each against the plain loop with the same setting).

    uv run python benchmarks/dcgan_throughput.py [--rounds 4] [--iterations 10] [--device cpu]
"""

from __future__ import annotations

import argparse
import contextlib

import torch
import torch.nn.functional as F
from common import dcgan_recipe, dltk_seconds_per_iteration, plain_seconds_per_iteration, summary

from dltoolkit_gan import DcganConfig, dcgan


def plain_loop(
    device: torch.device, batch: int, count: int, iterations: int, warmup: int, precision: str, channels_last: bool
) -> float:
    torch.manual_seed(0)
    images = torch.randint(0, 256, (count, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    model = dcgan(DcganConfig(), image_shape=(3, 64, 64))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    g, d = model.generator.to(device, memory_format=fmt), model.discriminator.to(device, memory_format=fmt)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else contextlib.nullcontext
    per_epoch = count // batch
    perm = torch.randperm(count)

    def step(i: int) -> None:
        b = i % per_epoch
        real = images[perm[b * batch : (b + 1) * batch]].float().div(127.5).sub(1)
        real = real.to(device, non_blocking=True, memory_format=fmt)
        z = torch.randn(batch, 100, device=device)
        with autocast():
            fake = g(z)
            d_real, d_fake = d(real).float(), d(fake.detach()).float()
            loss_d = F.binary_cross_entropy_with_logits(
                d_real, torch.ones_like(d_real)
            ) + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        with autocast():
            d_g = d(fake).float()
            loss_g = F.binary_cross_entropy_with_logits(d_g, torch.ones_like(d_g))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    return plain_seconds_per_iteration(step, iterations, warmup)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    settings = [("fp32", False)]
    if device.type == "cuda":
        settings += [("bf16", False), ("bf16", True)]
        print(f"GPU: {torch.cuda.get_device_name(device)}")
    count = args.iterations * args.batch
    for precision, channels_last in settings:
        ratios, rates = [], []
        text = dcgan_recipe(
            device=args.device,
            batch=args.batch,
            count=count,
            precision=precision,
            channels_last=channels_last,
            extra='[[callbacks]]\nname = "samples"\n',
        )
        for r in range(args.rounds):
            if r % 2 == 0:  # alternate the order: drift on a shared machine hits both sides alike
                plain = plain_loop(device, args.batch, count, args.iterations, args.warmup, precision, channels_last)
                ours = dltk_seconds_per_iteration(text, [], args.warmup)
            else:
                ours = dltk_seconds_per_iteration(text, [], args.warmup)
                plain = plain_loop(device, args.batch, count, args.iterations, args.warmup, precision, channels_last)
            ratios.append(plain / ours)
            rates.append((args.batch / plain, args.batch / ours))
        label = precision + (" + channels_last" if channels_last else "")
        plain_rate = sorted(r[0] for r in rates)[len(rates) // 2]
        our_rate = sorted(r[1] for r in rates)[len(rates) // 2]
        print(
            f"{device.type} {label}: plain {plain_rate:,.1f} img/s, dltk run {our_rate:,.1f} img/s, "
            f"ratio {summary(ratios)}"
        )


if __name__ == "__main__":
    main()
