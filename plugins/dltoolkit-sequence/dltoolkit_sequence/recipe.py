"""The ``sequence-classify`` and ``language-model`` recipes, their steps and what their runs offer."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
import torch.nn.functional as F
from ignite.engine import Engine
from torch import Tensor, nn

from dltoolkit import DltkError, Run, Trained
from dltoolkit.data import make_loader
from dltoolkit_sequence.generate import make_generate
from dltoolkit_sequence.models import SequenceModel
from dltoolkit_sequence.options import ForecastConfig, LanguageModelConfig, SequenceClassifyConfig

# --- steps ----------------------------------------------------------------------------------


def _clip_and_step(params: list[nn.Parameter], optimizer: torch.optim.Optimizer, clip: float) -> None:
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(params, clip)
    optimizer.step()


def make_classify_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, *, device: torch.device, clip_grad_norm: float
) -> Callable[[Engine, Any], dict[str, Tensor]]:
    """One step of cross-entropy on a batch of labelled sequences; returns ``loss`` and ``accuracy``."""
    params = [p for p in model.parameters() if p.requires_grad]

    def step(_engine: Engine, batch: Any) -> dict[str, Tensor]:
        model.train()
        x, y = batch[0].to(device), batch[1].to(device)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        _clip_and_step(params, optimizer, clip_grad_norm)
        accuracy = (logits.detach().argmax(1) == y).float().mean()
        return {"loss": loss.detach(), "accuracy": accuracy}

    return step


def make_language_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, *, device: torch.device, clip_grad_norm: float
) -> Callable[[Engine, Any], dict[str, Tensor]]:
    """One step of next-character cross-entropy over windows (truncated BPTT: each window starts
    from a zero state); returns ``loss`` (nats per character)."""
    params = [p for p in model.parameters() if p.requires_grad]

    def step(_engine: Engine, batch: Any) -> dict[str, Tensor]:
        model.train()
        x, y = batch[0].to(device), batch[1].to(device)
        logits, _ = model(x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        _clip_and_step(params, optimizer, clip_grad_norm)
        return {"loss": loss.detach()}

    return step


def make_forecast_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, *, device: torch.device, clip_grad_norm: float
) -> Callable[[Engine, Any], dict[str, Tensor]]:
    """One step of mean squared error of the normalised forecast; returns ``loss``."""
    params = [p for p in model.parameters() if p.requires_grad]

    def step(_engine: Engine, batch: Any) -> dict[str, Tensor]:
        model.train()
        x, y = batch[0].to(device), batch[1].to(device)
        loss = F.mse_loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        _clip_and_step(params, optimizer, clip_grad_norm)
        return {"loss": loss.detach()}

    return step


# --- what a trained model offers --------------------------------------------------------------


def classify_eval_step(model: nn.Module, device: torch.device) -> Callable[[Any], tuple[Tensor, Tensor]]:
    """``eval_step(batch) -> (logits, labels)``, the form Ignite's ``Accuracy`` takes."""

    def eval_step(batch: Any) -> tuple[Tensor, Tensor]:
        return model(batch[0].to(device)), batch[1].to(device)

    return eval_step


def next_char_eval_step(model: nn.Module, device: torch.device) -> Callable[[Any], tuple[Tensor, Tensor]]:
    """``eval_step(batch) -> (logits, targets)`` with one row per character: ``(N * T, V)``, ``(N * T,)``."""

    def eval_step(batch: Any) -> tuple[Tensor, Tensor]:
        logits, _ = model(batch[0].to(device))
        return logits.flatten(0, 1), batch[1].to(device).flatten()

    return eval_step


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode without gradients, its own mode back afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def make_predict(model: SequenceModel, device: torch.device) -> Callable[[Any, Any], Iterator[dict[str, Any]]]:
    """``predict(path, dataset)`` for ``dltk predict``: the most likely class of each sequence of a
    split of the run's data (``--input train|test``), with its probability and the true label."""

    def predict(path: Any, dataset: Any) -> Iterator[dict[str, Any]]:
        if dataset is None:
            raise DltkError(
                f"--input: '{path}': sequence classifiers predict on a split of the run's data; "
                "give --input train or --input test"
            )
        for start in range(0, len(dataset), 256):
            index = list(range(start, min(start + 256, len(dataset))))
            inputs, labels = dataset.__getitems__(index)
            with evaluating(model):
                probs = torch.softmax(model(inputs.to(device)).float(), dim=1).cpu()
            best, classes = probs.max(dim=1)
            for i, p, c, y in zip(index, best.tolist(), classes.tolist(), labels.tolist(), strict=True):
                yield {
                    "input": i,
                    "label": model.class_names[c],
                    "probability": round(p, 6),
                    "true_label": model.class_names[y],
                }

    return predict


