"""The ``gan`` recipe: alternate a discriminator step and a generator step on every batch."""

from __future__ import annotations

import contextlib
from typing import Any

import ignite.distributed as idist
import torch
import torch.nn.functional as F
from ignite.engine import Engine
from torch import Tensor, nn

from dltoolkit import DltkError, ImageSampler, Run, Trained, make_loader
from dltoolkit_gan.models import GanModel
from dltoolkit_gan.options import GanRecipeConfig


def _place(module: nn.Module, run: Run, channels_last: bool) -> nn.Module:
    module = module.to(run.device)
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    if idist.get_world_size() > 1:
        module = idist.auto_model(module)
    return module


def make_gan_step(
    generator: nn.Module,
    discriminator: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    *,
    latent_dim: int,
    device: torch.device,
    loss: str,
    precision: str,
    channels_last: bool,
    scaler: torch.amp.GradScaler,
) -> Any:
    """One GAN iteration: a discriminator step, then a generator step, on fresh noise.

    Returns a function ``step(real) -> Tensor`` of the detached statistics
    ``[loss_d, loss_g, D(x), D(G(z))]``. The losses are computed on logits.
    """
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype is not None else contextlib.nullcontext
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def step(real: Tensor) -> Tensor:
        real = real.to(device, non_blocking=True, memory_format=memory_format)
        batch = real.shape[0]
        z = torch.randn(batch, latent_dim, device=device)
        with autocast():
            fake = generator(z)
            d_real = discriminator(real).float()
            d_fake = discriminator(fake.detach()).float()
            loss_d = F.binary_cross_entropy_with_logits(
                d_real, torch.ones_like(d_real)
            ) + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
        opt_d.zero_grad(set_to_none=True)
        scaler.scale(loss_d).backward()
        scaler.step(opt_d)

        with autocast():
            d_fake_g = discriminator(fake).float()
            if loss == "non-saturating":
                loss_g = F.binary_cross_entropy_with_logits(d_fake_g, torch.ones_like(d_fake_g))
            else:  # minimise log(1 - D(G(z))) = -BCE(D(G(z)), 0)
                loss_g = -F.binary_cross_entropy_with_logits(d_fake_g, torch.zeros_like(d_fake_g))
        opt_g.zero_grad(set_to_none=True)
        scaler.scale(loss_g).backward()
        scaler.step(opt_g)
        scaler.update()
        return torch.stack(
            [
                loss_d.detach(),
                loss_g.detach(),
                torch.sigmoid(d_real.detach()).mean(),
                torch.sigmoid(d_fake.detach()).mean(),
            ]
        )

    return step


def gan_offers(model: Any, device: torch.device) -> Trained:
    """What a trained GAN offers: its generator (exported, loaded) and a sampler drawing from it."""
    return Trained(
        modules={"generator": model.generator},
        sampler=ImageSampler(model.generator, int(model.latent_dim), device),
    )


def train_gan(config: GanRecipeConfig, *, run: Run) -> None:
    """Train a GAN: each iteration a discriminator step then a generator step (Adam, BCE on logits)."""
    from ignite.utils import manual_seed

    manual_seed(run.recipe_file.seed)
    dataset = run.build_dataset()
    if len(dataset) < config.batch_size:
        raise DltkError(
            f"{run.recipe_file.path}: recipe.batch_size: {config.batch_size} is more than the "
            f"{len(dataset)} training images (the last partial batch is dropped); lower it"
        )
    model: GanModel = run.build_model()
    generator = _place(model.generator, run, config.channels_last)
    discriminator = _place(model.discriminator, run, config.channels_last)
    opt_g = idist.auto_optim(torch.optim.Adam(generator.parameters(), lr=config.lr_g, betas=config.betas_g))
    opt_d = idist.auto_optim(torch.optim.Adam(discriminator.parameters(), lr=config.lr_d, betas=config.betas_d))
    scaler = torch.amp.GradScaler(run.device.type, enabled=config.precision == "fp16")
    step = make_gan_step(
        generator,
        discriminator,
        opt_g,
        opt_d,
        latent_dim=model.latent_dim,
        device=run.device,
        loss=config.loss,
        precision=config.precision,
        channels_last=config.channels_last,
        scaler=scaler,
    )

    trainer = Engine(lambda _engine, batch: step(batch[0]))
    loader = make_loader(
        dataset, config.batch_size, seed=run.recipe_file.seed, engine=trainer, num_workers=config.num_workers
    )
    state: dict[str, Any] = {
        "generator": generator,
        "discriminator": discriminator,
        "optimizer_g": opt_g,
        "optimizer_d": opt_d,
    }
    if scaler.is_enabled():
        state["scaler"] = scaler

    def on_resume() -> None:
        for opt, lr, betas in ((opt_g, config.lr_g, config.betas_g), (opt_d, config.lr_d, config.betas_d)):
            for group in opt.param_groups:  # the recipe file (with its overrides) wins
                group["lr"], group["betas"] = lr, betas

    run.fit(
        trainer,
        loader,
        epochs=config.epochs,
        state=state,
        trained=gan_offers(GanModel(generator, discriminator, model.latent_dim), run.device),
        log_every=config.log_every,
        on_resume=on_resume,
        failure_hint="a lower recipe.lr_d / recipe.lr_g often helps",
    )
