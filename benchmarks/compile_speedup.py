"""What ``recipe.compile = true`` gains on this machine's CPU: the same ``dltk run`` compiled and not.

DCGAN 64x64 (base 64, random in-memory images) and an MLP GAN (the quickstart of then: digits 16x16, 2 x 256
hidden, dropout 0.3), both through ``dltk run`` in this process, alternating eager and compiled
runs. Seconds per iteration after a warm-up that covers compilation (the first compiled
iterations build the kernels; that one-off cost is printed apart).

    uv run python benchmarks/compile_speedup.py [--rounds 1] [--dcgan-iterations 30] [--mlp-epochs 40] [--clock cpu]
"""

from __future__ import annotations

import argparse
import statistics

import bench_plugin
import torch
from common import dcgan_recipe, dltk_seconds_per_iteration, use_clock

MLP = """
seed = 0
[run]
device = "cpu"
threads = 1
[recipe]
name = "gan"
batch_size = 128
epochs = {epochs}
lr_g = 1e-3
lr_d = 1e-3
log_every = 10
compile = {compile}
[model]
name = "mlp-gan"
latent_dim = 32
hidden_dim = 256
depth = 2
dropout = 0.3
[dataset]
name = "digits"
image_size = 16
[checkpoint]
every = 1000
keep = 1
"""


def measure(name: str, make_text, iterations: int, warmup: int, rounds: int) -> None:
    eager, compiled, first = [], [], []
    for r in range(rounds):
        for compile_ in (False, True) if r % 2 == 0 else (True, False):
            started = bench_plugin.CLOCK()
            seconds = dltk_seconds_per_iteration(make_text(str(compile_).lower()), [], warmup)
            (compiled if compile_ else eager).append(seconds)
            if compile_:
                first.append(bench_plugin.TIMES[warmup - 1] - started)
    e, c = statistics.median(eager), statistics.median(compiled)
    print(
        f"{name}: eager {e * 1000:.1f} ms/it, compiled {c * 1000:.1f} ms/it, speed-up {e / c:.2f}x "
        f"(runs {rounds}; the compiled run's first {warmup} iterations, compilation included: "
        f"{statistics.median(first):.0f} s)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--dcgan-iterations", type=int, default=30)
    parser.add_argument("--dcgan-batch", type=int, default=32)
    parser.add_argument("--mlp-epochs", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="cpu: this process's CPU time")
    args = parser.parse_args()
    use_clock(args.clock)
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, clock {args.clock}")
    measure(
        "MLP GAN (digits 16x16, batch 128)",
        lambda c: MLP.format(epochs=args.mlp_epochs, compile=c),
        args.mlp_epochs * 11,
        args.warmup,
        args.rounds,
    )
    count = (args.dcgan_iterations + args.warmup) * args.dcgan_batch
    measure(
        f"DCGAN 64x64 (batch {args.dcgan_batch})",
        lambda c: dcgan_recipe(device="cpu", batch=args.dcgan_batch, count=count, compile=c == "true"),
        args.dcgan_iterations,
        args.warmup,
        args.rounds,
    )


if __name__ == "__main__":
    main()
