"""The options of the translation recipes, models, datasets and metrics, and the scalars they report.

Plain data (attrs and dltoolkit only, no torch), so that registering the plugin stays light. The
defaults are the papers' (pix2pix: Isola et al. 2017; CycleGAN: Zhu et al. 2017) as set in their
reference code, junyanz/pytorch-CycleGAN-and-pix2pix.
"""

from __future__ import annotations

import attrs

from dltoolkit import MetricConfig, Scalar, option

_positive = attrs.validators.ge(1)
_non_negative = attrs.validators.ge(0.0)
GAN_LOSSES = ("non-saturating", "least-squares", "hinge")
"""The GAN objectives of ``recipe.gan_loss``, computed by dltoolkit-gan's ``discriminator_loss`` and
``generator_loss``: 'non-saturating' is pix2pix's vanilla GAN (BCE on logits), 'least-squares' is
LSGAN (CycleGAN's)."""
DIRECTIONS = ("AtoB", "BtoA")
NORMS = ("batch", "instance")
GENERATORS = ("unet", "resnet")
SPLITS = ("train", "test")


@attrs.frozen
class Pix2PixConfig:
    """Options of the ``pix2pix`` recipe (Isola et al. 2017)."""

    epochs: int = option(
        200,
        doc="Passes over the training pairs (the paper: 100 at a constant rate + 100 decaying).",
        validator=_positive,
    )
    decay_epochs: int = option(
        100,
        doc="The last this many epochs (at most all of them) decay the learning rate linearly towards 0 (the "
        "reference's n_epochs_decay); the epochs before run at recipe.lr.",
        validator=attrs.validators.ge(0),
    )
    batch_size: int = option(1, doc="Pairs per step (the paper: 1).", validator=_positive)
    lr: float = option(2e-4, doc="Adam learning rate of G and D.", validator=attrs.validators.gt(0))
    beta1: float = option(0.5, doc="Adam beta1 (beta2 is 0.999).", validator=[_non_negative, attrs.validators.lt(1.0)])
    l1_weight: float = option(100.0, doc="Weight of the L1 term of G's loss (lambda_L1).", validator=_non_negative)
    gan_loss: str = option(
        "non-saturating",
        doc="GAN objective (dltoolkit-gan's losses): 'non-saturating' (the paper's vanilla GAN, BCE on logits), "
        "'least-squares' (LSGAN) or 'hinge'.",
        validator=attrs.validators.in_(GAN_LOSSES),
    )
    images_every: int = option(
        1,
        doc="Write samples/translations_<iteration>.png (held-out inputs | translations | targets) every this "
        "many epochs and at the end.",
        validator=_positive,
        resumable=True,
    )
    preview_images: int = option(8, doc="Held-out pairs in each grid.", validator=_positive)
    log_every: int = option(
        50, doc="Log the step scalars every this many iterations.", validator=_positive, resumable=True
    )
    num_workers: int = option(0, doc="Data-loading worker processes.", validator=attrs.validators.ge(0))


@attrs.frozen
class CycleGanConfig:
    """Options of the ``cyclegan`` recipe (Zhu et al. 2017)."""

    epochs: int = option(
        200,
        doc="Passes over the training domains (the paper: 100 at a constant rate + 100 decaying).",
        validator=_positive,
    )
    decay_epochs: int = option(
        100,
        doc="The last this many epochs (at most all of them) decay the learning rate linearly towards 0 (the "
        "reference's n_epochs_decay).",
        validator=attrs.validators.ge(0),
    )
    batch_size: int = option(1, doc="Images of each domain per step (the paper: 1).", validator=_positive)
    lr: float = option(
        2e-4, doc="Adam learning rate of both generators and both discriminators.", validator=attrs.validators.gt(0)
    )
    beta1: float = option(0.5, doc="Adam beta1 (beta2 is 0.999).", validator=[_non_negative, attrs.validators.lt(1.0)])
    cycle_weight: float = option(
        10.0, doc="Weight of each cycle-consistency L1 term (lambda_A = lambda_B).", validator=_non_negative
    )
    identity_weight: float = option(
        0.5,
        doc="Weight of the identity terms |G_AB(b) - b| and |G_BA(a) - a|, relative to recipe.cycle_weight "
        "(the reference's lambda_identity; 0 turns them off).",
        validator=_non_negative,
    )
    pool_size: int = option(
        50,
        doc="Generated images kept for the discriminators (Shrivastava et al. 2017): half of the time D sees an "
        "older one; 0 turns the pool off.",
        validator=attrs.validators.ge(0),
    )
    gan_loss: str = option(
        "least-squares",
        doc="GAN objective (dltoolkit-gan's losses): 'least-squares' (LSGAN, the paper's), 'non-saturating' "
        "or 'hinge'.",
        validator=attrs.validators.in_(GAN_LOSSES),
    )
    images_every: int = option(
        1,
        doc="Write samples/translations_<iteration>.png (both directions and the reconstructions) every this many "
        "epochs and at the end.",
        validator=_positive,
        resumable=True,
    )
    preview_images: int = option(8, doc="Held-out images of each domain in each grid.", validator=_positive)
    log_every: int = option(
        50, doc="Log the step scalars every this many iterations.", validator=_positive, resumable=True
    )
    num_workers: int = option(0, doc="Data-loading worker processes.", validator=attrs.validators.ge(0))


