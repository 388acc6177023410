"""FID and KID in the feature space of a dltoolkit classifier (``classifier-fid``).

On 8x8 or 28x28 grey digits ImageNet Inception features mean little and cost minutes on a CPU; a
classifier trained on the same domain is the usual feature space. The features are the classifier's
penultimate activations (the input of its last ``nn.Linear``). Every score carries its protocol:
the classifier checkpoint's sha256, the data it was trained on and its recorded held-out accuracy,
the feature size, how images were fitted to its input, and the sample and reference counts.
Reference features are cached under ``cache_dir/classifier-fid`` keyed by that protocol.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dltoolkit import DataSpec, DltkError
from dltoolkit.files import CHECKPOINTS, METRICS_NAME, sha256_file
from dltoolkit.images import to_uint8
from dltoolkit_vision.options import ClassifierFidConfig, LenetConfig, ResnetConfig, TorchvisionConfig

CACHE_FORMAT = 1
KID_SUBSETS = 20
KID_SUBSET_SIZE = 1000
_MEMO: dict[str, Tensor] = {}
_CONTENT: dict[tuple[str, int], str] = {}
_CLASSIFIERS: dict[tuple[str, str], Classifier] = {}


def _where(run: Any, config: Any) -> str:
    for index, table in enumerate(getattr(getattr(run, "recipe_file", None), "metrics", ())):
        if table.config is config:
            return f"metrics.{index}.classifier"
    return "classifier-fid.classifier"


# --- the classifier ---------------------------------------------------------------------------------


def checkpoint_for(path: Path, where: str) -> Path:
    """The checkpoint a classify run stands for: its best, else its newest ``checkpoint_<N>.pt``."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise DltkError(f"{where}: '{path}' is no such run directory or checkpoint")
    folder = path / CHECKPOINTS
    best = sorted(folder.glob("best_checkpoint_*.pt"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    if best:
        return best[-1]
    numbered = []
    for candidate in folder.glob("checkpoint_*.pt") if folder.is_dir() else ():
        stem = candidate.stem.removeprefix("checkpoint_")
        if stem.isdigit():
            numbered.append((int(stem), candidate))
    if not numbered:
        raise DltkError(f"{where}: '{path}' is not a run directory with checkpoints (no checkpoints/*.pt)")
    return max(numbered)[1]


def _model_factories() -> dict[str, tuple[type, Any]]:
    from dltoolkit_vision.models import build_lenet, build_resnet, build_torchvision

    return {
        "lenet": (LenetConfig, build_lenet),
        "resnet": (ResnetConfig, build_resnet),
        "torchvision": (TorchvisionConfig, build_torchvision),
    }


def _rebuild_model(registry: Any, name: str, options: dict[str, Any], spec: DataSpec, where: str) -> Any:
    """The classify run's model, fresh: through the run's registry (any model of the recipe, a
    third party's too), else one of this plugin's own."""
    components = getattr(registry, "components", {}).get("model", {})
    if name in components:
        component = components[name]
        return component.build(component.config(**options), data=spec, image_shape=tuple(spec.shape))
    factories = _model_factories()
    if name not in factories:
        raise DltkError(f"{where}: the classify run's model '{name}' is not installed here (dltk list models)")
    config_type, build = factories[name]
    return build(config_type(**options), spec)


def _held_out_accuracy(run_dir: Path, iteration: int | None) -> tuple[float | None, str | None]:
    """The accuracy the run recorded at ``iteration`` (else its last), and on which split."""
    log = run_dir / METRICS_NAME
    if not log.is_file():
        return None, None
    found: list[dict[str, Any]] = []
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("kind") == "eval" and "accuracy" in record:
            found.append(record)
    if not found:
        return None, None
    chosen = next((r for r in found if r.get("iteration") == iteration), found[-1])
    split = ((chosen.get("protocol") or {}).get("accuracy") or {}).get("split")
    return float(chosen["accuracy"]), split


class Classifier:
    """A trained dltoolkit-vision classifier as a feature extractor (its penultimate activations)."""

    def __init__(self, source: Path, where: str, registry: Any = None):
        path = checkpoint_for(source, where)
        self.path = path.resolve()
        try:
            data = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a torn, foreign or unsafe file: never loaded unsafely
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise DltkError(f"{where}: '{path}' is not a readable checkpoint: {first}") from None
        meta = data.get("meta") if isinstance(data, dict) else None
        if not isinstance(meta, dict):
            raise DltkError(f"{where}: '{path}' is not a dltoolkit checkpoint (no 'meta' entry)")
        model_name = meta.get("model")
        if meta.get("recipe") != "classify":
            raise DltkError(
                f"{where}: '{source}' is not a classifier run: its recipe is '{meta.get('recipe')}' (model "
                f"'{model_name}'), not 'classify'; give a run of the classify recipe"
            )
        try:
            options = json.loads(meta.get("model_options") or "{}")
            options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
            spec = DataSpec.from_json(str(meta["data"]))
            model = _rebuild_model(registry, str(model_name), options, spec, where)
        except (KeyError, ValueError, TypeError) as exc:
            raise DltkError(f"{where}: '{path}': cannot rebuild its model from the metadata: {exc}") from None
        states = data.get("classifier")
        if not isinstance(states, dict):
            raise DltkError(f"{where}: '{path}' holds no classifier weights")
        try:
            model.load_state_dict(states)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise DltkError(f"{where}: '{path}': the weights do not fit model '{model_name}': {first}") from None
        if len(spec.shape) != 3:
            raise DltkError(f"{where}: '{path}': the classifier does not take images ({spec.describe()})")
        heads = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
        if not heads:
            raise DltkError(f"{where}: '{path}': the model has no final nn.Linear layer to take features before")
        self.head_name, head = heads[-1]
        self.model = model.eval()
        self.head = head
        self.feature_dim = int(head.in_features)
        self.shape = tuple(int(s) for s in spec.shape)
        self.model_name = model_name
        self.sha256 = sha256_file(self.path)
        try:
            dataset = json.loads(meta.get("dataset") or "null")
        except ValueError:
            dataset = None
        self.dataset = dataset
        trainer = data.get("trainer")
        iteration = int(trainer["iteration"]) if isinstance(trainer, dict) and "iteration" in trainer else None
        self.accuracy, self.accuracy_split = _held_out_accuracy(self.path.parent.parent, iteration)

    def fit(self, images: Tensor) -> Tensor:
        """Images in [-1, 1] fitted to the classifier's input: channels converted, resized (antialiased bilinear)."""
        channels, height, width = self.shape
        if images.dim() != 4:
            raise DltkError(f"classifier-fid: expected image batches (N, C, H, W), got shape {list(images.shape)}")
        have = images.shape[1]
        if have != channels:
            if have == 1 and channels == 3:
                images = images.expand(-1, 3, -1, -1)
            elif have == 3 and channels == 1:
                weights = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype, device=images.device)
                images = (images * weights.view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
            else:
                raise DltkError(
                    f"classifier-fid: images of {have} channels cannot be fitted to a classifier of {channels}"
                )
        if tuple(images.shape[2:]) != (height, width):
            images = F.interpolate(images.float(), size=(height, width), mode="bilinear", antialias=True)
        return images.float()

    def fitting(self, shape: list[int]) -> str:
        """How images of ``shape`` (C, H, W) are fitted, in words (for the protocol)."""
        parts = []
        if shape and shape[0] != self.shape[0]:
            parts.append("grey repeated to RGB" if shape[0] == 1 else "RGB to grey (ITU-R 601 luma)")
        if shape and list(shape[1:]) != list(self.shape[1:]):
            parts.append(f"bilinear antialiased {shape[1]}x{shape[2]} -> {self.shape[1]}x{self.shape[2]}")
        return ", ".join(parts) or "none"

    @torch.no_grad()
    def features(self, batches: Iterable[Tensor], device: torch.device) -> Tensor:
        """Penultimate features ``(N, D)`` (float64, CPU) of image batches in [-1, 1]."""
        model = self.model.to(device)
        captured: list[Tensor] = []
        handle = self.head.register_forward_pre_hook(lambda _m, inputs: captured.append(inputs[0].detach()))
        try:
            collected = []
            for batch in batches:
                captured.clear()
                model(self.fit(batch).to(device))
                collected.append(captured[-1].flatten(1).double().cpu())
        finally:
            handle.remove()
        if not collected:
            return torch.zeros(0, self.feature_dim, dtype=torch.float64)
        return torch.cat(collected)


def load_classifier(source: str | Path, where: str = "classifier-fid.classifier", registry: Any = None) -> Classifier:
    """The classifier of a classify run (its directory or checkpoint), cached while the file is unchanged;
    ``registry`` (the run's) rebuilds models of any plugin.

    Loading never moves torch's global RNG (the model is rebuilt, with its random initialisation, on a
    forked one): a run that loads a scorer trains the same whether this process loaded it before
    (cached) or not, so an in-process run and a ``dltk`` process of its own agree bit for bit."""
    path = Path(source).expanduser()
    key = (str(path.resolve()), str(path.stat().st_mtime_ns) if path.exists() else "")
    if key not in _CLASSIFIERS:
        with torch.random.fork_rng(devices=[]):
            _CLASSIFIERS[key] = Classifier(path, where, registry)
    return _CLASSIFIERS[key]


# --- the scores --------------------------------------------------------------------------------------


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(fake: Tensor, real: Tensor) -> float:
    """FID's formula on two feature sets: |mu1 - mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr(sqrt(S1 S2)).

    Tr(sqrt(S1 S2)) is taken as the sum of the square roots of the eigenvalues of the symmetric
    sqrt(S1) S2 sqrt(S1) (the same eigenvalues), which stays real and stable for singular covariances.
    """
    a, b = fake.double().numpy(), real.double().numpy()
    mu1, mu2 = a.mean(axis=0), b.mean(axis=0)
    s1, s2 = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root = _sqrt_psd(s1)
    middle = root @ s2 @ root
    trace_covmean = float(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum())
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * trace_covmean)


def kernel_distance(fake: Tensor, real: Tensor, subsets: int = KID_SUBSETS, size: int = KID_SUBSET_SIZE) -> dict:
    """KID (Binkowski et al. 2018): unbiased MMD^2 with the kernel (x.y/d + 1)^3, mean and std over subsets."""
    a, b = fake.double().numpy(), real.double().numpy()
    size = min(size, len(a), len(b))
    d = a.shape[1]
    rng = np.random.RandomState(2020)
    values = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), size, replace=False)]
        y = b[rng.choice(len(b), size, replace=False)]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        m = size
        mmd = (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        values.append(mmd - 2 * kxy.mean())
    return {
        "kid": float(np.mean(values)),
        "kid_std": float(np.std(values)),
        "kid_subsets": subsets,
        "kid_subset_size": size,
    }


# --- the reference side and its cache -------------------------------------------------------------


def _dataset_batches(dataset: Any, indices: Tensor, batch_size: int) -> Iterator[Tensor]:
    for start in range(0, len(indices), batch_size):
        chunk = indices[start : start + batch_size]
        if hasattr(dataset, "__getitems__"):
            yield dataset.__getitems__(chunk.tolist())[0]
        else:
            yield torch.stack([dataset[int(i)][0] for i in chunk])


def reference_indices(size: int, count: int | None) -> Tensor:
    """All of the split, or ``count`` images in an order fixed by seed 0."""
    if count is None or count >= size:
        return torch.arange(size)
    return torch.randperm(size, generator=torch.Generator().manual_seed(0))[:count]


def _content_hash(dataset: Any, indices: Tensor, identity: dict[str, Any]) -> str:
    key = (json.dumps(identity, sort_keys=True, default=str), len(indices))
    if key not in _CONTENT:
        digest = hashlib.sha256()
        for batch in _dataset_batches(dataset, indices, 1024):
            digest.update(to_uint8(batch).numpy().tobytes())
        _CONTENT[key] = digest.hexdigest()
    return _CONTENT[key]


def cache_key(protocol: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps({"format": CACHE_FORMAT, **protocol}, sort_keys=True).encode()).hexdigest()[:32]


def cached_features(cache_dir: Path, protocol: dict[str, Any], compute: Any) -> tuple[Tensor, str | None]:
    """Reference features for ``protocol`` from memory, disk or ``compute()``; and where they came from."""
    key = cache_key(protocol)
    if key in _MEMO:
        return _MEMO[key], "memory"
    path = Path(cache_dir) / "classifier-fid" / f"reference-{key}.pt"
    if path.is_file():
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(stored, dict) and stored.get("protocol") == json.dumps(protocol, sort_keys=True):
                _MEMO[key] = stored["features"]
                return _MEMO[key], "disk"
        except Exception:  # a torn cache file is recomputed, never trusted
            pass
        path.unlink(missing_ok=True)
    features = compute()
    _MEMO[key] = features
    try:  # a private temp name in the same folder, then rename: readers never see half a file
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pt", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            torch.save({"features": features, "protocol": json.dumps(protocol, sort_keys=True)}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # a cache that cannot be written only costs time later
        print(f"dltk: could not cache classifier-fid reference features in {path.parent}: {exc}", file=sys.stderr)
    return features, None


# --- the metric ------------------------------------------------------------------------------------


class ClassifierFid:
    """FID (the value) and KID of generated images in a classifier's penultimate feature space."""

    name = "classifier-fid"

    def __init__(self, config: ClassifierFidConfig, run: Any):
        self.config = config
        self.every = config.every
        self.classifier = load_classifier(config.classifier, _where(run, config), getattr(run, "registry", None))

    @staticmethod
    def summary(result: dict[str, Any]) -> str:
        """The protocol in a line, as ``dltk eval`` prints it."""
        accuracy = result.get("classifier_accuracy")
        return (
            f"{result.get('num_samples')} generated vs {result.get('reference_count')} "
            f"{result.get('reference_dataset')}/{result.get('reference_split')}, "
            f"{result.get('classifier_model')}[{result.get('feature_dim')}] "
            f"{str(result.get('classifier_sha256'))[:12]}"
            + (f" (accuracy {accuracy:.4f})" if isinstance(accuracy, float) else "")
            + f", kid {result.get('kid', float('nan')):.4g}"
        )

    def protocol(self) -> dict[str, Any]:
        c = self.classifier
        return {
            "classifier": str(c.path),
            "classifier_sha256": c.sha256,
            "classifier_model": c.model_name,
            "classifier_dataset": c.dataset,
            "classifier_accuracy": c.accuracy,
            "classifier_accuracy_split": c.accuracy_split,
            "classifier_input": list(c.shape),
            "feature_layer": f"penultimate (input of '{c.head_name}')",
            "feature_dim": c.feature_dim,
        }

    def reference_features(self, run: Any) -> tuple[Tensor, dict[str, Any]]:
        split = self.config.reference
        started = time.perf_counter()
        dataset, identity = run.reference(split)
        indices = reference_indices(len(dataset), self.config.reference_samples)
        first = _dataset_batches(dataset, indices[:1], 1)
        shape = list(next(iter(first)).shape[1:]) if len(indices) else []
        key = {
            "classifier_sha256": self.classifier.sha256,
            "reference": identity,
            "reference_count": len(indices),
            "reference_content_sha256": _content_hash(dataset, indices, identity),
            "resize": self.classifier.fitting(shape),
        }
        features, cached = cached_features(
            run.cache_dir,
            key,
            lambda: self.classifier.features(
                _dataset_batches(dataset, indices, self.config.batch_size), torch.device(run.device)
            ),
        )
        return features, {
            "reference": identity,
            "reference_dataset": identity.get("dataset"),
            "reference_split": split,
            "reference_count": len(indices),
            "reference_resolution": shape[1:],
            "reference_resize": key["resize"],
            "reference_content_sha256": key["reference_content_sha256"],
            "reference_cached": cached,
            "reference_seconds": round(time.perf_counter() - started, 3),
        }

    def score(self, run: Any) -> dict[str, Any]:
        seed = self.config.seed if self.config.seed is not None else run.seed
        started = time.perf_counter()
        first: list[list[int]] = []

        def remember(batches: Iterable[Tensor]) -> Iterator[Tensor]:
            for batch in batches:
                if not first:
                    first.append(list(batch.shape[1:]))
                yield batch

        batches = run.sampler.batches(self.config.num_samples, seed=seed, batch_size=self.config.batch_size)
        fake = self.classifier.features(remember(batches), torch.device(run.device))[: self.config.num_samples]
        shape = first[0] if first else []
        generated_seconds = time.perf_counter() - started
        real, reference = self.reference_features(run)
        if len(fake) < 2 or len(real) < 2:
            raise DltkError(f"classifier-fid: needs at least 2 images on each side, got {len(fake)} and {len(real)}")
        started = time.perf_counter()
        value = frechet_distance(fake, real)
        kid = kernel_distance(fake, real)
        return {
            "value": value,
            **kid,
            **self.protocol(),
            "num_samples": len(fake),
            "seed": seed,
            "generated_resolution": shape[1:],
            "generated_channels": shape[0] if shape else None,
            "resize": self.classifier.fitting(shape),
            **reference,
            "generated_seconds": round(generated_seconds, 3),
            "score_seconds": round(time.perf_counter() - started, 3),
        }

    @staticmethod
    def evaluate_together(run: Any, metrics: list[ClassifierFid]) -> dict[str, dict[str, Any]]:
        results: dict[str, dict[str, Any]] = {}
        for metric in metrics:
            results[metric.name] = metric.score(run)
        return results
