"""The ``detect`` recipe: supervised training of an object detector on images with boxes and labels.

A readable procedure: build the data and the detector, an optimizer (SGD or AdamW) over its
trainable parameters, an Ignite trainer whose step sets the scheduled learning rate (linear
warm-up, then cosine, step or constant), sums the detector's losses and takes one step; then hand
it to ``run.fit``, which evaluates the ``[[metrics]]`` (``map``, ``map50``) on the held-out split,
checkpoints, logs and resumes.

The model is any ``nn.Module`` with torchvision's detection interface (models that provide
``"detector"``): ``model(images, targets)`` in training mode returns a dict of losses, in eval
mode ``model(images)`` one ``{"boxes", "labels", "scores"}`` per image; images are a list of
``(C, H, W)`` tensors in [-1, 1], labels class indices 0..K-1. Its ``loss_groups`` (optional)
says which losses are ``classification`` and which ``localization``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from ignite.engine import Engine
from torch import Tensor, nn

from dltoolkit import DataSpec, DltkError, Run, Trained
from dltoolkit.data import make_loader
from dltoolkit_detect.data import KIND, as_batch
from dltoolkit_detect.options import DetectConfig


def learning_rate(config: DetectConfig, iteration: int, epoch_length: int) -> float:
    """The learning rate of the 1-based ``iteration``: linear warm-up over ``warmup_iterations``,
    then the schedule. A function of the iteration and the options alone, so a resumed run continues exactly."""
    done = iteration - 1
    warmup = config.warmup_iterations
    if done < warmup:
        return config.lr * (done + 1) / warmup
    if config.schedule == "cosine":
        span = max(config.epochs * epoch_length - warmup, 1)
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * min((done - warmup) / span, 1.0)))
    if config.schedule == "step":
        return config.lr * config.gamma ** sum(1 for m in config.milestones if done >= m * epoch_length)
    return config.lr


def group_losses(losses: dict[str, Tensor], groups: dict[str, str]) -> dict[str, Tensor]:
    """``loss`` (the sum of every loss) and the sums of its ``classification`` and ``localization``
    losses (a loss the model's ``loss_groups`` does not name counts as classification when its name says
    'class' or 'objectness', else as localization)."""
    zero = next(iter(losses.values())).new_zeros(())
    out = {"loss": zero, "classification": zero, "localization": zero}
    for name, value in losses.items():
        value = value.float()
        group = groups.get(name) or ("classification" if "class" in name or "objectness" in name else "localization")
        out["loss"] = out["loss"] + value
        out[group] = out[group] + value
    return out


def make_detect_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, config: DetectConfig, *, device: torch.device
) -> Callable[[Engine, Any], dict[str, Any]]:
    """One training iteration: set the scheduled learning rate, sum the detector's losses, one
    (clipped) optimizer step. Returns the detached ``loss``, ``classification``, ``localization`` and ``lr``."""
    groups = dict(getattr(model, "loss_groups", {}) or {})
    params = [p for p in model.parameters() if p.requires_grad]

    def step(engine: Engine, batch: Any) -> dict[str, Any]:
        images, targets = as_batch(batch)
        images = [image.to(device, non_blocking=True) for image in images]
        targets = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets]
        lr = learning_rate(config, engine.state.iteration, int(engine.state.epoch_length or 1))
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        losses = model(images, targets)
        if not isinstance(losses, dict) or not losses:
            raise TypeError(f"the detector returned {type(losses).__name__} in training mode, not a dict of losses")
        scalars = group_losses(losses, groups)
        optimizer.zero_grad(set_to_none=True)
        scalars["loss"].backward()
        if config.clip_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, config.clip_grad_norm)
        optimizer.step()
        return {**{k: v.detach() for k, v in scalars.items()}, "lr": lr}

    return step


# --- what a trained detector offers -------------------------------------------------------------


def make_eval_step(model: nn.Module, device: torch.device) -> Callable[[Any], dict[str, Any]]:
    """``eval_step(batch)``: ``{"predictions": [...], "targets": [...], "images": [...]}``, one
    dict per image, on the CPU, as the ``map`` metrics and the evaluation grid read them."""

    def eval_step(batch: Any) -> dict[str, Any]:
        images, targets = as_batch(batch)
        predictions = model([image.to(device) for image in images])
        cpu = [{k: v.detach().float().cpu() if k != "labels" else v.cpu() for k, v in p.items()} for p in predictions]
        return {"predictions": cpu, "targets": targets, "images": images}

    return eval_step


def make_trained(model: nn.Module, device: torch.device, spec: DataSpec | None, config: DetectConfig | None) -> Trained:
    """The detector (exported, loaded), its ``eval_step``, ``predict`` for ``dltk predict``, and at
    each evaluation the grid of held-out images and each class's AP."""
    from dltoolkit_detect.predict import make_predict
    from dltoolkit_detect.report import attach_detection_report

    device = torch.device(device)
    config = config or DetectConfig()
    chosen = config
    return Trained(
        modules={"detector": model},
        eval_step=make_eval_step(model, device),
        predict=make_predict(model, device, spec, config.draw_score),
        evaluator_handlers=[lambda evaluator, run: attach_detection_report(run, evaluator, chosen)],
    )


