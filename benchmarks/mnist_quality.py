"""How good are the MNIST GAN recipes' digits on real MNIST? A LeNet judge reads 1,000 samples.

The data: the 5,000 real MNIST digits of ``../shared/data`` (IDX files, the first 5,000 of the
official test set). A fixed, seeded choice of 1,000 of them (100 of each digit) is held out for the
judge; the GANs train on the other 4,000. Both parts are written as image folders with a sub-folder
per digit (what the built-in ``image-folder`` dataset reads as labels):

* ``DATA/gan/train/<digit>/*.png``: the 4,000 the GANs train on (``gan/test``: the judge's 1,000,
  which no GAN reads);
* ``DATA/judge/train/<digit>/*.png``: the judge's 1,000; ``judge/test``: the 4,000, so the judge's
  own held-out accuracy in its run is its accuracy on the GANs' training digits.

Then, through ``dltk run``:

1. the judge: LeNet-5 (``lenet``, as ``recipes/cnn_mnist.toml``) trained on the 1,000 held-out
   digits from a recipe this script writes (``DATA/judge.toml``), into ``RUNS/judge``;
2. each GAN recipe (``recipes/gan_mnist.toml``, ``recipes/dcgan_mnist.toml``) with its settings
   unchanged but for the data (the 4,000, grayscale, at the recipe's own image size) and
   ``recipe.epochs``; its FID/IS metrics and image callbacks are off (``metrics=[]``,
   ``callbacks=[]``, one checkpoint, the last) because they do not change training and
   torch-fidelity's Inception would cost more CPU than the training; one torch thread;
3. 1,000 samples of each run (seed 0) scored as ``benchmarks/gan_quality.py`` scores them (its
   ``scores``): the share read with softmax >= 0.9 (confident), each digit's share of confident
   reads (min digit), and the Frechet distance of the judge's penultimate features to those of
   the 4,000 training digits (classifier FID).

The first row is the reference line: the 4,000 real training digits (which the judge never saw)
scored the same way. The CPU time of each ``dltk run`` is its process time (user + sys).

    uv run python benchmarks/mnist_quality.py                      # judge + both recipes, default epochs
    uv run python benchmarks/mnist_quality.py --recipe gan_mnist.toml:60 --set recipe.lr_d=1e-4
    uv run python benchmarks/mnist_quality.py --score runs/mnist-quality/gan_mnist
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gan_quality import read, score_run, scores  # noqa: E402

SOURCES = (ROOT.parent / "shared" / "data", ROOT / "shared" / "data", ROOT.parent.parent / "shared" / "data")
"""Where the IDX files are looked for: ``../shared/data`` of the checkout, else of its parent (a worktree)."""
IMAGES = "mnist-5k-images-idx3-ubyte.gz"
LABELS = "mnist-5k-labels-idx1-ubyte.gz"
HELD_OUT_PER_DIGIT = 100
DEFAULT_RECIPES = ("gan_mnist.toml:30", "dcgan_mnist.toml:20")

JUDGE_RECIPE = """\
# The judge of benchmarks/mnist_quality.py: LeNet-5 (as recipes/cnn_mnist.toml) on the 1,000
# held-out real MNIST digits; its test split is the 4,000 the GANs train on.
seed = 0

[run]
dir = "runs"
device = "cpu"
threads = 1

[recipe]
name = "classify"
epochs = 40
batch_size = 64
optimizer = "sgd"
lr = 0.05
momentum = 0.9
weight_decay = 5e-4
schedule = "cosine"
crop_padding = 2
log_every = 50

[model]
name = "lenet"
channels = [6, 16]
hidden = [120, 84]
batch_norm = true

[dataset]
name = "image-folder"
root = "{root}"
channels = 1
image_size = 28

[[metrics]]
name = "accuracy"

[checkpoint]
every = 10
keep = 1
best_by = "eval/accuracy"
"""


def read_idx(path: Path) -> np.ndarray:
    """The array of an IDX file (gzip), as uint8 with the shape its header gives."""
    with gzip.open(path) as file:
        data = file.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def held_out(labels: np.ndarray, per_digit: int = HELD_OUT_PER_DIGIT, seed: int = 0) -> np.ndarray:
    """A boolean mask of the judge's share: ``per_digit`` of each digit, chosen with ``seed``."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), dtype=bool)
    for d in range(10):
        mask[rng.choice(np.flatnonzero(labels == d), per_digit, replace=False)] = True
    return mask


