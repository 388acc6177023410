"""dltoolkit-gan: GAN recipes and models for dltoolkit."""

from dltoolkit_gan.models import DcganConfig, GanModel, MlpGanConfig, dcgan, dcgan_init, mlp_gan
from dltoolkit_gan.recipe import GanRecipeConfig, make_gan_step, train_gan

__all__ = [
    "DcganConfig",
    "GanModel",
    "GanRecipeConfig",
    "MlpGanConfig",
    "dcgan",
    "dcgan_init",
    "make_gan_step",
    "mlp_gan",
    "train_gan",
]
