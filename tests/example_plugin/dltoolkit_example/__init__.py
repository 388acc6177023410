"""A third-party plugin, written from docs/writing_plugins.md, registered through one entry point.

It adds a new model family to dltoolkit without touching it: the ``autoencode`` recipe, its
model ``tiny-ae`` and a held-out metric ``mse`` computed by Ignite's own ``MeanSquaredError``;
and one model, ``tiny-gan``, for the ``gan`` recipe of dltoolkit-gan (without importing it).
"""

from __future__ import annotations

import math
import types
from typing import Any

import attrs

import dltoolkit
import dltoolkit.data

# --- a model for an existing recipe ------------------------------------------------------------


@attrs.frozen
class TinyGanConfig:
    latent_dim: int = dltoolkit.option(16, doc="Size of the noise vector.", validator=attrs.validators.ge(1))
    width: int = dltoolkit.option(32, doc="Hidden width of both networks.", validator=attrs.validators.ge(1))


def tiny_gan(config: TinyGanConfig, *, image_shape: tuple[int, int, int]) -> Any:
    """A one-hidden-layer GAN, the smallest model the gan recipe can train."""
    from torch import nn

    pixels = math.prod(image_shape)
    generator = nn.Sequential(
        nn.Linear(config.latent_dim, config.width),
        nn.ReLU(),
        nn.Linear(config.width, pixels),
        nn.Tanh(),
        nn.Unflatten(1, image_shape),
    )
    discriminator = nn.Sequential(
        nn.Flatten(),
        nn.Linear(pixels, config.width),
        nn.LeakyReLU(0.2),
        nn.Linear(config.width, 1),
        nn.Flatten(0),
    )
    # the gan recipe reads these three attributes, whatever the object is
    return types.SimpleNamespace(generator=generator, discriminator=discriminator, latent_dim=config.latent_dim)


# --- a new family: autoencoders ------------------------------------------------------------------


@attrs.frozen
class AutoencodeConfig:
    epochs: int = dltoolkit.option(5, doc="Passes over the data.", validator=attrs.validators.ge(1), resumable=True)
    batch_size: int = dltoolkit.option(64, doc="Images per step.", validator=attrs.validators.ge(1))
    lr: float = dltoolkit.option(1e-3, doc="Adam learning rate.", validator=attrs.validators.gt(0), resumable=True)
    log_every: int = dltoolkit.option(20, doc="Iterations between logged means.", validator=attrs.validators.ge(1))


REPORTS = (dltoolkit.Scalar("loss", "Mean squared reconstruction error of a batch.", "lower", group="loss"),)


def autoencode_offers(model: Any, device: Any) -> dltoolkit.Trained:
    """What a trained autoencoder can do: be exported, scored on held-out images, and score images."""
    import torch

    def eval_step(batch: Any) -> tuple[Any, Any]:
        images = batch[0].to(device)
        return model(images), images  # (y_pred, y): what Ignite's MeanSquaredError reads

    def predict(path: Any, dataset: Any) -> Any:
        """Reconstruction error of each image of a dataset split (high: unlike the training data)."""
        if dataset is None:
            raise dltoolkit.DltkError(f"--input: '{path}': the autoencode recipe predicts on a split (test, train)")
        with torch.no_grad():
            for index in range(len(dataset)):
                image = dataset[index][0].unsqueeze(0).to(device)
                error = torch.mean((model(image) - image) ** 2).item()
                yield {"index": index, "reconstruction_mse": round(error, 6)}

    return dltoolkit.Trained(modules={"autoencoder": model}, eval_step=eval_step, predict=predict)


def train_autoencoder(config: AutoencodeConfig, *, run: dltoolkit.Run) -> None:
    """Train an autoencoder to reconstruct its input images (MSE, Adam)."""
    import torch
    from ignite.engine import Engine
    from ignite.utils import manual_seed

    manual_seed(run.seed)
    dataset = run.build_dataset()
    model = run.build_model().to(run.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)

    def step(_engine: Engine, batch: Any) -> dict[str, Any]:
        images = batch[0].to(run.device)
        loss = torch.nn.functional.mse_loss(model(images), images)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss.detach()}

    trainer = Engine(step)
    loader = dltoolkit.data.make_loader(dataset, config.batch_size, seed=run.seed, engine=trainer)

    def on_resume() -> None:
        for group in optimizer.param_groups:
            group["lr"] = config.lr

    run.fit(
        trainer,
        loader,
        epochs=config.epochs,
        state={"autoencoder": model, "optimizer": optimizer},
        trained=autoencode_offers(model, run.device),
        log_every=config.log_every,
        on_resume=on_resume,
    )


@attrs.frozen
class TinyAeConfig:
    code: int = dltoolkit.option(
        8, doc="Size of the code between encoder and decoder.", validator=attrs.validators.ge(1)
    )


def tiny_ae(config: TinyAeConfig, *, data: dltoolkit.DataSpec) -> Any:
    """A fully connected autoencoder for small images."""
    from torch import nn

    pixels = math.prod(data.shape)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(pixels, config.code),
        nn.ReLU(),
        nn.Linear(config.code, pixels),
        nn.Tanh(),
        nn.Unflatten(1, data.shape),
    )


def mse(config: dltoolkit.MetricConfig) -> Any:
    """Held-out reconstruction MSE (Ignite's MeanSquaredError; lower is better).

    A held-out metric's factory returns a plain Ignite ``Metric``; dltoolkit owns its ``every``,
    ``split`` and ``batch_size`` (the options of ``dltoolkit.MetricConfig``) and its evaluator.
    """
    from ignite.metrics import MeanSquaredError

    return MeanSquaredError()


@dltoolkit.hookimpl
def dltk_register_recipes() -> list[dltoolkit.Component]:
    return [
        dltoolkit.Component(
            "autoencode",
            train_autoencoder,
            AutoencodeConfig,
            requires=("model", "dataset"),
            needs={"model": "autoencoder", "dataset": "images"},
            provides=("evaluate", "predict", "export"),
            reports=REPORTS,
            offers=autoencode_offers,
        )
    ]


@dltoolkit.hookimpl
def dltk_register_models() -> list[dltoolkit.Component]:
    return [
        dltoolkit.Component("tiny-gan", tiny_gan, TinyGanConfig, provides="gan", needs={"dataset": "images"}),
        dltoolkit.Component("tiny-ae", tiny_ae, TinyAeConfig, provides="autoencoder", needs={"dataset": "images"}),
    ]


@dltoolkit.hookimpl
def dltk_register_metrics() -> list[dltoolkit.Component]:
    scalar = dltoolkit.Scalar("mse", "Held-out squared reconstruction error per image (summed over pixels).", "lower")
    return [dltoolkit.Component("mse", mse, dltoolkit.MetricConfig, needs={"recipe": "evaluate"}, reports=[scalar])]
