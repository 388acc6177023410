"""FID, IS, KID and precision/recall: configs, and one shared evaluation pass per feature extractor.

The numbers are computed by torch-fidelity's own functions (``fid_statistics_to_metric``,
``isc_features_to_metric``, ``kid_features_to_metric``, ``prc_features_to_metric``); this module
decides what is fed to them, caches the reference side, and records the protocol with each score.

What a metric needs from the run (a :class:`dltoolkit.Run`, or ``dltk eval``'s source):
``sampler`` (``batches(n, seed=, batch_size=)`` of images in [-1, 1]), ``seed``, ``device``,
``cache_dir`` and ``reference(split) -> (dataset, identity)``.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from typing import Any

import torch

from dltoolkit.data import spec_of
from dltoolkit_fidelity.features import (
    cached_reference_features,
    content_hash,
    dataset_batches,
    extract,
    reference_indices,
)
from dltoolkit_fidelity.options import FidelityConfig, IscConfig, KidConfig, PrcConfig
from dltoolkit_fidelity.weights import INCEPTION, load_extractor, resolve_weights

_REFERENCE_IDENTITY: dict[tuple[str, int], str] = {}


def _where(run: Any, config: Any, name: str) -> str:
    for index, table in enumerate(getattr(getattr(run, "recipe_file", None), "metrics", ())):
        if table.config is config:
            return f"metrics.{index}"
    return f"--metrics {name}"


class FidelityMetric(ABC):
    """One configured torch-fidelity metric; instances due together share a feature pass."""

    name = ""
    higher_is_better = False
    default_layer = "2048"
    needs_reference = True

    def __init__(self, config: FidelityConfig, run: Any):
        self.config = config
        self.every = config.every
        self.layer = config.feature_layer or self.default_layer
        self.where = _where(run, config, self.name)
        self.weights_path, self.weights_sha256 = resolve_weights(config, self.where)

    @abstractmethod
    def compute(self, fake: dict[str, torch.Tensor], real: dict[str, torch.Tensor] | None) -> dict[str, Any]:
        """Scores from features: ``{self.name: value, ...extras}``."""

    @staticmethod
    def summary(result: dict[str, Any]) -> str:
        """The protocol of one score in a line, as ``dltk eval`` prints it."""
        compared = f"{result.get('num_samples')} generated"
        if result.get("reference_dataset"):
            compared += f" vs {result['reference_count']} {result['reference_dataset']}/{result['reference_split']}"
        parts = [compared, f"{result.get('feature_extractor')}[{result.get('feature_layer')}]"]
        if result.get("weights_sha256"):
            parts.append(f"weights {str(result['weights_sha256'])[:12]}")
        parts.append(f"torch-fidelity {result.get('torch_fidelity')}")
        return ", ".join(parts)

    @staticmethod
    def evaluate_together(run: Any, metrics: list[FidelityMetric]) -> dict[str, dict[str, Any]]:
        """Score ``metrics`` with one pass over generated images per extractor and weights."""
        results: dict[str, dict[str, Any]] = {}
        groups: dict[tuple[str, str, int], list[FidelityMetric]] = {}
        for metric in metrics:
            key = (metric.config.feature_extractor, metric.weights_sha256, metric.config.batch_size)
            groups.setdefault(key, []).append(metric)
        for (extractor_name, sha, batch_size), members in groups.items():
            results.update(_evaluate_group(run, extractor_name, sha, batch_size, members))
        return results


def _evaluate_group(
    run: Any, extractor_name: str, sha: str, batch_size: int, members: list[FidelityMetric]
) -> dict[str, dict[str, Any]]:
    import torch_fidelity

    layers = tuple(sorted({m.layer for m in members}))
    extractor = load_extractor(extractor_name, layers, members[0].weights_path, sha, run.device)
    seeds = {m.config.seed if m.config.seed is not None else run.seed for m in members}
    results = {}
    for seed in sorted(seeds):
        group = [m for m in members if (m.config.seed if m.config.seed is not None else run.seed) == seed]
        n_fake = max(m.config.num_samples for m in group)
        started = time.perf_counter()
        first: list[torch.Tensor] = []

        def remember_shape(batches, first=first):
            for batch in batches:
                if not first:
                    first.append(batch[:1])
                yield batch

        fake = extract(
            remember_shape(run.sampler.batches(n_fake, seed=seed, batch_size=batch_size)), extractor, layers, run.device
        )
        fake_seconds = time.perf_counter() - started
        shape = list(first[0].shape[1:]) if first else []
        for metric in group:
            protocol: dict[str, Any] = {
                "num_samples": metric.config.num_samples,
                "seed": seed,
                "generated_resolution": shape[1:] if shape else None,
                "generated_channels": shape[0] if shape else None,
                "feature_extractor": extractor_name,
                "feature_layer": metric.layer,
                "resize": (
                    "bilinear, TF1.x-compatible, to 299x299 inside the extractor; 1-channel images repeated to RGB"
                    if extractor_name == INCEPTION
                    else "as the extractor does"
                ),
                "weights_sha256": sha or None,
                "torch_fidelity": torch_fidelity.__version__,
                "generated_seconds": round(fake_seconds, 3),
            }
            real = None
            if metric.needs_reference:
                real, reference_protocol = _reference(run, metric, extractor, extractor_name, sha)
                protocol.update(reference_protocol)
            fake_part = {k: v[: metric.config.num_samples] for k, v in fake.items()}
            values = metric.compute(fake_part, real)
            name_value = values.pop(metric.name)
            results[metric.name] = {"value": name_value, **values, **protocol}
    return results


def _reference(run: Any, metric: FidelityMetric, extractor: Any, extractor_name: str, sha: str) -> tuple[Any, dict]:
    import torch_fidelity

    split = metric.config.reference
    dataset, identity = run.reference(split)
    indices = reference_indices(len(dataset), metric.config.reference_samples)
    memo_key = (json.dumps(identity, sort_keys=True, default=str), len(indices))
    if memo_key not in _REFERENCE_IDENTITY:
        _REFERENCE_IDENTITY[memo_key] = content_hash(dataset, indices)
    protocol = {
        "reference": identity,
        "reference_count": len(indices),
        "reference_content_sha256": _REFERENCE_IDENTITY[memo_key],
        "reference_resolution": list(spec_of(dataset).shape[1:]),
        "feature_extractor": extractor_name,
        "feature_layer": metric.layer,
        "weights_sha256": sha or None,
        "torch_fidelity": torch_fidelity.__version__,
    }
    started = time.perf_counter()

    def compute() -> dict[str, torch.Tensor]:
        return extract(
            dataset_batches(dataset, indices, metric.config.batch_size), extractor, (metric.layer,), run.device
        )

    features, cached = cached_reference_features(run.cache_dir, protocol, compute)
    return features, {
        "reference_dataset": identity.get("dataset"),
        "reference_split": split,
        "reference_count": len(indices),
        "reference_resolution": protocol["reference_resolution"],
        "reference_content_sha256": protocol["reference_content_sha256"],
        "reference_cached": cached,
        "reference_seconds": round(time.perf_counter() - started, 3),
    }


class Fid(FidelityMetric):
    """Fréchet Inception Distance (lower is better)."""

    name = "fid"

    def compute(self, fake, real):
        from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

        stats_fake = fid_features_to_statistics(fake[self.layer].double())
        stats_real = fid_features_to_statistics(real[self.layer].double())
        out = fid_statistics_to_metric(stats_real, stats_fake, verbose=False)
        return {"fid": float(out["frechet_inception_distance"])}


class Isc(FidelityMetric):
    """Inception Score (higher is better); generated images only."""

    name = "isc"
    higher_is_better = True
    default_layer = "logits_unbiased"
    needs_reference = False

    def compute(self, fake, real):
        from torch_fidelity.metric_isc import isc_features_to_metric

        out = isc_features_to_metric(fake[self.layer], splits=self.config.splits, shuffle=True, rng_seed=2020)
        return {"isc": float(out["inception_score_mean"]), "std": float(out["inception_score_std"])}


class Kid(FidelityMetric):
    """Kernel Inception Distance (lower is better), mean over random subsets."""

    name = "kid"

    def compute(self, fake, real):
        from torch_fidelity.metric_kid import kid_features_to_metric

        size = min(self.config.subset_size, len(fake[self.layer]), len(real[self.layer]))
        out = kid_features_to_metric(
            real[self.layer],
            fake[self.layer],
            kid_subsets=self.config.subsets,
            kid_subset_size=size,
            verbose=False,
            rng_seed=2020,
        )
        return {
            "kid": float(out["kernel_inception_distance_mean"]),
            "std": float(out["kernel_inception_distance_std"]),
            "subset_size": size,
        }


class Prc(FidelityMetric):
    """Precision and recall (Kynkäänniemi et al. 2019); the value is their F-score (higher is better)."""

    name = "prc"
    higher_is_better = True

    def compute(self, fake, real):
        from torch_fidelity.metric_prc import prc_features_to_metric

        out = prc_features_to_metric(
            fake[self.layer],
            real[self.layer],
            prc_neighborhood=self.config.neighborhood,
            prc_batch_size=10000,
            save_cpu_ram=False,
            verbose=False,
        )
        return {"prc": float(out["f_score"]), "precision": float(out["precision"]), "recall": float(out["recall"])}


def fid(config: FidelityConfig, *, run: Any) -> Fid:
    """Fréchet Inception Distance via torch-fidelity (lower is better)."""
    return Fid(config, run)


def isc(config: IscConfig, *, run: Any) -> Isc:
    """Inception Score via torch-fidelity (higher is better)."""
    return Isc(config, run)


def kid(config: KidConfig, *, run: Any) -> Kid:
    """Kernel Inception Distance via torch-fidelity (lower is better)."""
    return Kid(config, run)


def prc(config: PrcConfig, *, run: Any) -> Prc:
    """Precision/recall via torch-fidelity; scored by their F-score (higher is better)."""
    return Prc(config, run)
