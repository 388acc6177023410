"""Feature extraction for generated and reference images, and the reference-feature cache."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from dltoolkit.images import to_uint8

CACHE_FORMAT = 1
_MEMO: dict[str, dict[str, Tensor]] = {}


def as_rgb_uint8(images: Tensor) -> Tensor:
    """[-1, 1] float images (any channels) -> uint8 RGB, what torch-fidelity's extractors take."""
    images = to_uint8(images)
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


@torch.no_grad()
def extract(
    batches: Iterable[Tensor], extractor: Any, features: tuple[str, ...], device: torch.device
) -> dict[str, Tensor]:
    """Run ``extractor`` over image batches in [-1, 1]; ``{feature name: (N, D) float CPU tensor}``."""
    collected: dict[str, list[Tensor]] = {name: [] for name in features}
    for batch in batches:
        outputs = dict(zip(extractor.features_list, extractor(as_rgb_uint8(batch).to(device)), strict=True))
        for name in features:
            collected[name].append(outputs[name].float().cpu())
    return {name: torch.cat(parts) for name, parts in collected.items()}


def dataset_batches(dataset: Any, indices: Tensor, batch_size: int) -> Iterable[Tensor]:
    for start in range(0, len(indices), batch_size):
        chunk = indices[start : start + batch_size]
        if hasattr(dataset, "__getitems__"):
            yield dataset.__getitems__(chunk)[0]
        else:
            yield torch.stack([dataset[int(i)][0] for i in chunk])


def reference_indices(size: int, count: int | None) -> Tensor:
    """The reference subset: all of it, or ``count`` images in an order fixed by seed 0."""
    if count is None or count >= size:
        return torch.arange(size)
    return torch.randperm(size, generator=torch.Generator().manual_seed(0))[:count]


def content_hash(dataset: Any, indices: Tensor, batch_size: int = 1024) -> str:
    """sha256 of the exact uint8 pixels fed to the extractor: a changed file never reuses stale features."""
    digest = hashlib.sha256()
    for batch in dataset_batches(dataset, indices, batch_size):
        digest.update(to_uint8(batch).numpy().tobytes())
    return digest.hexdigest()


def cache_key(protocol: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(protocol, sort_keys=True).encode()).hexdigest()[:32]


def cached_reference_features(
    cache_dir: Path, protocol: dict[str, Any], compute: Any
) -> tuple[dict[str, Tensor], bool]:
    """Reference features for ``protocol`` from memory, disk (safetensors) or ``compute()``.

    Returns the features and whether they came from a cache.
    """
    from safetensors.torch import load_file, save_file

    key = cache_key({"format": CACHE_FORMAT, **protocol})
    if key in _MEMO:
        return _MEMO[key], True
    path = cache_dir / "fidelity" / f"reference-{key}.safetensors"
    if path.is_file():
        try:
            features = load_file(str(path))
            _MEMO[key] = features
            return features, True
        except Exception:  # a torn cache file is recomputed, never trusted
            path.unlink(missing_ok=True)
    features = compute()
    _MEMO[key] = features
    try:  # a private temp name: runs sharing the cache never rename each other's half-written file
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=path.parent)
        os.close(fd)
        save_file(
            {k: v.contiguous() for k, v in features.items()},
            tmp,
            metadata={"protocol": json.dumps(protocol, sort_keys=True)},
        )
        os.replace(tmp, path)
    except OSError as exc:  # a cache that cannot be written only costs time later
        print(f"dltk: could not cache reference features in {path.parent}: {exc}", file=sys.stderr)
    return features, False
