"""Options of the fidelity metrics: plain data, no torch (registration stays light)."""

from __future__ import annotations

import attrs

from dltoolkit import option

INCEPTION = "inception-v3-compat"
"""torch-fidelity's TF-compatible Inception-v3, the feature extractor FID and IS are defined with."""

_positive = attrs.validators.ge(1)


@attrs.frozen
class FidelityConfig:
    every: int = option(5, doc="Evaluate every this many epochs (and after the last).", validator=_positive)
    num_samples: int = option(10000, doc="Generated images scored.", validator=attrs.validators.ge(2))
    reference: str = option(
        "train",
        doc="Split of the recipe's dataset to compare with: 'train' or 'test'.",
        validator=attrs.validators.in_(("train", "test")),
    )
    reference_samples: int | None = option(
        None,
        doc="Reference images used (a fixed random subset); default: the whole split.",
        validator=attrs.validators.optional(attrs.validators.ge(2)),
    )
    batch_size: int = option(64, doc="Images per feature-extraction batch.", validator=_positive)
    feature_extractor: str = option(
        INCEPTION, doc="A torch-fidelity feature extractor; the default is its TF-compatible Inception-v3."
    )
    feature_layer: str | None = option(
        None, doc="Feature to use (default: '2048' pool features; 'logits_unbiased' for isc)."
    )
    weights_path: str | None = option(
        None, doc="Local weights file (default: the torch hub cache under $TORCH_HOME, downloaded if allowed)."
    )
    weights_sha256: str | None = option(
        None, doc="sha256 of weights other than the official file (the official file's hash is checked)."
    )
    download: bool = option(True, doc="Download the official Inception weights when they are missing.")
    seed: int | None = option(None, doc="Noise seed of the generated samples (default: the recipe's seed).")


@attrs.frozen
class IscConfig(FidelityConfig):
    splits: int = option(10, doc="Splits of the generated samples (IS is their mean and std).", validator=_positive)


@attrs.frozen
class KidConfig(FidelityConfig):
    subsets: int = option(100, doc="Random subsets KID averages over.", validator=_positive)
    subset_size: int = option(1000, doc="Samples per subset (at most num_samples).", validator=_positive)


@attrs.frozen
class PrcConfig(FidelityConfig):
    neighborhood: int = option(3, doc="k of the k-NN manifold estimate.", validator=_positive)