def _write(folder: Path, images: np.ndarray, labels: np.ndarray, index: np.ndarray) -> None:
    from PIL import Image

    for i in index:
        sub = folder / str(int(labels[i]))
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i], mode="L").save(sub / f"{i:04d}.png")


def prepare(data: Path, source: Path | None = None) -> None:
    """Write the two image folders (once; a complete ``data`` is left as it is)."""
    done = data / "done"
    if done.exists():
        return
    if data.exists():
        shutil.rmtree(data)
    if source is None:
        source = next((s for s in SOURCES if (s / IMAGES).is_file()), SOURCES[0])
    images, labels = read_idx(source / IMAGES), read_idx(source / LABELS)
    judge = held_out(labels)
    train, test = np.flatnonzero(~judge), np.flatnonzero(judge)
    for name, (a, b) in {"gan": (train, test), "judge": (test, train)}.items():
        _write(data / name / "train", images, labels, a)
        _write(data / name / "test", images, labels, b)
    done.write_text(f"{len(train)} train / {len(test)} judge\n")


def dltk_run(args: list[str], log: Path) -> float:
    """Run ``dltk run ARGS`` in a child process; its CPU time (user + sys, seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    with log.open("w") as out:
        code = subprocess.call([sys.executable, "-m", "dltoolkit", "run", *args], stdout=out, stderr=subprocess.STDOUT)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code != 0:
        raise SystemExit(f"dltk run {' '.join(args)} failed ({code}); see {log}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"  {cpu:.0f} s CPU, {time.time() - start:.0f} s wall (log: {log})")
    return cpu


def train_judge(data: Path, runs: Path) -> Path:
    """The judge's run directory (trained once)."""
    run = runs / "judge"
    if (run / "checkpoints").is_dir():
        return run
    recipe = data / "judge.toml"
    recipe.write_text(JUDGE_RECIPE.format(root=(data / "judge").resolve()))
    runs.mkdir(parents=True, exist_ok=True)
    print(f"training the judge (LeNet-5 on the 1,000 held-out digits) into {run}")
    dltk_run([str(recipe), "--run-dir", str(run)], runs / "judge.log")
    return run


def gan_overrides(recipe: Path, data: Path, epochs: int, every: int | None = None) -> list[str]:
    """The overrides that point ``recipe`` at the 4,000 digits: data, epochs, no metrics or image callbacks."""
    import tomllib

    size = tomllib.loads(recipe.read_text()).get("dataset", {}).get("image_size", 28)
    root = (data / "gan").resolve()
    return [
        f"dataset={{name='image-folder',root='{root}',channels=1,image_size={size}}}",
        f"recipe.epochs={epochs}",
        "metrics=[]",
        "callbacks=[]",
        f"checkpoint={{every={every or epochs},keep={epochs // (every or epochs)}}}",
        "run.threads=1",
        "run.device='cpu'",
    ]


def _score_raw(args: argparse.Namespace, judge: Any, reference: torch.Tensor) -> None:
    """Score the training generator (``generator``) of checkpoints of ``ema_decay`` runs."""
    from dltoolkit._generate import load_trained
    from dltoolkit._manager import make_plugin_host
    from dltoolkit._registry import Registry

    registry = Registry(make_plugin_host([]))
    for source in args.score:
        trained, _meta, path = load_trained(registry, source, "cpu")
        state = torch.load(path, map_location="cpu", weights_only=False)["generator"]
        trained.sampler.module.load_state_dict(state)
        images = torch.cat(list(trained.sampler.batches(args.num, seed=args.seed)))
        r = scores(judge, images, reference, args.threshold)
        digits = " ".join(f"{d}:{s:.0%}" for d, s in enumerate(r["per_digit"]))
        print(
            f"| {path.name}, training generator | | {r['confident']:.1%} | {r['min_digit']:.1%} | "
            f"{r['classifier_fid']:.2f} | {digits} |"
        )


