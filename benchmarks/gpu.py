"""The GPU benchmark in one command: dltoolkit against a plain PyTorch loop in the same process.

Prints the device's name, then, each against a plain loop doing the same work (same model, batch,
in-memory data, precision and memory format, alternating order):

1. DCGAN 64x64 images/s: fp32, bf16, bf16 + channels_last, bf16 + channels_last + torch.compile
   (``recipe.compile = true`` against ``module.compile()`` in the plain loop), and the speed-up of
   bf16 + channels_last through ``dltk run`` over the fp32 plain loop (target: at least 2x);
2. classifier steps/s (ResNet-20 on 32x32 images, batch 128) and VAE steps/s (conv-vae 64x64);
3. FID of 10,000 generated samples through the ``fid`` metric (reference statistics cached, as in a
   run's later evaluations; and the first evaluation, which also extracts the reference), against
   ``torch_fidelity.calculate_metrics`` on the same generator and reference (target: under 30 s);
4. with several GPUs, ``dltk run --nproc-per-node k`` for k = 2..N (nccl, batch 128 per process)
   against one process: images/s and the scaling factor (target: 2 processes at least 1.8x);
5. nanoGPT's character model of Shakespeare in its GPU configuration (6 layers, 6 heads, 384 wide,
   context 256, batch 64, dropout 0.2, 5,000 steps, bf16, compiled) through ``dltk run
   recipes/gpt_shakespeare.toml``: held-out bits/char and minutes (nanoGPT: 1.4697 nats = 2.12
   bits/char in about 3 minutes on one A100). ``--text`` is tiny Shakespeare;
6. StyleGAN2 in NVlabs' CIFAR-10 setting (``recipes/stylegan2_cifar10.toml``: 32x32, 512 feature
   maps, batch 64, lazy R1, ADA, EMA) through ``dltk run`` for ``--iterations`` iterations on
   in-memory images of CIFAR-10's shape (no download): images/s, and the hours NVlabs' 100,000
   kimg would take at that speed.

    uv run python benchmarks/gpu.py                      # everything, on cuda
    uv run python benchmarks/gpu.py --inception PATH     # FID with the real Inception weights file
    uv run python benchmarks/gpu.py --tiny --device cpu  # seconds-long check of every code path (no GPU)

Without ``--inception`` the FID part uses torch-fidelity's Inception-v3 with random weights: the
cost does not depend on the weight values, the score does (it is not printed).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import bench_plugin
import torch
import torch.nn.functional as F
from common import (
    batches,
    dcgan_recipe,
    dltk_seconds_per_iteration,
    images,
    plain_dcgan,
    plain_seconds_per_iteration,
    sync,
)

CLASSIFY = """
seed = 0
[run]
device = "{device}"
[recipe]
name = "classify"
batch_size = {batch}
epochs = 1
optimizer = "sgd"
lr = 0.1
crop_padding = 0
log_every = 50
[model]
name = "resnet"
depth = 20
[dataset]
name = "bench-images"
count = {count}
image_size = 32
channels = 3
classes = 10
[checkpoint]
every = 1
keep = 1
"""

VAE = """
seed = 0
[run]
device = "{device}"
[recipe]
name = "vae"
batch_size = {batch}
epochs = 1
log_every = 50
[model]
name = "conv-vae"
[dataset]
name = "bench-images"
count = {count}
image_size = 64
channels = 3
[checkpoint]
every = 1
keep = 1
"""


def plain_classify(device: torch.device, batch: int, count: int, its: int, warmup: int) -> float:
    from dltoolkit import DataSpec
    from dltoolkit_vision.models import build_resnet
    from dltoolkit_vision.options import ResnetConfig

    torch.manual_seed(0)
    model = build_resnet(ResnetConfig(depth=20), DataSpec.images((3, 32, 32), num_classes=10)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    cut = batches(images(count, 32), batch, device, torch.contiguous_format)
    labels = torch.randint(0, 10, (count,), generator=torch.Generator().manual_seed(0))

    def step(i: int) -> None:
        x = cut(i)
        y = labels[: len(x)].to(device, non_blocking=True)
        loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sync(device)

    return plain_seconds_per_iteration(step, its, warmup)


def plain_vae(device: torch.device, batch: int, count: int, its: int, warmup: int) -> float:
    from dltoolkit_vae.models import conv_vae
    from dltoolkit_vae.options import ConvVaeConfig

    torch.manual_seed(0)
    model = conv_vae(ConvVaeConfig(), image_shape=(3, 64, 64))
    encoder, decoder = model.encoder.to(device), model.decoder.to(device)
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-3)
    cut = batches(images(count, 64), batch, device, torch.contiguous_format)

    def step(i: int) -> None:
        x = cut(i)
        mu, logvar = encoder(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        target = (x + 1) / 2
        rec = F.binary_cross_entropy_with_logits(decoder(z), target, reduction="none").flatten(1).sum(1)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)
        loss = (rec + kl).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sync(device)

    return plain_seconds_per_iteration(step, its, warmup)


def compare(
    name: str, rounds: int, plain: Callable[[], float], ours: Callable[[], float], per_it: int, unit: str
) -> tuple[float, float]:
    """Alternate plain and dltk ``rounds`` times; print and return the median rates (plain, dltk)."""
    pairs = []
    for r in range(rounds):
        first, second = (plain, ours) if r % 2 == 0 else (ours, plain)
        a, b = first(), second()
        pairs.append((a, b) if r % 2 == 0 else (b, a))
    plain_rate = statistics.median(per_it / p for p, _ in pairs)
    our_rate = statistics.median(per_it / o for _, o in pairs)
    ratios = [p / o for p, o in pairs]
    print(
        f"  {name:<38} plain {plain_rate:>10,.1f} {unit}   dltk {our_rate:>10,.1f} {unit}   "
        f"ratio {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})",
        flush=True,
    )
    return plain_rate, our_rate


def dcgan_part(args: argparse.Namespace, device: torch.device) -> None:
    count = args.iterations * args.batch
    print(f"DCGAN 64x64 (base 64), batch {args.batch}, {args.iterations} iterations after {args.warmup} warm-up:")
    settings = ["fp32", "bf16", "bf16 + channels_last", "bf16 + channels_last + compile"]
    if args.tiny and not args.with_compile:
        settings = settings[:3]
    rates = {}
    for setting in settings:
        warmup = args.warmup + (args.compile_warmup if "compile" in setting else 0)
        its = args.iterations + (args.compile_warmup if "compile" in setting else 0)
        text = dcgan_recipe(
            device=str(device),
            batch=args.batch,
            count=its * args.batch,
            precision="bf16" if setting.startswith("bf16") else "fp32",
            channels_last="channels_last" in setting,
            compile="compile" in setting,
        )
        rates[setting] = compare(
            setting,
            args.rounds,
            lambda s=setting, w=warmup, n=its: plain_dcgan(
                device,
                args.batch,
                count,
                n,
                w,
                precision="bf16" if s.startswith("bf16") else "fp32",
                channels_last="channels_last" in s,
                compile="compile" in s,
            ),
            lambda t=text, w=warmup: dltk_seconds_per_iteration(t, [], w),
            args.batch,
            "img/s",
        )
    if "bf16 + channels_last" in rates:
        gain = rates["bf16 + channels_last"][1] / rates["fp32"][0]
        print(f"  dltk bf16 + channels_last against the fp32 plain loop: {gain:.2f}x (target: at least 2x)")


def steps_part(args: argparse.Namespace, device: torch.device) -> None:
    batch = args.batch
    print(f"Training steps, batch {batch}:")
    for name, template, plain in (
        ("classifier (resnet-20, 32x32)", CLASSIFY, plain_classify),
        ("VAE (conv-vae, 64x64)", VAE, plain_vae),
    ):
        text = template.format(device=device, batch=batch, count=args.iterations * batch)
        compare(
            name,
            args.rounds,
            lambda p=plain: p(device, batch, args.iterations * batch, args.iterations, args.warmup),
            lambda t=text: dltk_seconds_per_iteration(t, [], args.warmup),
            1,
            "it/s",
        )


class _Source:
    """What the fidelity metrics read from a run: a sampler, a reference split, a cache, a device."""

    def __init__(self, sampler, dataset, cache: Path, device: torch.device):
        self.sampler, self.dataset, self.cache_dir, self.device, self.seed = sampler, dataset, cache, device, 0

    def reference(self, split):
        return self.dataset, {"dataset": "bench-images", "split": split}


class _Uint8(torch.utils.data.Dataset):
    def __init__(self, data: torch.Tensor):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.data[i]


def fid_part(args: argparse.Namespace, device: torch.device) -> None:
    import torch_fidelity

    from dltoolkit.data import InMemoryImages
    from dltoolkit.files import sha256_file
    from dltoolkit.sampling import ImageSampler
    from dltoolkit_fidelity.metrics import Fid, FidelityConfig
    from dltoolkit_gan import DcganConfig, dcgan

    n = args.fid_samples
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        weights = args.inception
        if weights is None:
            from evaluation_cost import random_inception

            weights = tmp / "inception.pth"
            random_inception(weights)
        reference = images(n, 32)
        generator = dcgan(DcganConfig(), image_shape=(3, 32, 32)).generator.to(device)
        source = _Source(ImageSampler(generator, 100, device), InMemoryImages(reference), tmp / "cache", device)
        options = {
            "num_samples": n,
            "reference_samples": n,
            "weights_path": str(weights),
            "weights_sha256": sha256_file(weights),
            "batch_size": args.fid_batch,
        }
        metric = Fid(FidelityConfig(**options), source)
        timings = []
        for _ in range(2):
            sync(device)
            start = time.perf_counter()
            Fid.evaluate_together(source, [metric])
            sync(device)
            timings.append(time.perf_counter() - start)
        wrapped = torch_fidelity.GenerativeModelModuleWrapper(_ToUint8(generator.eval()), 100, "normal", 0)
        sync(device)
        start = time.perf_counter()
        torch_fidelity.calculate_metrics(
            input1=wrapped,
            input1_model_num_samples=n,
            input2=_Uint8(reference),
            fid=True,
            cuda=device.type == "cuda",
            verbose=False,
            cache=False,
            batch_size=args.fid_batch,
            feature_extractor_weights_path=str(weights),
        )
        plain = time.perf_counter() - start
    print(f"FID of {n:,} generated samples (DCGAN 32x32) against {n:,} reference images, Inception pool3:")
    print(f"  dltk fid metric, reference statistics cached (a run's later evaluations): {timings[1]:.1f} s")
    print(f"  dltk fid metric, first evaluation (reference features extracted too):     {timings[0]:.1f} s")
    print(f"  torch_fidelity.calculate_metrics (generator wrapper, reference dataset): {plain:.1f} s")
    print("  target: under 30 s for 10,000 samples")


class _ToUint8(torch.nn.Module):
    """torch-fidelity's generator input wants uint8 images."""

    def __init__(self, generator: torch.nn.Module):
        super().__init__()
        self.generator = generator

    @torch.no_grad()
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z).float().add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def scaling_part(args: argparse.Namespace, device: torch.device) -> None:
    count = torch.cuda.device_count() if device.type == "cuda" else 0
    top = args.max_procs or (count if device.type == "cuda" else 2)
    if top < 2:
        print("Scaling: one GPU here; --nproc-per-node 2..N needs at least 2")
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    per_process = args.batch
    print(f"dltk run --nproc-per-node k ({backend}), DCGAN 64x64 bf16, batch {per_process} per process:")
    rates = {}
    for k in range(1, top + 1):
        text = dcgan_recipe(
            device=str(device),
            batch=per_process * k,
            count=args.iterations * per_process * k,
            precision="bf16" if device.type == "cuda" else "fp32",
        )
        with tempfile.TemporaryDirectory() as tmp:
            stamps = Path(tmp) / "times.txt"
            os.environ["DLTK_BENCH_TIMES"] = str(stamps)
            try:
                dltk_seconds_per_iteration(text, ["--nproc-per-node", str(k)] if k > 1 else [], args.warmup)
            finally:
                del os.environ["DLTK_BENCH_TIMES"]
            times = [float(t) for t in stamps.read_text().split()] if k > 1 else bench_plugin.TIMES
        seconds = (times[-1] - times[args.warmup - 1]) / (len(times) - args.warmup)
        rates[k] = per_process * k / seconds
        print(f"  {k} process{'es' if k > 1 else ''}: {rates[k]:,.1f} img/s, {rates[k] / rates[1]:.2f}x one process")
    if 2 in rates:
        print("  target: 2 processes at least 1.8x one")