@attrs.frozen
class Pix2PixModelConfig:
    """Options of the ``pix2pix-gan`` model: a generator and a conditional PatchGAN discriminator."""

    generator: str = option(
        "unet",
        doc="'unet' (skip connections between mirrored layers, down to 1x1: images of 16 to 256 pixels, a power "
        "of two) or 'resnet' (two downsamplings, residual blocks, two upsamplings: sides divisible by 4).",
        validator=attrs.validators.in_(GENERATORS),
    )
    blocks: int = option(
        9, doc="Residual blocks of the 'resnet' generator (6 or 9 in the papers).", validator=_positive
    )
    ngf: int = option(64, doc="Filters of the generator's first layer.", validator=_positive)
    ndf: int = option(64, doc="Filters of the discriminator's first layer.", validator=_positive)
    d_layers: int = option(
        3, doc="Strided layers of the PatchGAN discriminator (3: the 70x70 patch).", validator=_positive
    )
    norm: str = option("batch", doc="'batch' or 'instance' normalisation.", validator=attrs.validators.in_(NORMS))
    dropout: bool = option(True, doc="Dropout 0.5 in the generator (U-Net: the inner 512-filter decoder layers).")


@attrs.frozen
class CycleGanModelConfig:
    """Options of the ``cycle-gan`` model: two generators and two PatchGAN discriminators."""

    generator: str = option(
        "resnet",
        doc="'resnet' (two downsamplings, residual blocks, two upsamplings: sides divisible by 4) or 'unet' "
        "(images of 16 to 256 pixels, a power of two).",
        validator=attrs.validators.in_(GENERATORS),
    )
    blocks: int = option(
        9, doc="Residual blocks of the 'resnet' generators (6 or 9 in the paper).", validator=_positive
    )
    ngf: int = option(64, doc="Filters of each generator's first layer.", validator=_positive)
    ndf: int = option(64, doc="Filters of each discriminator's first layer.", validator=_positive)
    d_layers: int = option(
        3, doc="Strided layers of each PatchGAN discriminator (3: the 70x70 patch).", validator=_positive
    )
    norm: str = option("instance", doc="'batch' or 'instance' normalisation.", validator=attrs.validators.in_(NORMS))
    dropout: bool = option(False, doc="Dropout 0.5 in the generators (off in the paper).")


# --- datasets ----------------------------------------------------------------------------------


@attrs.frozen
class PairedFolderConfig:
    """Options of ``paired-folder``."""

    root: str = option(
        doc="A folder with train/ and test/ (val/ is read when test/ is missing): each holds A|B images side "
        "by side (facades, maps, edges2shoes), or A/ and B/ folders of files with the same names."
    )
    direction: str = option(
        "AtoB",
        doc="'AtoB' translates the left (A) side into the right (B); 'BtoA' the other way.",
        validator=attrs.validators.in_(DIRECTIONS),
    )
    load_size: int = option(286, doc="Both sides are resized to this square size for training...", validator=_positive)
    crop_size: int = option(
        256,
        doc="...then cropped at one random place (the same for both sides) to this size; held-out pairs are "
        "resized to it.",
        validator=_positive,
    )
    flip: bool = option(True, doc="Flip both sides of a training pair left-right together, half of the time.")
    channels: int = option(3, doc="1 (grey) or 3 (RGB) channels for each side.", validator=attrs.validators.in_((1, 3)))


@attrs.frozen
class UnpairedFolderConfig:
    """Options of ``unpaired-folder``."""

    root: str = option(doc="A folder with trainA/, trainB/, testA/ and testB/ image folders (horse2zebra's layout).")
    direction: str = option(
        "AtoB",
        doc="'AtoB': A is the first domain; 'BtoA' swaps the domains.",
        validator=attrs.validators.in_(DIRECTIONS),
    )
    load_size: int = option(286, doc="Images are resized to this square size for training...", validator=_positive)
    crop_size: int = option(
        256,
        doc="...then cropped at a random place to this size; held-out images are resized to it.",
        validator=_positive,
    )
    flip: bool = option(True, doc="Flip training images left-right half of the time.")
    channels: int = option(3, doc="1 (grey) or 3 (RGB) channels.", validator=attrs.validators.in_((1, 3)))


