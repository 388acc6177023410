"""dltoolkit-gan: GAN recipes and models for dltoolkit."""

from dltoolkit_gan.models import DcganConfig, GanModel, MlpGanConfig, dcgan, dcgan_init, mlp_gan
from dltoolkit_gan.recipe import REPORTS, GanRecipeConfig, gan_offers, make_gan_step, train_gan

__all__ = [
    "REPORTS",
    "DcganConfig",
    "GanModel",
    "GanRecipeConfig",
    "MlpGanConfig",
    "dcgan",
    "dcgan_init",
    "gan_offers",
    "make_gan_step",
    "mlp_gan",
    "train_gan",
]