def forecast_eval_step(model: SequenceModel, device: torch.device) -> Callable[[Any], dict[str, Tensor]]:
    """``eval_step(batch)`` in the series' units: the model's ``forecast``, the ``naive`` forecast
    (the last context value repeated) and the ``actual`` values, each ``(N, horizon)``."""
    mean, std = model.scale

    def eval_step(batch: Any) -> dict[str, Tensor]:
        x, y = batch[0].to(device), batch[1].to(device)
        naive = x[:, -1, :1].expand_as(y)
        return {"forecast": model(x) * std + mean, "naive": naive * std + mean, "actual": y * std + mean}

    return eval_step


def make_forecast_predict(model: SequenceModel, device: torch.device) -> Callable[[Any, Any], Iterator[dict[str, Any]]]:
    """``predict(path, dataset)`` for ``dltk predict`` of a forecaster, in the series' units.

    ``--input FILE.csv``: the ``horizon`` values after the series' end, from its last ``context``
    values (the column the model was trained on, else the last), one row per ``step`` (1 = the
    next value). ``--input train|test``: every window of that split, one row per window and step,
    with the ``actual`` value beside the forecast."""
    from dltoolkit_sequence.data import read_column

    mean, std = model.scale

    def forecast(windows: Tensor) -> list[list[float]]:
        with evaluating(model):
            return (model(windows.to(device)).float().cpu() * std + mean).tolist()

    def predict(path: Any, dataset: Any) -> Iterator[dict[str, Any]]:
        if dataset is not None:
            for start in range(0, len(dataset), 256):
                index = list(range(start, min(start + 256, len(dataset))))
                inputs, targets = dataset.__getitems__(index)
                actual = (targets.float() * std + mean).tolist()
                for i, values, truth in zip(index, forecast(inputs), actual, strict=True):
                    for step, (value, real) in enumerate(zip(values, truth, strict=True), 1):
                        yield {"input": i, "step": step, "forecast": round(value, 6), "actual": round(real, 6)}
            return
        if Path(path).is_dir():
            raise DltkError(f"--input: '{path}' is a folder; give a CSV file of the series (or train, test)")
        name, values = read_column(Path(path), model.column, key="--input")
        if len(values) < model.context:
            raise DltkError(
                f"--input: '{path}' has {len(values)} values in column '{name}'; a forecast reads the last "
                f"{model.context} (the model's dataset.context)"
            )
        window = torch.from_numpy(((values[-model.context :] - mean) / std).astype("float32")).view(1, -1, 1)
        for step, value in enumerate(forecast(window)[0], 1):
            yield {"step": step, "forecast": round(value, 6)}

    return predict


def sequence_offers(model: SequenceModel, device: torch.device) -> Trained:
    """What a trained sequence model offers: the model (exported, loaded), an ``eval_step`` for the
    held-out metrics and, for a language model, text generation."""
    device = torch.device(device)
    model = model.to(device)
    if model.task == "forecast":
        return Trained(
            modules={"model": model},
            eval_step=forecast_eval_step(model, device),
            predict=make_forecast_predict(model, device),
        )
    if model.task == "next-char":
        return Trained(
            modules={"model": model},
            eval_step=next_char_eval_step(model, device),
            generate=make_generate(model, device),
        )
    return Trained(
        modules={"model": model},
        eval_step=classify_eval_step(model, device),
        predict=make_predict(model, device),
    )


# --- the recipes ----------------------------------------------------------------------------


def _prepare(
    run: Run, batch_size: int, lr: float, weight_decay: float = 0.0
) -> tuple[Any, SequenceModel, torch.optim.Optimizer]:
    from ignite.utils import manual_seed

    manual_seed(run.recipe_file.seed)
    dataset = run.build_dataset()
    if len(dataset) < batch_size:
        raise DltkError(
            f"{run.recipe_file.path}: recipe.batch_size: {batch_size} is more than the {len(dataset)} training "
            "sequences (the last partial batch is dropped); lower it"
        )
    model: SequenceModel = run.build_model().to(run.device)
    if idist.get_world_size() > 1:
        model = idist.auto_model(model)
    optimizer = idist.auto_optim(torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay))
    return dataset, model, optimizer


