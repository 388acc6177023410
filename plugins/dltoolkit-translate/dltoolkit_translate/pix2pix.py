"""The ``pix2pix`` recipe (Isola et al. 2017): a conditional GAN with an L1 term, on aligned pairs.

One iteration, as the reference's ``Pix2PixModel.optimize_parameters``: ``fake = G(a)``; D steps
on ``(gan(D(a, b), real) + gan(D(a, fake), fake)) / 2``; G steps on ``gan(D(a, fake), real) +
l1_weight * |fake - b|``. The GAN terms are dltoolkit-gan's ``discriminator_loss`` and
``generator_loss`` (on logits); least squares is scaled to the reference's ``MSE(D, 1)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine
from torch import Tensor, nn

from dltoolkit import DataSpec, DltkError, Run, Trained
from dltoolkit.data import make_loader
from dltoolkit_gan import discriminator_loss, generator_loss
from dltoolkit_translate.common import (
    attach_grids,
    fixed_inputs,
    held_out,
    in_eval_mode,
    lr_factor,
    make_predict,
    place,
    set_lr,
    side_by_side,
)
from dltoolkit_translate.models import Pix2PixModel
from dltoolkit_translate.options import Pix2PixConfig


def g_adversarial(loss: str, d_fake: Tensor) -> Tensor:
    """G's adversarial term: dltoolkit-gan's ``generator_loss``, least squares doubled to ``mean((D - 1)^2)``
    as the reference's ``GANLoss('lsgan')``."""
    return generator_loss(loss, d_fake) * (2.0 if loss == "least-squares" else 1.0)


def make_pix2pix_step(
    generator: nn.Module,
    discriminator: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    *,
    config: Pix2PixConfig,
    device: torch.device,
) -> Callable[[Engine, Any], dict[str, Tensor]]:
    """The trainer's step: one D update, then one G update, on a batch ``(a, b, label)``."""

    def step(engine: Engine, batch: Any) -> dict[str, Tensor]:
        lr = config.lr * lr_factor(engine.state.epoch, config.epochs, config.decay_epochs)
        set_lr([opt_g, opt_d], lr)
        a = batch[0].to(device, non_blocking=True)
        b = batch[1].to(device, non_blocking=True)
        fake = generator(a)
        d_real = discriminator(torch.cat([a, b], 1))
        d_fake = discriminator(torch.cat([a, fake.detach()], 1))
        loss_d = 0.5 * discriminator_loss(config.gan_loss, d_real, d_fake)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        for p in discriminator.parameters():
            p.requires_grad_(False)
        loss_gan = g_adversarial(config.gan_loss, discriminator(torch.cat([a, fake], 1)))
        loss_l1 = (fake - b).abs().mean()
        loss_g = loss_gan + config.l1_weight * loss_l1
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        for p in discriminator.parameters():
            p.requires_grad_(True)
        return {
            "loss_d": loss_d.detach(),
            "loss_g_gan": loss_gan.detach(),
            "loss_l1": loss_l1.detach(),
            "lr": torch.tensor(lr, dtype=torch.float64),
        }

    return step


def pix2pix_offers(model: Any, device: torch.device, data: DataSpec | None = None) -> Trained:
    """What a trained pix2pix offers: its generator (exported, loaded), an ``eval_step`` giving held-out
    translations beside their targets and labels, ``dltk predict`` on image files, and a preview."""
    device = torch.device(device)
    generator = model.generator

    def eval_step(batch: Any) -> dict[str, Tensor]:
        a, b, labels = batch[0].to(device), batch[1].to(device), batch[2]
        return {"translated": generator(a).float(), "target": b.float(), "source_label": labels.to(device)}

    return Trained(
        modules={"generator": generator},
        eval_step=eval_step,
        predict=make_predict({"AtoB": (generator, "a")}, device, data, "AtoB"),
    )


def pix2pix_grid(generator: nn.Module, batch: tuple[Tensor, ...], device: torch.device) -> Callable[[], Tensor]:
    """``draw()``: one row per held-out pair, input | translation | target."""
    a, b = batch[0], batch[1]

    def draw() -> Tensor:
        return in_eval_mode([generator], lambda: side_by_side(a.to(device), generator(a.to(device)), b.to(device)))

    return draw


def train_pix2pix(config: Pix2PixConfig, *, run: Run) -> None:
    """Train pix2pix: a U-Net generator and a conditional PatchGAN, GAN + L1 loss, Adam, linear decay."""
    from ignite.utils import manual_seed

    manual_seed(run.recipe_file.seed)
    dataset = run.build_dataset()
    if len(dataset) < config.batch_size:
        raise DltkError(
            f"{run.recipe_file.path}: recipe.batch_size: {config.batch_size} is more than the "
            f"{len(dataset)} training pairs (the last partial batch is dropped); lower it"
        )
    model: Pix2PixModel = run.build_model()
    generator = place(model.generator, run)
    discriminator = place(model.discriminator, run)
    betas = (config.beta1, 0.999)
    opt_g = idist.auto_optim(torch.optim.Adam(generator.parameters(), lr=config.lr, betas=betas))
    opt_d = idist.auto_optim(torch.optim.Adam(discriminator.parameters(), lr=config.lr, betas=betas))
    trainer = Engine(make_pix2pix_step(generator, discriminator, opt_g, opt_d, config=config, device=run.device))
    loader = make_loader(
        dataset, config.batch_size, seed=run.recipe_file.seed, engine=trainer, num_workers=config.num_workers
    )
    preview = fixed_inputs(held_out(run), config.preview_images)
    attach_grids(trainer, run, pix2pix_grid(generator, preview, run.device), config.images_every)
    run.fit(
        trainer,
        loader,
        epochs=config.epochs,
        state={"generator": generator, "discriminator": discriminator, "optimizer_g": opt_g, "optimizer_d": opt_d},
        trained=pix2pix_offers(Pix2PixModel(generator, discriminator), run.device, run.data),
        log_every=config.log_every,
        failure_hint="a lower recipe.lr often helps",
    )
