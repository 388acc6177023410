"""Shared helpers for the benchmarks: timing a `dltk run` in-process and a plain loop."""

from __future__ import annotations

import contextlib
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_plugin  # noqa: E402

from dltoolkit.cli import main  # noqa: E402

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = time.perf_counter


def use_clock(name: str) -> None:
    """Time everything with ``name``: ``wall`` (perf_counter) or ``cpu`` (this process's CPU time).

    CPU time counts only the cycles this process ran (every thread of it, the TensorBoard writer's
    included), so on a shared machine it is not inflated by other processes taking the cores; it
    leaves out time spent waiting (disk, sleep), which both sides of these comparisons barely do.
    """
    global _clock
    _clock = CLOCKS[name]
    bench_plugin.CLOCK = _clock


def dcgan_recipe(
    *,
    device: str,
    batch: int,
    count: int,
    precision: str = "fp32",
    channels_last: bool = False,
    compile: bool = False,
    extra: str = "",
) -> str:
    """The recipe file the DCGAN 64x64 benchmarks run: ``count`` synthetic images, one epoch,
    one checkpoint at its end; ``extra`` TOML is appended (e.g. a ``[[callbacks]]`` table)."""
    return f"""
seed = 0
[run]
device = "{device}"
[recipe]
name = "gan"
batch_size = {batch}
epochs = 1
log_every = 50
precision = "{precision}"
channels_last = {str(channels_last).lower()}
compile = {str(compile).lower()}
[model]
name = "dcgan"
image_size = 64
[dataset]
name = "bench-images"
count = {count}
image_size = 64
channels = 3
[checkpoint]
every = 1
keep = 1
{extra}"""


def dltk_seconds_per_iteration(recipe_text: str, overrides: list[str], warmup: int) -> float:
    """Run a recipe through ``dltk run`` in this process; seconds per iteration after ``warmup``."""
    with tempfile.TemporaryDirectory() as tmp:
        recipe = Path(tmp) / "bench.toml"
        recipe.write_text(recipe_text)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["run", str(recipe), *overrides, "--run-dir", str(Path(tmp) / "run"), "-p", "bench_plugin"])
        if code != 0:
            raise SystemExit(f"dltk run failed ({code}):\n{err.getvalue()}")
    times = bench_plugin.TIMES
    return (times[-1] - times[warmup - 1]) / (len(times) - warmup)


def plain_seconds_per_iteration(step: Callable[[int], None], iterations: int, warmup: int) -> float:
    """Call ``step(i)`` ``iterations`` times; seconds per iteration after ``warmup``."""
    stamps = []
    for i in range(iterations):
        step(i)
        stamps.append(_clock())
    return (stamps[-1] - stamps[warmup - 1]) / (iterations - warmup)


def summary(ratios: list[float]) -> str:
    return f"median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}, n={len(ratios)})"


def alternating_blocks(
    plain_block: Callable[[], None], engine_block: Callable[[int], None], blocks: int
) -> list[float]:
    """Alternate a plain block and an engine block ``blocks`` times; plain/engine throughput ratios.

    ``engine_block(b)`` continues the engine by one block (``trainer.run(loader, max_epochs=b + 1)``);
    adjacent blocks see the same machine state, so each pair's ratio is robust to drift. The
    first pair warms up and is dropped.
    """
    ratios = []
    for b in range(blocks):
        start = _clock()
        plain_block()
        plain = _clock() - start
        start = _clock()
        engine_block(b)
        engine = _clock() - start
        if b > 0:
            ratios.append(plain / engine)
    return ratios


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images(count: int, size: int, channels: int = 3) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (count, channels, size, size), dtype=torch.uint8, generator=generator)


def batches(
    data: torch.Tensor, batch: int, device: torch.device, fmt: torch.memory_format
) -> Callable[[int], torch.Tensor]:
    per_epoch = len(data) // batch
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))

    def cut(i: int) -> torch.Tensor:
        b = i % per_epoch
        real = data[perm[b * batch : (b + 1) * batch]].float().div_(127.5).sub_(1)
        return real.to(device, non_blocking=True, memory_format=fmt)

    return cut


def plain_dcgan(
    device: torch.device,
    batch: int,
    count: int,
    iterations: int,
    warmup: int,
    *,
    precision: str = "fp32",
    channels_last: bool = False,
    compile: bool = False,
) -> float:
    """The DCGAN 64x64 (base 64) GAN step written as a plain PyTorch loop, on ``count`` random images:
    seconds per iteration after ``warmup``. ``precision`` "bf16"/"fp16" autocasts; ``compile``
    compiles G and D in place as ``recipe.compile`` does."""
    from dltoolkit_gan import DcganConfig, dcgan

    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = dcgan(DcganConfig(), image_shape=(3, 64, 64))
    g, d = model.generator.to(device, memory_format=fmt), model.discriminator.to(device, memory_format=fmt)
    if compile:
        g.compile()
        d.compile()
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else contextlib.nullcontext
    cut = batches(images(count, 64), batch, device, fmt)

    def step(i: int) -> None:
        real = cut(i)
        z = torch.randn(batch, 100, device=device)
        with autocast():
            fake = g(z)
            d_real, d_fake = d(real).float(), d(fake.detach()).float()
            loss_d = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
            loss_d = loss_d + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        with autocast():
            d_g = d(fake).float()
            loss_g = F.binary_cross_entropy_with_logits(d_g, torch.ones_like(d_g))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        sync(device)

    return plain_seconds_per_iteration(step, iterations, warmup)
