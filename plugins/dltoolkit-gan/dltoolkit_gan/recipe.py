"""The ``gan`` recipe: alternate a discriminator step and a generator step on every batch."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import attrs
import ignite.distributed as idist
import torch
import torch.nn.functional as F
from ignite.engine import Engine, Events
from torch import Tensor, nn

from dltoolkit import DltkError, ImageSampler, Run, RunFailed, __version__, make_loader, option
from dltoolkit_gan.models import GanModel

STAT_NAMES = ("loss_d", "loss_g", "d_x", "d_g_z")


@attrs.frozen
class GanRecipeConfig:
    epochs: int = option(25, doc="Passes over the training data.", validator=attrs.validators.ge(1))
    batch_size: int = option(
        128, doc="Images per step (the last partial batch is dropped).", validator=attrs.validators.ge(1)
    )
    lr_g: float = option(2e-4, doc="Adam learning rate of the generator.", validator=attrs.validators.gt(0))
    lr_d: float = option(2e-4, doc="Adam learning rate of the discriminator.", validator=attrs.validators.gt(0))
    betas_g: tuple[float, float] = option((0.5, 0.999), doc="Adam betas of the generator.")
    betas_d: tuple[float, float] = option((0.5, 0.999), doc="Adam betas of the discriminator.")
    loss: str = option(
        "non-saturating",
        doc="'non-saturating' (G maximises log D(G(z)), the practical objective) or 'minimax' "
        "(G minimises log(1 - D(G(z))), Goodfellow's original saturating objective).",
        validator=attrs.validators.in_(("non-saturating", "minimax")),
    )
    precision: str = option(
        "fp32",
        doc="'fp32', 'bf16' or 'fp16' (autocast; fp16 adds a GradScaler).",
        validator=attrs.validators.in_(("fp32", "bf16", "fp16")),
    )
    channels_last: bool = option(False, doc="Use channels-last memory format for conv models and images.")
    log_every: int = option(
        50, doc="Log mean losses to metrics.jsonl every this many iterations.", validator=attrs.validators.ge(1)
    )
    num_workers: int = option(
        0, doc="DataLoader worker processes (for image-folder data).", validator=attrs.validators.ge(0)
    )

    @betas_g.validator
    @betas_d.validator
    def _betas(self, attribute: Any, value: tuple[float, float]) -> None:
        if not all(0.0 <= b < 1.0 for b in value):
            raise ValueError(f"each beta must be in [0, 1), got {list(value)}")


class EpochStats:
    """Running sums of the step statistics, kept on the device (no sync per step) and checkpointed.

    One in-place add per iteration; the logging window is the difference from a mark.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.reset_epoch()

    def reset_epoch(self) -> None:
        self.epoch_sum = torch.zeros(len(STAT_NAMES), dtype=torch.float64, device=self.device)
        self.epoch_count = 0
        self.mark_window()

    def mark_window(self) -> None:
        self.mark_sum = self.epoch_sum.clone()
        self.mark_count = self.epoch_count

    def add(self, values: Tensor) -> None:
        self.epoch_sum.add_(values)
        self.epoch_count += 1

    @staticmethod
    def _means(total: Tensor, count: int) -> dict[str, float]:
        return dict(zip(STAT_NAMES, (total / max(count, 1)).tolist(), strict=True))

    def epoch_means(self) -> dict[str, float]:
        return self._means(self.epoch_sum, self.epoch_count)

    def window_means(self) -> dict[str, float]:
        return self._means(self.epoch_sum - self.mark_sum, self.epoch_count - self.mark_count)

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch_sum": self.epoch_sum.cpu(),
            "epoch_count": self.epoch_count,
            "mark_sum": self.mark_sum.cpu(),
            "mark_count": self.mark_count,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch_sum = state["epoch_sum"].to(self.device)
        self.mark_sum = state["mark_sum"].to(self.device)
        self.epoch_count = int(state["epoch_count"])
        self.mark_count = int(state["mark_count"])


