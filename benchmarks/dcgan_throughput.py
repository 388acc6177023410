"""DCGAN 64x64 training throughput through `dltk run` against a plain PyTorch loop.

Same model (dcgan, base 64), same batch (128), same in-memory data, same process, alternating
runs; images/s and the ratio. With CUDA it also compares precision and memory format:
fp32, bf16 and bf16 + channels_last (each against the plain loop with the same setting).

    uv run python benchmarks/dcgan_throughput.py [--rounds 4] [--iterations 10] [--device cpu]
"""

from __future__ import annotations

import argparse

import torch
from common import dcgan_recipe, dltk_seconds_per_iteration, plain_dcgan, summary


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
                plain = plain_dcgan(
                    device,
                    args.batch,
                    count,
                    args.iterations,
                    args.warmup,
                    precision=precision,
                    channels_last=channels_last,
                )
                ours = dltk_seconds_per_iteration(text, [], args.warmup)
            else:
                ours = dltk_seconds_per_iteration(text, [], args.warmup)
                plain = plain_dcgan(
                    device,
                    args.batch,
                    count,
                    args.iterations,
                    args.warmup,
                    precision=precision,
                    channels_last=channels_last,
                )
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
