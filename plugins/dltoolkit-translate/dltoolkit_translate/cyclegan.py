"""The ``cyclegan`` recipe (Zhu et al. 2017): two generators and two discriminators on unpaired domains.

One iteration, as the reference's ``CycleGANModel.optimize_parameters``: both generators step
together on ``gan(D_B(G_AB(a))) + gan(D_A(G_BA(b))) + cycle_weight * (|G_BA(G_AB(a)) - a| +
|G_AB(G_BA(b)) - b|) + identity_weight * cycle_weight * (|G_AB(b) - b| + |G_BA(a) - a|)``, the
discriminators held fixed; then each discriminator steps on ``(gan(D(real), real) + gan(D(fake),
fake)) / 2``, its fakes drawn through an image pool. The GAN terms are dltoolkit-gan's losses.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine
from torch import Tensor, nn

from dltoolkit import DataSpec, DltkError, Run, Trained
from dltoolkit.data import make_loader
from dltoolkit_gan import discriminator_loss
from dltoolkit_translate.common import (
    ImagePool,
    attach_grids,
    fixed_inputs,
    held_out,
    in_eval_mode,
    lr_factor,
    make_predict,
    move_pools_to,
    place,
    set_lr,
    side_by_side,
)
from dltoolkit_translate.models import CycleGanModel
from dltoolkit_translate.options import CycleGanConfig
from dltoolkit_translate.pix2pix import g_adversarial


def make_cyclegan_step(
    nets: CycleGanModel,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    pools: tuple[ImagePool, ImagePool],
    *,
    config: CycleGanConfig,
    device: torch.device,
) -> Callable[[Engine, Any], dict[str, Tensor]]:
    """The trainer's step on a batch ``(a, b, label_a, label_b)``: both generators, then both discriminators."""
    g_ab, g_ba, d_a, d_b = nets.generator_ab, nets.generator_ba, nets.discriminator_a, nets.discriminator_b
    pool_a, pool_b = pools
    loss = config.gan_loss
    cycle, identity = config.cycle_weight, config.identity_weight * config.cycle_weight

    def step(engine: Engine, batch: Any) -> dict[str, Tensor]:
        lr = config.lr * lr_factor(engine.state.epoch, config.epochs, config.decay_epochs)
        set_lr([opt_g, opt_d], lr)
        a = batch[0].to(device, non_blocking=True)
        b = batch[1].to(device, non_blocking=True)
        fake_b, fake_a = g_ab(a), g_ba(b)
        rec_a, rec_b = g_ba(fake_b), g_ab(fake_a)

        for p in itertools.chain(d_a.parameters(), d_b.parameters()):
            p.requires_grad_(False)
        zero = torch.zeros((), device=device)
        idt_a = (g_ba(a) - a).abs().mean() if identity > 0 else zero
        idt_b = (g_ab(b) - b).abs().mean() if identity > 0 else zero
        gan_ab = g_adversarial(loss, d_b(fake_b))
        gan_ba = g_adversarial(loss, d_a(fake_a))
        cycle_a, cycle_b = (rec_a - a).abs().mean(), (rec_b - b).abs().mean()
        loss_g = gan_ab + gan_ba + cycle * (cycle_a + cycle_b) + identity * (idt_a + idt_b)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        for p in itertools.chain(d_a.parameters(), d_b.parameters()):
            p.requires_grad_(True)

        old_b, old_a = pool_b.query(fake_b), pool_a.query(fake_a)
        loss_d_b = 0.5 * discriminator_loss(loss, d_b(b), d_b(old_b.detach()))
        loss_d_a = 0.5 * discriminator_loss(loss, d_a(a), d_a(old_a.detach()))
        opt_d.zero_grad(set_to_none=True)
        (loss_d_a + loss_d_b).backward()
        opt_d.step()
        return {
            "loss_d_a": loss_d_a.detach(),
            "loss_d_b": loss_d_b.detach(),
            "loss_g": loss_g.detach(),
            "loss_gan_ab": gan_ab.detach(),
            "loss_gan_ba": gan_ba.detach(),
            "loss_cycle_a": cycle_a.detach(),
            "loss_cycle_b": cycle_b.detach(),
            "loss_idt_a": idt_a.detach(),
            "loss_idt_b": idt_b.detach(),
            "lr": torch.tensor(lr, dtype=torch.float64),
        }

    return step


