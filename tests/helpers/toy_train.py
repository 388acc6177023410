"""The training code of the ``toy`` recipe (tests/helpers/toy_plugin.py); imports torch."""

from __future__ import annotations

import math
from typing import Any

import attrs
import ignite.distributed as idist
import torch
import torch.nn.functional as F
from ignite.engine import Engine
from torch import Tensor, nn

from dltoolkit import DltkError, Trained
from dltoolkit.data import make_loader, shard_randn
from dltoolkit.sampling import ImageSampler


@attrs.define
class ToyModel:
    generator: nn.Module
    discriminator: nn.Module
    latent_dim: int


class Generator(nn.Module):
    def __init__(self, latent_dim: int, hidden: int, depth: int, image_shape: tuple[int, int, int]):
        super().__init__()
        self.image_shape = image_shape
        layers: list[nn.Module] = []
        size = latent_dim
        for _ in range(depth):
            layers += [nn.Linear(size, hidden), nn.LeakyReLU(0.2)]
            size = hidden
        layers += [nn.Linear(size, math.prod(image_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(z.shape[0], *self.image_shape)


def build_model(config: Any, image_shape: tuple[int, int, int]) -> ToyModel:
    layers: list[nn.Module] = [nn.Flatten()]
    size = math.prod(image_shape)
    for _ in range(config.depth):
        layers += [nn.Linear(size, config.hidden_dim), nn.LeakyReLU(0.2)]
        if config.dropout:
            layers.append(nn.Dropout(config.dropout))
        size = config.hidden_dim
    layers.append(nn.Linear(size, 1))
    generator = Generator(config.latent_dim, config.hidden_dim, config.depth, image_shape)
    return ToyModel(generator, nn.Sequential(*layers), config.latent_dim)


def offers(model: Any, device: Any) -> Trained:
    return Trained(
        modules={"generator": model.generator},
        sampler=ImageSampler(model.generator, int(model.latent_dim), torch.device(device)),
    )


def _losses(kind: str, d_real: Tensor, d_fake: Tensor) -> Tensor:
    if kind == "hinge":
        return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
    return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()


def train(config: Any, *, run: Any) -> None:
    from ignite.utils import manual_seed

    manual_seed(run.recipe_file.seed)
    dataset = run.build_dataset()
    if len(dataset) < config.batch_size:
        raise DltkError(
            f"{run.recipe_file.path}: recipe.batch_size: {config.batch_size} is more than the "
            f"{len(dataset)} training images; lower it"
        )
    model: ToyModel = run.build_model()
    generator = model.generator.to(run.device)
    discriminator = model.discriminator.to(run.device)
    if idist.get_world_size() > 1:
        generator, discriminator = idist.auto_model(generator), idist.auto_model(discriminator)
    opt_g = idist.auto_optim(torch.optim.Adam(generator.parameters(), lr=config.lr_g, betas=config.betas_g))
    opt_d = idist.auto_optim(torch.optim.Adam(discriminator.parameters(), lr=config.lr_d, betas=config.betas_d))
    dtype = torch.bfloat16 if config.precision == "bf16" else None

    def process(engine: Engine, batch: Any) -> dict[str, Tensor]:
        real = batch[0].to(run.device)
        z = shard_randn(real.shape[0], model.latent_dim, device=run.device)
        with torch.autocast(run.device.type, dtype=dtype, enabled=dtype is not None):
            fake = generator(z)
            d_real, d_fake = discriminator(real).float(), discriminator(fake.detach()).float()
            loss_d = _losses(config.loss, d_real, d_fake)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        with torch.autocast(run.device.type, dtype=dtype, enabled=dtype is not None):
            loss_g = F.softplus(-discriminator(fake).float()).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        return {
            "loss_d": loss_d.detach(),
            "loss_g": loss_g.detach(),
            "d_x": torch.sigmoid(d_real.detach()).mean(),
            "d_g_z": torch.sigmoid(d_fake.detach()).mean(),
        }

    trainer = Engine(process)
    loader = make_loader(dataset, config.batch_size, seed=run.recipe_file.seed, engine=trainer)

    def on_resume() -> None:
        for opt, lr, betas in ((opt_g, config.lr_g, config.betas_g), (opt_d, config.lr_d, config.betas_d)):
            for group in opt.param_groups:  # the recipe file (with its overrides) wins
                group["lr"], group["betas"] = lr, betas

    run.fit(
        trainer,
        loader,
        epochs=config.epochs,
        state={"generator": generator, "discriminator": discriminator, "optimizer_g": opt_g, "optimizer_d": opt_d},
        trained=offers(ToyModel(generator, discriminator, model.latent_dim), run.device),
        log_every=config.log_every,
        on_resume=on_resume,
        failure_hint="a lower recipe.lr_d / recipe.lr_g often helps",
    )