NANOGPT_384 = [
    "model.layers=6", "model.heads=6", "model.width=384", "model.context=256", "model.dropout=0.2",
    "dataset.seq_len=256", "recipe.batch_size=64", "recipe.epochs=10", "recipe.steps_per_epoch=500",
    "recipe.precision=bf16", "recipe.compile=true", "metrics.0.every=10", "recipe.lr=1e-3", "recipe.min_lr=1e-4",
]  # fmt: skip
"""nanoGPT's config/train_shakespeare_char.py over gpt_shakespeare.toml (which holds its optimiser,
warm-up, cosine to 1e-4 and random windows): 10 x 500 = its 5,000 iterations."""


def nanogpt_part(args: argparse.Namespace, device: torch.device) -> None:
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    text = Path(args.text)
    if not text.is_file():
        print(f"nanoGPT 384: no text at {text} (--text tiny Shakespeare); skipped")
        return
    overrides = [*NANOGPT_384, f"run.device={device}", f"dataset.path={text}", "run.writers=[]"]
    if args.tiny:  # every code path, in seconds
        overrides += ["model.layers=1", "model.width=48", "dataset.seq_len=32", "model.context=32"]
        overrides += ["recipe.batch_size=4", "recipe.epochs=1", "recipe.steps_per_epoch=3", "recipe.compile=false"]
        overrides += ["recipe.precision=fp32"] if device.type != "cuda" else []
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        command = [str(Path(sys.executable).parent / "dltk"), "run", str(root / "recipes" / "gpt_shakespeare.toml")]
        start = time.perf_counter()
        subprocess.run([*command, *overrides, "--run-dir", str(run)], check=True, stdout=subprocess.DEVNULL)
        minutes = (time.perf_counter() - start) / 60
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    bpc = [r["bpc"] for r in records if r.get("kind") == "eval" and "bpc" in r]
    size = "--tiny: 1 layer x 48, 3 steps" if args.tiny else "6 layers x 384, context 256, batch 64, 5,000 steps"
    print(f"nanoGPT {size} (dltk run recipes/gpt_shakespeare.toml):")
    print(f"  held-out {bpc[-1]:.3f} bits/char ({bpc[-1] * math.log(2):.4f} nats) in {minutes:.1f} minutes")
    print("  nanoGPT on one A100: 1.4697 nats (2.120 bits/char) in about 3 minutes")