def _absolute_root(options: dict[str, Any]) -> dict[str, Any]:
    """Dataset options with ``root`` made absolute, so ``dltk eval`` finds the data from anywhere."""
    if isinstance(options.get("root"), str):
        return {**options, "root": str(Path(options["root"]).resolve())}
    return options


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


def train_gan(config: GanRecipeConfig, *, run: Run) -> None:
    """Train a GAN: each iteration a discriminator step then a generator step (Adam, BCE on logits)."""
    from ignite.utils import manual_seed

    manual_seed(run.recipe_file.seed)
    dataset = run.build("dataset")
    if len(dataset) < config.batch_size:
        raise DltkError(
            f"{run.recipe_file.path}: recipe.batch_size: {config.batch_size} is more than the "
            f"{len(dataset)} training images (the last partial batch is dropped); lower it"
        )
    image_shape = tuple(dataset.image_shape)
    model: GanModel = run.build("model", image_shape=image_shape)
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
    stats = EpochStats(run.device)

    def process(engine: Engine, batch: Any) -> Tensor:
        values = step(batch[0])
        if not bool(torch.isfinite(values).all()):
            bad = [
                f"{n} = {v:g}"
                for n, v in zip(STAT_NAMES, values.tolist(), strict=True)
                if not torch.isfinite(torch.tensor(v))
            ]
            raise RunFailed(
                f"{run.path}: non-finite loss at iteration {engine.state.iteration} "
                f"(epoch {engine.state.epoch}): {', '.join(bad)}; no checkpoint was written with it. "
                f"Resume from the last good checkpoint with: dltk run --resume {run.path} "
                "(a lower recipe.lr_d / recipe.lr_g often helps)"
            )
        stats.add(values)
        return values

    trainer = Engine(process)
    loader = make_loader(
        dataset, config.batch_size, seed=run.recipe_file.seed, engine=trainer, num_workers=config.num_workers
    )

    run.train_dataset = dataset
    run.sampler = ImageSampler(generator, model.latent_dim, run.device)
    model_table, dataset_table = run.table("model"), run.table("dataset")
    run.metadata.data.update(
        {
            "format": 1,
            "dltoolkit_version": __version__,
            "recipe": "gan",
            "model": model_table.name,
            "model_options": json.dumps(model_table.options()),
            "image_shape": list(image_shape),
            "latent_dim": model.latent_dim,
            "seed": run.recipe_file.seed,
            "dataset": json.dumps({"name": dataset_table.name, **_absolute_root(dataset_table.options())}),
        }
    )

    @trainer.on(Events.EPOCH_STARTED)
    def _reset(engine: Engine) -> None:
        if engine.state.iteration % engine.state.epoch_length == 0:  # not a mid-epoch resume
            stats.reset_epoch()

    @trainer.on(Events.ITERATION_COMPLETED(every=config.log_every))
    def _log_window(engine: Engine) -> None:
        run.report(engine, stats.window_means(), kind="step")
        stats.mark_window()

    @trainer.on(Events.EPOCH_COMPLETED)
    def _log_epoch(engine: Engine) -> None:
        run.report(engine, stats.epoch_means(), kind="epoch")

    run.attach_evaluation(trainer)
    run.engine_created(trainer, "trainer")
    objects = {
        "generator": generator,
        "discriminator": discriminator,
        "optimizer_g": opt_g,
        "optimizer_d": opt_d,
        "stats": stats,
    }
    if scaler.is_enabled():
        objects["scaler"] = scaler
    to_save = run.attach_checkpoints(trainer, objects)
    run.attach_progress(trainer)

    if run.resume(to_save, max_epochs=config.epochs) is not None:
        for opt, lr, betas in ((opt_g, config.lr_g, config.betas_g), (opt_d, config.lr_d, config.betas_d)):
            for group in opt.param_groups:  # the recipe file (with its overrides) wins
                group["lr"], group["betas"] = lr, betas
    run.run_engine(trainer, loader, config.epochs)
