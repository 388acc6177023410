"""The ``classify`` recipe: supervised training of an image classifier with cross-entropy.

A readable procedure: build the data and the model, an optimizer over the trainable parameters,
an Ignite trainer whose step augments a batch, sets the scheduled learning rate and takes one
step; then hand it to ``run.fit``, which evaluates the ``[[metrics]]`` on an Ignite evaluator
engine over the held-out split, checkpoints, logs and resumes.

The model is any ``nn.Module`` mapping images ``(N, C, H, W)`` in [-1, 1] to logits ``(N, K)``
(models that provide ``"classifier"``). The recipe also reads, when present, ``spec`` (the
:class:`~dltoolkit.DataSpec` the model was built for: class names and input size for ``dltk
predict``) and ``load_pretrained()`` (called once before a fresh run trains, never on resume).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import ignite.distributed as idist
import torch
import torch.nn.functional as F
from ignite.engine import Engine
from torch import Tensor, nn

from dltoolkit import DataSpec, DltkError, Run, Trained
from dltoolkit.data import make_loader
from dltoolkit_vision.options import REPORTS, ClassifyConfig
from dltoolkit_vision.predict import make_predict

STAT_NAMES = tuple(s.name for s in REPORTS)


# --- the step --------------------------------------------------------------------------------


def learning_rate(config: ClassifyConfig, iteration: int, epoch_length: int) -> float:
    """The learning rate of the 1-based ``iteration``: linear warm-up over ``warmup_epochs``, then
    the schedule (cosine to 0 at the last iteration, steps at ``milestones``, or constant).

    A function of the iteration and the options alone, so a resumed run continues exactly, and
    ``recipe.epochs`` or ``recipe.lr`` changed on ``--resume`` reshape the rest of the schedule.
    """
    done = iteration - 1
    warmup = config.warmup_epochs * epoch_length
    if done < warmup:
        return config.lr * (done + 1) / warmup
    if config.schedule == "cosine":
        span = max(config.epochs * epoch_length - warmup, 1)
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * min((done - warmup) / span, 1.0)))
    if config.schedule == "step":
        passed = sum(1 for m in config.milestones if done >= m * epoch_length)
        return config.lr * config.gamma**passed
    return config.lr


def augment(images: Tensor, crop_padding: int, horizontal_flip: bool) -> Tensor:
    """Random crops of the images padded by ``crop_padding`` black pixels, and random horizontal
    flips, drawn per image from the global torch RNG (so a resumed run draws the same)."""
    n, _c, h, w = images.shape
    if crop_padding > 0:
        device = images.device
        padded = F.pad(images, (crop_padding,) * 4, value=-1.0)
        dy = torch.randint(0, 2 * crop_padding + 1, (n,), device=device)
        dx = torch.randint(0, 2 * crop_padding + 1, (n,), device=device)
        rows = (dy[:, None] + torch.arange(h, device=device))[:, :, None]
        cols = (dx[:, None] + torch.arange(w, device=device))[:, None, :]
        images = padded[torch.arange(n, device=device)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
    if horizontal_flip:
        flip = torch.rand(n, device=images.device) < 0.5
        images = torch.where(flip[:, None, None, None], images.flip(3), images)
    return images.contiguous()


def make_classify_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: ClassifyConfig,
    *,
    device: torch.device,
    scaler: torch.amp.GradScaler,
) -> Callable[[Engine, Any], dict[str, Any]]:
    """One training iteration: augment, set the scheduled learning rate, cross-entropy on the logits
    (in float32 under autocast), one optimizer step.

    Returns ``step(engine, (images, labels))`` giving the detached ``loss``, ``accuracy``
    and ``lr`` of the batch.
    """
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.precision)
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype is not None else contextlib.nullcontext
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    augmenting = config.crop_padding > 0 or config.horizontal_flip

    def step(engine: Engine, batch: Any) -> dict[str, Any]:
        images = batch[0].to(device, non_blocking=True)
        labels = batch[1].to(device, non_blocking=True)
        if augmenting:
            images = augment(images, config.crop_padding, config.horizontal_flip)
        if config.channels_last:
            images = images.contiguous(memory_format=memory_format)
        lr = learning_rate(config, engine.state.iteration, int(engine.state.epoch_length or 1))
        for group in optimizer.param_groups:
            group["lr"] = lr
        with autocast():
            logits = model(images).float()
        loss = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        correct = (logits.detach().argmax(1) == labels).float().mean()
        return {"loss": loss.detach(), "accuracy": correct, "lr": lr}

    return step


# --- what a trained classifier offers -----------------------------------------------------------


def make_trained(model: nn.Module, device: torch.device, spec: DataSpec | None) -> Trained:
    """The classifier (exported, loaded), its held-out ``eval_step`` giving ``(logits, labels)`` as
    Ignite's ``Accuracy`` and ``Loss`` take them, and ``predict`` for ``dltk predict``."""
    device = torch.device(device)

    def eval_step(batch: Any) -> tuple[Tensor, Tensor]:
        return model(batch[0].to(device)).float(), batch[1].to(device)

    return Trained(modules={"classifier": model}, eval_step=eval_step, predict=make_predict(model, device, spec))