STYLEGAN2_DATA = """
[dataset]
name = "bench-images"
count = {count}
image_size = 32
channels = 3

[checkpoint]
every = 1
keep = 1
"""


def stylegan2_part(args: argparse.Namespace, device: torch.device) -> None:
    recipe = (Path(__file__).resolve().parent.parent / "recipes" / "stylegan2_cifar10.toml").read_text()
    # the recipe's own settings up to its data; in-memory images instead of CIFAR-10, no metrics or callbacks
    text = recipe.split("\n[dataset]")[0] + STYLEGAN2_DATA.format(count=args.iterations * 64)
    overrides = [f"run.device={device}", "recipe.epochs=1", "run.writers=[]"]
    if args.tiny:  # every code path, in seconds
        overrides += ["model.channel_base=256", "model.channel_max=16", "model.latent_dim=16", "model.w_dim=16"]
        overrides += ["recipe.batch_size=8", "model.mbstd_group=4", f"dataset.count={args.iterations * 8}"]
    batch = 8 if args.tiny else 64
    seconds = dltk_seconds_per_iteration(text, overrides, args.warmup)
    print(f"StyleGAN2 CIFAR-10 setting (dltk run recipes/stylegan2_cifar10.toml), batch {batch}, "
          f"{args.iterations} iterations after {args.warmup} warm-up:")  # fmt: skip
    print(f"  {batch / seconds:,.0f} img/s; NVlabs' 100,000 kimg would take {1e8 / (batch / seconds) / 3600:,.1f} h")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: checks every code path in seconds (CPU)")
    parser.add_argument("--with-compile", action="store_true", help="with --tiny: include the compiled setting")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--compile-warmup", type=int, default=20, help="extra warm-up iterations when compiling")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--fid-samples", type=int, default=10_000)
    parser.add_argument("--fid-batch", type=int, default=500)
    parser.add_argument("--inception", type=Path, help="torch-fidelity Inception weights file (default: random)")
    parser.add_argument("--max-procs", type=int, help="scaling up to this many processes (default: every GPU)")
    parser.add_argument(
        "--skip", default="", help="comma-separated parts to skip: dcgan,steps,fid,scaling,nanogpt,stylegan2"
    )
    parser.add_argument(
        "--text", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"),
        help="tiny Shakespeare for the nanoGPT part (default: ../shared/data/tinyshakespeare.txt)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.tiny:
        args.rounds, args.iterations, args.warmup, args.batch = 1, 4, 2, 8
        args.compile_warmup, args.fid_samples, args.fid_batch = 2, 16, 8
    device = torch.device(args.device)
    if device.type == "cuda":
        bench_plugin.SYNC = True
        props = torch.cuda.get_device_properties(device)
        print(
            f"GPU: {torch.cuda.get_device_name(device)} ({props.total_memory / 2**30:.0f} GiB), "
            f"{torch.cuda.device_count()} visible"
        )
    else:
        print(f"No GPU: {device} (figures from here are not GPU figures)")
    print(f"torch {torch.__version__}, batch {args.batch}, {args.rounds} alternating rounds", flush=True)
    skip = set(filter(None, args.skip.split(",")))
    parts = (("dcgan", dcgan_part), ("steps", steps_part), ("fid", fid_part), ("scaling", scaling_part),
             ("nanogpt", nanogpt_part), ("stylegan2", stylegan2_part))  # fmt: skip
    for part, run in parts:
        if part not in skip:
            run(args, device)


if __name__ == "__main__":
    main()
