"""One evaluation inside a run (reference features cached) against a plain
``torch_fidelity.calculate_metrics`` call on two folders, FID + IS, same images, same extractor.

The real Inception weights cannot be downloaded where this was written, so the extractor is
torch-fidelity's Inception-v3 architecture with random weights (the cost does not depend on the
weight values). Pass ``--weights PATH`` to use the real file.

    uv run python benchmarks/evaluation_cost.py [--num-samples 1000] [--weights PATH]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from dltoolkit.builtin.datasets import ImageDatasetConfig, cifar10
from dltoolkit.files import sha256_file
from dltoolkit.images import save_png, to_uint8
from dltoolkit.sampling import ImageSampler
from dltoolkit.testing import use_cifar10_checksums, write_cifar10
from dltoolkit_fidelity.metrics import Fid, FidelityConfig, Isc, IscConfig
from dltoolkit_gan import DcganConfig, dcgan


def random_inception(path: Path) -> None:
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    load, url = fe.FeatureExtractorInceptionV3.load_state_dict, fe.load_state_dict_from_url
    fe.FeatureExtractorInceptionV3.load_state_dict = lambda self, state, strict=True: None
    fe.load_state_dict_from_url = lambda *a, **k: {}
    try:
        torch.save(fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"]).state_dict(), path)
    finally:
        fe.FeatureExtractorInceptionV3.load_state_dict, fe.load_state_dict_from_url = load, url


class Source:
    """What the metrics read from a run."""

    def __init__(self, sampler, dataset, cache: Path):
        self.sampler, self.dataset, self.cache_dir = sampler, dataset, cache
        self.seed, self.device = 0, torch.device("cpu")

    def reference(self, split):
        return self.dataset, {"dataset": "cifar10-bench", "split": split}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--weights", type=Path)
    args = parser.parse_args()
    n = args.num_samples
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        weights = args.weights or tmp / "inception.pth"
        if args.weights is None:
            random_inception(weights)
        sha = sha256_file(weights)
        with use_cifar10_checksums(write_cifar10(tmp / "data", per_batch=(n + 4) // 5, n_test=4)):
            dataset = cifar10(ImageDatasetConfig(root=str(tmp / "data")))
        model = dcgan(DcganConfig(), image_shape=(3, 32, 32))
        sampler = ImageSampler(model.generator, 100, "cpu")
        options = {
            "num_samples": n,
            "reference_samples": n,
            "weights_path": str(weights),
            "weights_sha256": sha,
            "batch_size": 100,
        }
        source = Source(sampler, dataset, tmp / "cache")
        metrics = [Fid(FidelityConfig(**options), source), Isc(IscConfig(**options), source)]
        timings = []
        for _ in range(2):
            start = time.perf_counter()
            Fid.evaluate_together(source, metrics)
            timings.append(time.perf_counter() - start)

        for folder, images in (
            ("real", (dataset[i][0] for i in range(n))),
            ("fake", (img for batch in sampler.batches(n, seed=0, batch_size=100) for img in batch)),
        ):
            (tmp / folder).mkdir()
            for i, image in enumerate(images):
                save_png(to_uint8(image), tmp / folder / f"{i:05d}.png")
        import torch_fidelity

        start = time.perf_counter()
        torch_fidelity.calculate_metrics(
            input1=str(tmp / "fake"),
            input2=str(tmp / "real"),
            fid=True,
            isc=True,
            cuda=False,
            verbose=False,
            cache=False,
            batch_size=100,
            feature_extractor_weights_path=str(weights),
        )
        plain = time.perf_counter() - start
    print(f"{n} generated vs {n} reference images, FID + IS, CPU:")
    print(f"  dltoolkit, first evaluation (reference extracted and cached): {timings[0]:.1f} s")
    print(f"  dltoolkit, repeated evaluation (reference from cache):        {timings[1]:.1f} s")
    print(f"  torch_fidelity.calculate_metrics on two PNG folders:          {plain:.1f} s")
    print(f"  ratio plain / repeated evaluation: {plain / timings[1]:.2f}")


if __name__ == "__main__":
    main()
