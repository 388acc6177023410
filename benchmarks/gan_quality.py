"""How good are a GAN run's digits? Read 1,000 samples with a digits classifier.

For each run directory (or checkpoint, or export) of a GAN trained on digits, this draws
``--num`` samples (seed ``--seed``) from its best checkpoint (else its last) and reports:

* **confident**: the share of samples the classifier reads as one digit with a softmax
  probability of at least ``--threshold`` (0.9);
* **per digit**: the share of all samples confidently read as each digit (the smallest is the
  "min digit" column: a GAN that drops a digit shows 0 there);
* **classifier FID**: the Frechet distance between the classifier's penultimate features of the
  samples and of the training split (1,437 digits), as ``classifier-fid`` of dltoolkit-vision
  computes it (its classifier loading, input fitting and ``frechet_distance``);
* for a class-conditional run (not a self-conditioned one, whose classes are clusters), per
  label: the share of ``--num`` samples drawn with ``label = c`` that the classifier reads as
  ``c`` (argmax) -- ``dltk generate --label c``.

The first row is the reference line: the real held-out digits (the test split's 360, which
neither the GAN nor the classifier trained on) scored the same way, so a figure can be read
against what real digits get. The classifier is a run of
``recipes/cnn_digits.toml`` (``--classifier RUN_DIR``); without one, it is trained once into
``runs/gan-quality-classifier``.

    uv run python benchmarks/gan_quality.py runs/quickstart-<time> [--classifier RUN_DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CLASSIFIER = ROOT / "runs" / "gan-quality-classifier"


def _classifier(path: Path | None) -> Any:
    from dltoolkit.cli import main
    from dltoolkit_vision.classifier_fid import load_classifier

    if path is None:
        path = DEFAULT_CLASSIFIER
        if not (path / "checkpoints").is_dir():
            print(f"training the digits classifier into {path} (recipes/cnn_digits.toml, about a minute)")
            code = main(["run", str(ROOT / "recipes" / "cnn_digits.toml"), "--run-dir", str(path)])
            if code != 0:
                raise SystemExit(f"training the classifier failed ({code})")
    return load_classifier(path, "--classifier")


def _digits(split: str) -> torch.Tensor:
    from dltoolkit.builtin.datasets import ImageDatasetConfig, digits

    dataset = digits(ImageDatasetConfig(), split=split)
    return dataset.__getitems__(list(range(len(dataset))))[0]


@torch.no_grad()
def read(classifier: Any, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(probabilities, predicted digit, penultimate features)`` of images in [-1, 1]."""
    model = classifier.model.eval()
    captured: list[torch.Tensor] = []
    handle = classifier.head.register_forward_pre_hook(lambda _m, inputs: captured.append(inputs[0].detach()))
    probs, feats = [], []
    try:
        for start in range(0, len(images), 500):
            captured.clear()
            logits = model(classifier.fit(images[start : start + 500]))
            probs.append(torch.softmax(logits.float(), dim=1))
            feats.append(captured[-1].flatten(1).double())
    finally:
        handle.remove()
    p = torch.cat(probs)
    return p, p.argmax(dim=1), torch.cat(feats)


def scores(classifier: Any, images: torch.Tensor, reference: torch.Tensor, threshold: float) -> dict[str, Any]:
    from dltoolkit_vision.classifier_fid import frechet_distance

    probs, digit, feats = read(classifier, images)
    confident = probs.max(dim=1).values >= threshold
    per_digit = [float(((digit == d) & confident).float().mean()) for d in range(probs.shape[1])]
    return {
        "count": len(images),
        "confident": float(confident.float().mean()),
        "per_digit": per_digit,
        "min_digit": min(per_digit),
        "classifier_fid": frechet_distance(feats, reference),
    }


def score_run(source: Path, classifier: Any, reference: torch.Tensor, args: argparse.Namespace) -> dict[str, Any]:
    from dltoolkit._generate import load_trained
    from dltoolkit._manager import make_plugin_host
    from dltoolkit._registry import Registry

    registry = Registry(make_plugin_host([]))
    trained, _meta, path = load_trained(registry, source, "cpu")
    sampler = trained.sampler
    images = torch.cat(list(sampler.batches(args.num, seed=args.seed)))
    result = {"run": str(source), "checkpoint": str(path), **scores(classifier, images, reference, args.threshold)}
    classes = tuple(getattr(sampler, "classes", None) or ())
    if classes and "clusters" not in trained.modules:  # a self-conditioned run's classes are clusters
        per_label = []
        for c in range(len(classes)):
            drawn = torch.cat(list(sampler.batches(args.num, seed=args.seed, label=c)))
            _, digit, _ = read(classifier, drawn)
            per_label.append(float((digit == c).float().mean()))
        result["label_accuracy"] = per_label
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", metavar="RUN")
    parser.add_argument("--classifier", type=Path, help="a run of recipes/cnn_digits.toml (default: train one)")
    parser.add_argument("--num", type=int, default=1000, help="samples per run (and per label)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=0.9, help="softmax probability that counts as confident")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    classifier = _classifier(args.classifier)
    _, _, reference = read(classifier, _digits("train"))
    real = {
        "run": "real held-out digits (test split)",
        **scores(classifier, _digits("test"), reference, args.threshold),
    }
    results = [real] + [score_run(run, classifier, reference, args) for run in args.runs]

    print(
        f"classifier: {classifier.path} (held-out accuracy {classifier.accuracy}); FID reference: the 1,437 "
        f"training digits; confident: softmax >= {args.threshold}; {args.num} samples per run, seed {args.seed}"
    )
    print("| run | samples | confident | min digit | classifier FID | per digit (confident share) |")
    print("|---|---|---|---|---|---|")
    for r in results:
        digits = " ".join(f"{d}:{s:.0%}" for d, s in enumerate(r["per_digit"]))
        print(
            f"| {r['run']} | {r['count']} | {r['confident']:.1%} | {r['min_digit']:.1%} | "
            f"{r['classifier_fid']:.2f} | {digits} |"
        )
    for r in results:
        if "label_accuracy" in r:
            shown = " ".join(f"{c}:{a:.0%}" for c, a in enumerate(r["label_accuracy"]))
            print(f"{r['run']}: read as the label asked for (--label c, {args.num} each): {shown}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.exit(main())