def detect_offers(model: Any, device: torch.device, config: DetectConfig | None = None) -> Trained:
    """What a trained detector offers: export, held-out evaluation (mAP) and predictions (boxes as CSV rows, drawn)."""
    return make_trained(model, device, getattr(model, "spec", None), config)


# --- the recipe -------------------------------------------------------------------------------


def _optimizer(config: DetectConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def _in_file(run: Run, exc: DltkError) -> DltkError:
    prefix = f"{run.recipe_file.path}: "
    return DltkError([line if line.startswith(prefix) else prefix + line for line in exc.problems])


def train_detect(config: DetectConfig, *, run: Run) -> None:
    """Train an object detector: the model's losses summed, SGD or AdamW with warm-up, COCO mAP held out."""
    import ignite.distributed as idist
    from ignite.utils import manual_seed

    manual_seed(run.seed)
    path = run.recipe_file.path
    if idist.get_world_size() > 1:
        raise DltkError(
            f"{path}: recipe.name: the 'detect' recipe trains in one process (its detectors are not wrapped for "
            "several); run it without --nproc-per-node"
        )
    dataset = run.build_dataset()
    spec = run.data
    assert spec is not None
    if spec.kind != KIND or not spec.labelled:
        name = run.table("dataset").name
        raise DltkError(
            f"{path}: dataset.name: dataset '{name}' gives {spec.describe()} without boxes, but the recipe "
            "'detect' needs images with boxes and labels (coco-folder, voc-folder, digit-boxes)"
        )
    if len(dataset) < config.batch_size:
        raise DltkError(
            f"{path}: recipe.batch_size: {config.batch_size} is more than the {len(dataset)} training images "
            "(the last partial batch is dropped); lower it"
        )
    model = run.build_model()
    if not isinstance(model, nn.Module):
        raise TypeError(f"model '{run.table('model').name}': the detect recipe needs an nn.Module, got {model!r}")
    load_pretrained = getattr(model, "load_pretrained", None)
    if not run.resuming and callable(load_pretrained):
        try:
            load_pretrained()
        except DltkError as exc:
            raise _in_file(run, exc) from None
    model = model.to(run.device)
    optimizer = _optimizer(config, model)
    trainer = Engine(make_detect_step(model, optimizer, config, device=run.device))
    loader = make_loader(dataset, config.batch_size, seed=run.seed, engine=trainer, num_workers=config.num_workers)

    def on_resume() -> None:
        for group in optimizer.param_groups:  # the recipe file (with its overrides) wins
            group["weight_decay"] = config.weight_decay
            if config.optimizer == "adamw":
                group["betas"] = config.betas
            else:
                group["momentum"] = config.momentum

    run.fit(
        trainer,
        loader,
        epochs=config.epochs,
        state={"detector": model, "optimizer": optimizer},
        trained=make_trained(model, run.device, spec, config),
        log_every=config.log_every,
        on_resume=on_resume,
        failure_hint="a lower recipe.lr, or more recipe.warmup_iterations, often helps",
    )