def _fit(run: Run, trainer: Engine, dataset: Any, model: SequenceModel, optimizer: Any, config: Any, hint: str) -> None:
    loader = make_loader(dataset, config.batch_size, seed=run.recipe_file.seed, engine=trainer)

    def on_resume() -> None:
        for group in optimizer.param_groups:  # the recipe file (with its overrides) wins
            group["lr"] = config.lr

    run.fit(
        trainer,
        loader,
        epochs=config.epochs,
        state={"model": model, "optimizer": optimizer},
        trained=sequence_offers(getattr(model, "module", model), run.device),  # unwrapped from DDP
        log_every=config.log_every,
        on_resume=on_resume,
        failure_hint=hint,
    )


def train_classifier(config: SequenceClassifyConfig, *, run: Run) -> None:
    """Train a sequence classifier: cross-entropy, Adam, gradient clipping."""
    dataset, model, optimizer = _prepare(run, config.batch_size, config.lr, config.weight_decay)
    step = make_classify_step(model, optimizer, device=run.device, clip_grad_norm=config.clip_grad_norm)
    _fit(run, Engine(step), dataset, model, optimizer, config, "a lower recipe.lr often helps")


def train_language_model(config: LanguageModelConfig, *, run: Run) -> None:
    """Train a character language model: next-character cross-entropy over windows (consecutive or
    random), Adam or AdamW with decay on matrices only, warm-up and a schedule, accumulation, clipping."""
    from ignite.utils import manual_seed

    from dltoolkit_sequence.training import (
        RandomWindows,
        Steps,
        make_optimizer,
        make_transformer_language_step,
        text_ids,
    )

    manual_seed(run.recipe_file.seed)
    dataset = run.build_dataset()
    path = run.recipe_file.path
    windows = None
    if config.windows == "random":
        length = int(dataset.spec.shape[0]) if getattr(dataset, "spec", None) is not None else 0
        try:
            ids = text_ids(dataset)
        except DltkError as exc:
            raise DltkError(f"{path}: {exc.problems[0]}") from None
        per_process = config.batch_size // idist.get_world_size()
        windows = RandomWindows(ids, length, per_process, run.recipe_file.seed, idist.get_rank())
        steps = config.steps_per_epoch or max(len(dataset) // config.batch_size, 1)
        data: Any = Steps(steps * config.batch_size)
    else:
        if len(dataset) < config.batch_size:
            raise DltkError(
                f"{path}: recipe.batch_size: {config.batch_size} is more than the {len(dataset)} training "
                "windows (the last partial batch is dropped); lower it"
            )
        data = dataset
    model: SequenceModel = run.build_model().to(run.device)
    if idist.get_world_size() > 1:
        model = idist.auto_model(model)
    optimizer = idist.auto_optim(make_optimizer(config, model))
    loader: Any = None

    def total_steps(_engine: Engine) -> int:
        return config.epochs * len(loader)

    step = make_transformer_language_step(
        model, optimizer, config, device=run.device, total_steps=total_steps, windows=windows
    )
    trainer = Engine(step)
    loader = make_loader(data, config.batch_size, seed=run.recipe_file.seed, engine=trainer)

    def on_resume() -> None:
        for group in optimizer.param_groups:  # the recipe file (with its overrides) wins
            group["betas"] = config.betas
        optimizer.param_groups[0]["weight_decay"] = config.weight_decay  # the matrices' group

    run.fit(
        trainer,
        loader,
        epochs=config.epochs,
        state={"model": model, "optimizer": optimizer},
        trained=sequence_offers(getattr(model, "module", model), run.device),  # unwrapped from DDP
        log_every=config.log_every,
        on_resume=on_resume,
        failure_hint="a lower recipe.lr, recipe.warmup_steps or recipe.clip_grad_norm helps",
    )


def train_forecaster(config: ForecastConfig, *, run: Run) -> None:
    """Train a forecaster: mean squared error of the next ``horizon`` normalised values, Adam, clipping."""
    dataset, model, optimizer = _prepare(run, config.batch_size, config.lr)
    step = make_forecast_step(model, optimizer, device=run.device, clip_grad_norm=config.clip_grad_norm)
    _fit(run, Engine(step), dataset, model, optimizer, config, "a lower recipe.lr often helps")
