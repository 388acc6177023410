"""Held-out scores of translations: L1, PSNR and SSIM against aligned targets (Ignite), and, read by a
digits classifier run, label preservation and FID in the classifier's features (through
dltoolkit-vision's ``classifier-fid`` code).

Each reads the ``eval_step`` output of the translation recipes: ``translated``, ``target`` and
``source_label`` (and ``translated_ba``, ``target_ba``, ``source_label_ba`` for CycleGAN's second
direction).
"""

from __future__ import annotations

from typing import Any

import torch
from ignite.exceptions import NotComputableError
from ignite.metrics import PSNR, SSIM, MeanAbsoluteError, Metric
from torch import Tensor

from dltoolkit import DltkError, MetricConfig
from dltoolkit_translate.options import ClassifierMetricConfig, SsimConfig
from dltoolkit_vision import Classifier, frechet_distance, load_classifier


def _pair(output: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    return output["translated"], output["target"]


def _flat(output: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    fake, target = _pair(output)
    return fake.flatten(), target.flatten()


def l1(config: MetricConfig) -> Metric:
    """Held-out L1: mean |translation - target| per pixel, pixels in [-1, 1] (lower is better)."""
    return MeanAbsoluteError(output_transform=_flat)


def psnr(config: MetricConfig) -> Metric:
    """Held-out PSNR of translations against their targets, in dB (Ignite's PSNR; higher is better)."""
    return PSNR(data_range=2.0, output_transform=_pair)


def ssim(config: SsimConfig) -> Metric:
    """Held-out SSIM of translations and their targets (Ignite's SSIM, Gaussian window; higher is better)."""
    return SSIM(data_range=2.0, kernel_size=config.kernel_size, output_transform=_pair)


def fit(classifier: Classifier, images: Tensor) -> Tensor:
    """Images fitted to the classifier's input: averaged over blocks (area) when their sides are
    multiples of the classifier's, which gives an upsampled-by-repetition digit back exactly; else
    classifier-fid's fitting (antialiased bilinear). Channels as classifier-fid converts them."""
    _, height, width = classifier.shape
    if images.shape[2] % height == 0 and images.shape[3] % width == 0 and tuple(images.shape[2:]) != (height, width):
        images = torch.nn.functional.adaptive_avg_pool2d(images.float(), (height, width))
    return classifier.fit(images)


def _where(run: Any, config: Any) -> str:
    for index, table in enumerate(getattr(getattr(run, "recipe_file", None), "metrics", ())):
        if table.config is config:
            return f"metrics.{index}.classifier"
    return "metrics.classifier"


def _classifier(config: ClassifierMetricConfig, run: Any) -> Classifier:
    return load_classifier(config.classifier, _where(run, config), getattr(run, "registry", None))


class LabelPreservation(Metric):
    """The share of translations whose digit the classifier reads as the source image's label
    (items whose label is -1, unknown, are not counted)."""

    def __init__(self, classifier: Classifier, suffix: str = ""):
        self.classifier = classifier
        super().__init__(output_transform=lambda out: (out[f"translated{suffix}"], out[f"source_label{suffix}"]))

    def reset(self) -> None:
        self.correct = 0
        self.count = 0

    def update(self, output: tuple[Tensor, Tensor]) -> None:
        translated, labels = output
        labels = labels.long().view(-1)
        known = labels >= 0
        if not bool(known.any()):
            return
        images = translated[known]
        model = self.classifier.model.to(images.device)
        with torch.no_grad():
            predicted = model(fit(self.classifier, images)).argmax(dim=1)
        self.correct += int((predicted == labels[known].to(predicted.device)).sum())
        self.count += int(known.sum())

    def compute(self) -> float:
        if self.count == 0:
            raise DltkError(
                "label-preservation: the held-out data has no digit labels (use digits-outline or digits-strokes)"
            )
        return self.correct / self.count


class TranslationFid(Metric):
    """FID of the translations against the held-out targets in the classifier's penultimate features."""

    def __init__(self, classifier: Classifier):
        self.classifier = classifier
        super().__init__(output_transform=_pair)

    def reset(self) -> None:
        self.fake: list[Tensor] = []
        self.real: list[Tensor] = []

    def update(self, output: tuple[Tensor, Tensor]) -> None:
        translated, target = output
        self.fake.append(self.classifier.features([fit(self.classifier, translated)], translated.device))
        self.real.append(self.classifier.features([fit(self.classifier, target)], target.device))

    def compute(self) -> float:
        fake, real = torch.cat(self.fake) if self.fake else None, torch.cat(self.real) if self.real else None
        if fake is None or real is None or len(fake) < 2:
            raise NotComputableError("translation-fid needs at least 2 held-out images")
        return frechet_distance(fake, real)


def label_preservation(config: ClassifierMetricConfig, run: Any = None) -> Metric:
    """Share of held-out a -> b translations a digits classifier run reads as the source's digit (higher is better)."""
    return LabelPreservation(_classifier(config, run))


def label_preservation_ba(config: ClassifierMetricConfig, run: Any = None) -> Metric:
    """The same for CycleGAN's b -> a translations (higher is better)."""
    return LabelPreservation(_classifier(config, run), suffix="_ba")


def translation_fid(config: ClassifierMetricConfig, run: Any = None) -> Metric:
    """FID of held-out translations to their targets in a classifier run's penultimate features (lower is better)."""
    return TranslationFid(_classifier(config, run))