def classify_offers(model: Any, device: torch.device) -> Trained:
    """What a trained classifier offers: export, held-out evaluation and predictions (class and probability)."""
    return make_trained(model, device, getattr(model, "spec", None))


# --- the recipe -------------------------------------------------------------------------------


def _place(module: nn.Module, run: Run, channels_last: bool) -> nn.Module:
    module = module.to(run.device)
    if channels_last:
        module = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if idist.get_world_size() > 1:
        module = idist.auto_model(module)
    return module


def _optimizer(config: ClassifyConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        params,
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.momentum > 0,
        weight_decay=config.weight_decay,
    )


def _in_file(run: Run, exc: DltkError) -> DltkError:
    prefix = f"{run.recipe_file.path}: "
    return DltkError([line if line.startswith(prefix) else prefix + line for line in exc.problems])


def train_classify(config: ClassifyConfig, *, run: Run) -> None:
    """Train an image classifier: cross-entropy, SGD or AdamW, cosine or step schedule, augmentation."""
    from ignite.utils import manual_seed

    manual_seed(run.seed)
    path = run.recipe_file.path
    dataset = run.build_dataset()
    spec = run.data
    assert spec is not None
    if not spec.labelled:
        name = run.table("dataset").name
        raise DltkError(
            f"{path}: dataset.name: dataset '{name}' gives {spec.describe()} without labels, but the recipe "
            "'classify' needs 'labels' (image-folder: put each class's images in a sub-folder of its own)"
        )
    if len(dataset) < config.batch_size:
        raise DltkError(
            f"{path}: recipe.batch_size: {config.batch_size} is more than the {len(dataset)} training images "
            "(the last partial batch is dropped); lower it"
        )
    model = run.build_model()
    if not isinstance(model, nn.Module):
        raise TypeError(f"model '{run.table('model').name}': the classify recipe needs an nn.Module, got {model!r}")
    load_pretrained = getattr(model, "load_pretrained", None)
    if not run.resuming and callable(load_pretrained):
        try:
            load_pretrained()
        except DltkError as exc:
            raise _in_file(run, exc) from None
    model = _place(model, run, config.channels_last)
    optimizer = idist.auto_optim(_optimizer(config, model))
    scaler = torch.amp.GradScaler(run.device.type, enabled=config.precision == "fp16")
    trainer = Engine(make_classify_step(model, optimizer, config, device=run.device, scaler=scaler))
    loader = make_loader(dataset, config.batch_size, seed=run.seed, engine=trainer, num_workers=config.num_workers)
    state: dict[str, Any] = {"classifier": model, "optimizer": optimizer}
    if scaler.is_enabled():
        state["scaler"] = scaler

    def on_resume() -> None:
        for group in optimizer.param_groups:  # the recipe file (with its overrides) wins
            group["weight_decay"] = config.weight_decay
            if config.optimizer == "adamw":
                group["betas"] = config.betas
            else:
                group["momentum"] = config.momentum

    trained = make_trained(model, run.device, spec)
    if config.confusion_matrix:  # on each evaluation: the confusion matrix PNG and each class's accuracy
        from dltoolkit_vision.report import attach_class_report

        trained.evaluator_handlers = [lambda evaluator, run: attach_class_report(run, evaluator)]
    run.fit(
        trainer,
        loader,
        epochs=config.epochs,
        state=state,
        trained=trained,
        log_every=config.log_every,
        on_resume=on_resume,
        failure_hint="a lower recipe.lr, or recipe.warmup_epochs, often helps",
    )