@attrs.frozen
class DigitsOutlineConfig:
    """Options of ``digits-outline``."""

    image_size: int = option(
        16,
        doc="Side of the images (the 8x8 digits are upsampled, bilinear): 16, 32 or 64.",
        validator=attrs.validators.in_((16, 32, 64)),
    )
    direction: str = option(
        "AtoB", doc="'AtoB': outline -> digit; 'BtoA': digit -> outline.", validator=attrs.validators.in_(DIRECTIONS)
    )


@attrs.frozen
class DigitsStrokesConfig:
    """Options of ``digits-strokes``."""

    image_size: int = option(
        16,
        doc="Side of the images (the 8x8 digits are upsampled, bilinear): 16, 32 or 64.",
        validator=attrs.validators.in_((16, 32, 64)),
    )
    direction: str = option(
        "AtoB", doc="'AtoB': thin -> thick strokes; 'BtoA': thick -> thin.", validator=attrs.validators.in_(DIRECTIONS)
    )


# --- metrics -----------------------------------------------------------------------------------


@attrs.frozen
class ClassifierMetricConfig(MetricConfig):
    """Options of ``label-preservation`` and ``translation-fid``: the core's, plus the classifier."""

    classifier: str = option(
        doc="A run directory of the classify recipe (its best checkpoint, else its newest), one of its checkpoint "
        "files: the digits classifier that reads the translations (as classifier-fid takes one)."
    )


@attrs.frozen
class SsimConfig(MetricConfig):
    """Options of ``ssim``: the core's, plus the Gaussian window."""

    kernel_size: int = option(
        11,
        doc="Side of SSIM's Gaussian window (odd; at most the image side).",
        validator=attrs.validators.ge(3),
    )


# --- scalars -----------------------------------------------------------------------------------

PIX2PIX_REPORTS = (
    Scalar(
        "loss_d", "The discriminator's loss: (real pairs as real + translated pairs as fake) / 2.", "none", group="D"
    ),
    Scalar("loss_g_gan", "The generator's adversarial loss on its translated pairs.", "none", group="G"),
    Scalar("loss_l1", "Mean |G(a) - b| per pixel on the training pairs (before the l1_weight).", "lower", group="L1"),
    Scalar("lr", "The learning rate in effect (constant, then decaying linearly).", "none", group="lr"),
)
CYCLEGAN_REPORTS = (
    Scalar("loss_d_a", "D_A's loss (real A against translated b -> a, from the pool) / 2.", "none", group="D"),
    Scalar("loss_d_b", "D_B's loss (real B against translated a -> b, from the pool) / 2.", "none", group="D"),
    Scalar("loss_g", "Both generators' total loss: adversarial + cycle + identity terms.", "lower", group="G"),
    Scalar("loss_gan_ab", "G_AB's adversarial loss (D_B on a -> b).", "none", group="G adversarial"),
    Scalar("loss_gan_ba", "G_BA's adversarial loss (D_A on b -> a).", "none", group="G adversarial"),
    Scalar("loss_cycle_a", "Mean |G_BA(G_AB(a)) - a| per pixel.", "lower", group="cycle"),
    Scalar("loss_cycle_b", "Mean |G_AB(G_BA(b)) - b| per pixel.", "lower", group="cycle"),
    Scalar("loss_idt_a", "Mean |G_BA(a) - a| per pixel (identity).", "none", group="identity"),
    Scalar("loss_idt_b", "Mean |G_AB(b) - b| per pixel (identity).", "none", group="identity"),
    Scalar("lr", "The learning rate in effect (constant, then decaying linearly).", "none", group="lr"),
)
L1 = Scalar("l1", "Mean |translation - target| per pixel on held-out pairs, pixels in [-1, 1].", "lower")
PSNR = Scalar("psnr", "Peak signal-to-noise ratio of held-out translations against their targets, in dB.", "higher")
SSIM = Scalar("ssim", "Structural similarity of held-out translations and their targets (1: identical).", "higher")
LABEL_PRESERVATION = Scalar(
    "label-preservation",
    "Share of held-out a -> b translations that a digits classifier reads as the source image's digit.",
    "higher",
    bounds=(0.0, 1.0),
)
LABEL_PRESERVATION_BA = Scalar(
    "label-preservation-ba",
    "Share of held-out b -> a translations (CycleGAN's second direction) a digits classifier reads as the "
    "source's digit.",
    "higher",
    bounds=(0.0, 1.0),
)
TRANSLATION_FID = Scalar(
    "translation-fid",
    "Frechet distance of held-out a -> b translations to the held-out targets, in a classifier's penultimate features.",
    "lower",
)
