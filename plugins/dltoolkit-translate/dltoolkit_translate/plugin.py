"""The dltoolkit-translate plugin: the ``pix2pix`` and ``cyclegan`` recipes, the ``pix2pix-gan`` and
``cycle-gan`` models, the ``paired-folder``, ``unpaired-folder``, ``digits-outline`` and
``digits-strokes`` datasets, and the held-out metrics ``l1``, ``psnr``, ``ssim``,
``label-preservation``, ``label-preservation-ba`` and ``translation-fid``.

Registration is light: this module holds names, options and docs, and names each factory by its
``"module:attr"`` string, imported when a run builds it; so ``dltk list``, ``plugins`` and
``check`` never load torch or Ignite.

Tags: a dataset of aligned pairs provides ``"image-pairs"``, one of two domains ``"image-domains"``;
the models provide ``"pix2pix"`` and ``"cyclegan"``. Both recipes provide ``"translation"`` (their
``eval_step`` gives ``translated``, ``target``, ``source_label``); pix2pix also
``"paired-translation"`` (the targets are aligned, so L1, PSNR and SSIM mean something) and
CycleGAN ``"two-way-translation"`` (``translated_ba``, ``target_ba``, ``source_label_ba``).
"""

from __future__ import annotations

from dltoolkit import Component, MetricConfig, hookimpl
from dltoolkit_translate.options import (
    CYCLEGAN_REPORTS,
    L1,
    LABEL_PRESERVATION,
    LABEL_PRESERVATION_BA,
    PIX2PIX_REPORTS,
    PSNR,
    SSIM,
    TRANSLATION_FID,
    ClassifierMetricConfig,
    CycleGanConfig,
    CycleGanModelConfig,
    DigitsOutlineConfig,
    DigitsStrokesConfig,
    PairedFolderConfig,
    Pix2PixConfig,
    Pix2PixModelConfig,
    SsimConfig,
    UnpairedFolderConfig,
)

PAIRS, DOMAINS = "image-pairs", "image-domains"
OFFERS = ("evaluate", "predict", "export", "translation")


@hookimpl
def dltk_register_recipes() -> list[Component]:
    return [
        Component(
            "pix2pix",
            "dltoolkit_translate.pix2pix:train_pix2pix",
            Pix2PixConfig,
            summary="Train pix2pix (Isola et al. 2017): a conditional GAN + L1 on aligned image pairs, Adam, linear "
            "decay.",
            requires=("model", "dataset"),
            needs={"model": "pix2pix", "dataset": PAIRS},
            provides=(*OFFERS, "paired-translation"),
            reports=PIX2PIX_REPORTS,
            offers="dltoolkit_translate.pix2pix:pix2pix_offers",
        ),
        Component(
            "cyclegan",
            "dltoolkit_translate.cyclegan:train_cyclegan",
            CycleGanConfig,
            summary="Train CycleGAN (Zhu et al. 2017): two generators, two PatchGANs, LSGAN + cycle + identity "
            "losses, an image pool.",
            requires=("model", "dataset"),
            needs={"model": "cyclegan", "dataset": DOMAINS},
            provides=(*OFFERS, "two-way-translation"),
            reports=CYCLEGAN_REPORTS,
            offers="dltoolkit_translate.cyclegan:cyclegan_offers",
        ),
    ]


@hookimpl
def dltk_register_models() -> list[Component]:
    return [
        Component(
            "pix2pix-gan",
            "dltoolkit_translate.models:pix2pix_gan",
            Pix2PixModelConfig,
            summary="pix2pix's networks: a U-Net (16-256 px) or ResNet generator and a conditional PatchGAN "
            "discriminator.",
            provides="pix2pix",
            needs={"dataset": PAIRS},
        ),
        Component(
            "cycle-gan",
            "dltoolkit_translate.models:cycle_gan",
            CycleGanModelConfig,
            summary="CycleGAN's networks: two ResNet (6/9 blocks) or U-Net generators and two PatchGAN discriminators.",
            provides="cyclegan",
            needs={"dataset": DOMAINS},
        ),
    ]


@hookimpl
def dltk_register_datasets() -> list[Component]:
    return [
        Component(
            "paired-folder",
            "dltoolkit_translate.data:paired_folder",
            PairedFolderConfig,
            summary="Aligned image pairs from a folder: A|B side by side (facades, maps) or A/ and B/ folders with "
            "the same names.",
            provides=PAIRS,
        ),
        Component(
            "unpaired-folder",
            "dltoolkit_translate.data:unpaired_folder",
            UnpairedFolderConfig,
            summary="Two unaligned image domains: trainA/, trainB/, testA/, testB/ folders (horse2zebra's layout).",
            provides=DOMAINS,
        ),
        Component(
            "digits-outline",
            "dltoolkit_translate.data:digits_outline",
            DigitsOutlineConfig,
            summary="scikit-learn's digits as pairs: the outline of each digit (A) and the digit (B), 16-64 px, "
            "labelled.",
            provides=PAIRS,
        ),
        Component(
            "digits-strokes",
            "dltoolkit_translate.data:digits_strokes",
            DigitsStrokesConfig,
            summary="scikit-learn's digits as two unpaired domains: thin strokes (A) and thick strokes (B), "
            "disjoint training digits.",
            provides=DOMAINS,
        ),
    ]


@hookimpl
def dltk_register_metrics() -> list[Component]:
    paired = {"recipe": ("evaluate", "paired-translation")}
    any_way = {"recipe": ("evaluate", "translation")}
    return [
        Component(
            "l1",
            "dltoolkit_translate.metrics:l1",
            MetricConfig,
            summary="Held-out L1: mean |translation - target| per pixel, pixels in [-1, 1] (lower is better).",
            needs=paired,
            reports=[L1],
        ),
        Component(
            "psnr",
            "dltoolkit_translate.metrics:psnr",
            MetricConfig,
            summary="Held-out PSNR of translations against their targets, in dB (Ignite's PSNR; higher is better).",
            needs=paired,
            reports=[PSNR],
        ),
        Component(
            "ssim",
            "dltoolkit_translate.metrics:ssim",
            SsimConfig,
            summary="Held-out SSIM of translations and their targets (Ignite's SSIM; higher is better).",
            needs=paired,
            reports=[SSIM],
        ),
        Component(
            "label-preservation",
            "dltoolkit_translate.metrics:label_preservation",
            ClassifierMetricConfig,
            summary="Share of held-out a -> b translations a digits classifier run reads as the source's digit.",
            needs=any_way,
            reports=[LABEL_PRESERVATION],
        ),
        Component(
            "label-preservation-ba",
            "dltoolkit_translate.metrics:label_preservation_ba",
            ClassifierMetricConfig,
            summary="The same for CycleGAN's b -> a translations.",
            needs={"recipe": ("evaluate", "two-way-translation")},
            reports=[LABEL_PRESERVATION_BA],
        ),
        Component(
            "translation-fid",
            "dltoolkit_translate.metrics:translation_fid",
            ClassifierMetricConfig,
            summary="FID of held-out translations to the targets in a classifier run's penultimate features "
            "(classifier-fid's code).",
            needs=any_way,
            reports=[TRANSLATION_FID],
        ),
    ]