def cyclegan_offers(model: Any, device: torch.device, data: DataSpec | None = None) -> Trained:
    """What a trained CycleGAN offers: both generators (exported, loaded), an ``eval_step`` giving the
    held-out translations of both directions with their source labels, and ``dltk predict``
    (``--direction AtoB`` or ``BtoA``)."""
    device = torch.device(device)
    g_ab, g_ba = model.generator_ab, model.generator_ba

    def eval_step(batch: Any) -> dict[str, Tensor]:
        a, b = batch[0].to(device), batch[1].to(device)
        return {
            "translated": g_ab(a).float(),
            "target": b.float(),
            "source_label": batch[2].to(device),
            "translated_ba": g_ba(b).float(),
            "target_ba": a.float(),
            "source_label_ba": batch[3].to(device),
        }

    return Trained(
        modules={"generator_ab": g_ab, "generator_ba": g_ba},
        eval_step=eval_step,
        predict=make_predict({"AtoB": (g_ab, "a"), "BtoA": (g_ba, "b")}, device, data, "AtoB"),
    )


def cyclegan_grid(g_ab: nn.Module, g_ba: nn.Module, batch: tuple[Tensor, ...], device: torch.device) -> Callable:
    """``draw()``: one row per held-out pair of images, a | G_AB(a) | G_BA(G_AB(a)) | b | G_BA(b) | G_AB(G_BA(b))."""
    a, b = batch[0].to(device), batch[1].to(device)

    def draw() -> Tensor:
        def row() -> Tensor:
            fake_b, fake_a = g_ab(a), g_ba(b)
            return side_by_side(a, fake_b, g_ba(fake_b), b, fake_a, g_ab(fake_a))

        return in_eval_mode([g_ab, g_ba], row)

    return draw


def train_cyclegan(config: CycleGanConfig, *, run: Run) -> None:
    """Train CycleGAN: two generators, two PatchGANs, LSGAN + cycle + identity losses, an image pool, Adam."""
    from ignite.utils import manual_seed

    manual_seed(run.recipe_file.seed)
    dataset = run.build_dataset()
    if len(dataset) < config.batch_size:
        raise DltkError(
            f"{run.recipe_file.path}: recipe.batch_size: {config.batch_size} is more than the "
            f"{len(dataset)} training images (the last partial batch is dropped); lower it"
        )
    model: CycleGanModel = run.build_model()
    nets = CycleGanModel(*(place(net, run) for net in attrs_values(model)))
    betas = (config.beta1, 0.999)
    generators = itertools.chain(nets.generator_ab.parameters(), nets.generator_ba.parameters())
    discriminators = itertools.chain(nets.discriminator_a.parameters(), nets.discriminator_b.parameters())
    opt_g = idist.auto_optim(torch.optim.Adam(generators, lr=config.lr, betas=betas))
    opt_d = idist.auto_optim(torch.optim.Adam(discriminators, lr=config.lr, betas=betas))
    pools = (ImagePool(config.pool_size), ImagePool(config.pool_size))
    trainer = Engine(make_cyclegan_step(nets, opt_g, opt_d, pools, config=config, device=run.device))
    loader = make_loader(
        dataset, config.batch_size, seed=run.recipe_file.seed, engine=trainer, num_workers=config.num_workers
    )
    preview = fixed_inputs(held_out(run), config.preview_images)
    attach_grids(
        trainer, run, cyclegan_grid(nets.generator_ab, nets.generator_ba, preview, run.device), config.images_every
    )
    run.fit(
        trainer,
        loader,
        epochs=config.epochs,
        state={
            "generator_ab": nets.generator_ab,
            "generator_ba": nets.generator_ba,
            "discriminator_a": nets.discriminator_a,
            "discriminator_b": nets.discriminator_b,
            "optimizer_g": opt_g,
            "optimizer_d": opt_d,
            "pool_a": pools[0],
            "pool_b": pools[1],
        },
        trained=cyclegan_offers(nets, run.device, run.data),
        log_every=config.log_every,
        on_resume=lambda: move_pools_to(list(pools), run.device),
        failure_hint="a lower recipe.lr often helps",
    )


def attrs_values(model: CycleGanModel) -> list[nn.Module]:
    return [model.generator_ab, model.generator_ba, model.discriminator_a, model.discriminator_b]