def _real(data: Path, size: int) -> torch.Tensor:
    """The 4,000 training digits as the GANs see them at ``size`` (in [-1, 1])."""
    from dltoolkit.builtin.datasets import ImageFolderConfig, image_folder

    train = image_folder(ImageFolderConfig(root=str(data / "gan"), channels=1, image_size=size), split="train")
    return torch.stack([train[i][0] for i in range(len(train))])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "mnist-5k", help="where the image folders go")
    parser.add_argument("--source", type=Path, help="folder of the two IDX files (default: ../shared/data)")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "mnist-quality", help="where the runs go")
    parser.add_argument(
        "--recipe",
        action="append",
        metavar="FILE:EPOCHS",
        help=f"a recipe of recipes/ and its epochs (repeatable; default {' '.join(DEFAULT_RECIPES)})",
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="one more override")
    parser.add_argument("--name", help="run directory name (default: the recipe's stem)")
    parser.add_argument("--score", type=Path, action="append", default=[], metavar="RUN", help="score a run only")
    parser.add_argument(
        "--every", type=int, help="also checkpoint and score every this many epochs (default: the last only)"
    )
    parser.add_argument(
        "--raw",
        action="store_true",
        help="with --score: sample the training generator of an ema_decay run, not its moving average",
    )
    parser.add_argument("--num", type=int, default=1000, help="samples per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    from dltoolkit_vision.classifier_fid import load_classifier

    prepare(args.data, args.source)
    judge = load_classifier(train_judge(args.data, args.runs), "--judge")
    real = _real(args.data, 28)
    _, _, reference = read(judge, real)
    results: list[dict[str, Any]] = [
        {"run": "real training digits (4,000; the judge never saw them)", **scores(judge, real, reference, 0.9)},
        {
            "run": "the same at 32x32 (dcgan_mnist's size), read back at 28x28",
            **scores(judge, _real(args.data, 32), reference, 0.9),
        },
    ]

    if args.raw:
        return _score_raw(args, judge, reference)
    todo = [(run, None) for run in args.score]
    if not args.score:
        for spec in args.recipe or DEFAULT_RECIPES:
            file, _, epochs = spec.partition(":")
            recipe = ROOT / "recipes" / file
            run = args.runs / (args.name or recipe.stem)
            if run.exists():
                shutil.rmtree(run)
            overrides = gan_overrides(recipe, args.data, int(epochs), args.every) + args.set
            print(f"training {file} for {epochs} epochs: {' '.join(args.set)}")
            cpu = dltk_run([str(recipe), "--run-dir", str(run), *overrides], args.runs / f"{run.name}.log")
            todo.append((run, cpu))
    for run, cpu in todo:
        checkpoints = sorted(run.glob("checkpoints/checkpoint_*.pt"), key=lambda p: int(p.stem.split("_")[-1]))
        for source in checkpoints[:-1] if args.every else []:  # the trajectory; the last is the run's row
            results.append({**score_run(source, judge, reference, args), "overrides": args.set})
        results.append({**score_run(run, judge, reference, args), "cpu_s": cpu, "overrides": args.set})

    print(
        f"judge: {judge.path} (accuracy on the 4,000 training digits {judge.accuracy}); FID reference: the "
        f"4,000 training digits; confident: softmax >= {args.threshold}; {args.num} samples, seed {args.seed}"
    )
    print("| run | CPU s | confident | min digit | classifier FID | per digit (confident share) |")
    print("|---|---|---|---|---|---|")
    for r in results:
        digits = " ".join(f"{d}:{s:.0%}" for d, s in enumerate(r["per_digit"]))
        cpu = f"{r['cpu_s']:.0f}" if r.get("cpu_s") else ""
        name = f"{Path(r['run']).name} ({Path(r['checkpoint']).stem})" if "checkpoint" in r else r["run"]
        print(
            f"| {name} | {cpu} | {r['confident']:.1%} | {r['min_digit']:.1%} | {r['classifier_fid']:.2f} | {digits} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.exit(main())
