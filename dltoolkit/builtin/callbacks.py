"""Built-in callbacks for generative recipes: sample grids, a GIF of them, loss plots, real images.

Each attaches itself to the trainer engine with Ignite events. They read images through
``run.sampler`` (an :class:`~dltoolkit.ImageSampler` set by the recipe) and the run's
``metrics.jsonl``, so they work for any recipe that provides those.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import torch
from ignite.engine import Engine, Events
from torch import Tensor

from dltoolkit import Component, DltkError, Run, hookimpl, option, to_uint8

GRID_PREFIX = "grid_"
# COMPLETED also follows a terminate(); a failed run calls run.add_finalizer() functions instead
# (an Ignite EXCEPTION_RAISED handler would swallow the exception).
END_EVENT = Events.COMPLETED


def image_grid(images: Tensor, nrow: int) -> Tensor:
    """A uint8 ``(C, H, W)`` grid of images given in [-1, 1]."""
    from torchvision.utils import make_grid

    return make_grid(to_uint8(images.cpu()), nrow=nrow, padding=2, pad_value=0)


def save_png(grid: Tensor, path: Path) -> None:
    from PIL import Image

    array = grid.permute(1, 2, 0).numpy()
    image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    tmp = path.with_name(f".tmp-{path.name}")
    image.save(tmp, format="PNG")
    tmp.replace(path)


def _need_sampler(run: Run, name: str) -> Any:
    if run.sampler is None:
        raise DltkError(f"callbacks: '{name}' needs a recipe that generates images")
    return run.sampler


@attrs.frozen
class SamplesConfig:
    every: int = option(1, doc="Write a grid every this many `unit`s.", validator=attrs.validators.ge(1))
    unit: str = option("epoch", doc="'epoch' or 'iteration'.", validator=attrs.validators.in_(("epoch", "iteration")))
    num: int = option(64, doc="Images in the grid.", validator=[attrs.validators.ge(1), attrs.validators.le(1024)])
    nrow: int = option(8, doc="Images per grid row.", validator=attrs.validators.ge(1))
    seed: int | None = option(None, doc="Seed of the fixed noise batch (default: the recipe's seed).")


class Samples:
    """Grids from a fixed noise batch, to ``samples/grid_<iteration>.png`` and TensorBoard."""

    def __init__(self, config: SamplesConfig):
        self.config = config

    def attach(self, engine: Engine, run: Run) -> None:
        sampler = _need_sampler(run, "samples")
        seed = self.config.seed if self.config.seed is not None else run.recipe_file.seed
        noise = sampler.noise(self.config.num, seed)
        folder = run.ensure_dir() / "samples"

        def write(engine: Engine) -> None:
            grid = image_grid(sampler.generate(noise), self.config.nrow)
            save_png(grid, folder / f"{GRID_PREFIX}{engine.state.iteration:08d}.png")
            run.add_images("samples", grid, engine.state.iteration)

        def write_last(engine: Engine) -> None:
            if not (folder / f"{GRID_PREFIX}{engine.state.iteration:08d}.png").exists():
                write(engine)

        event = Events.EPOCH_COMPLETED if self.config.unit == "epoch" else Events.ITERATION_COMPLETED
        engine.add_event_handler(event(every=self.config.every), write)
        engine.add_event_handler(Events.COMPLETED, write_last)


def samples(config: SamplesConfig) -> Samples:
    """Sample grids from a fixed noise batch every N epochs or iterations."""
    return Samples(config)


@attrs.frozen
class GifConfig:
    frame_ms: int = option(400, doc="How long each grid is shown, in milliseconds.", validator=attrs.validators.ge(10))
    loop: int = option(0, doc="Times the GIF repeats (0: forever).", validator=attrs.validators.ge(0))


def write_gif(folder: Path, frame_ms: int = 400, loop: int = 0) -> Path | None:
    """Write ``folder/progress.gif`` from the grids in ``folder``, in training order."""
    from PIL import Image

    grids = sorted(folder.glob(f"{GRID_PREFIX}*.png"))
    if not grids:
        return None
    frames = []
    for path in grids:
        with Image.open(path) as img:
            frames.append(img.convert("RGB"))
    out = folder / "progress.gif"
    tmp = folder / ".tmp-progress.gif"
    frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=frame_ms, loop=loop)
    tmp.replace(out)
    return out


class ProgressGif:
    """``samples/progress.gif``: the sample grids over training, written when the run ends or stops."""

    def __init__(self, config: GifConfig):
        self.config = config

    def attach(self, engine: Engine, run: Run) -> None:
        folder = run.ensure_dir() / "samples"

        def write(_: Engine) -> None:
            write_gif(folder, self.config.frame_ms, self.config.loop)

        engine.add_event_handler(END_EVENT, write)
        run.add_finalizer(write)


def progress_gif(config: GifConfig) -> ProgressGif:
    """An animated GIF of the sample grids over training (needs the samples callback)."""
    return ProgressGif(config)


@attrs.frozen
class LossPlotConfig:
    every: int = option(
        0, doc="Also redraw every this many epochs (0: only at the end).", validator=attrs.validators.ge(0)
    )


def read_steps(metrics_file: Path) -> list[dict[str, Any]]:
    if not metrics_file.exists():
        return []
    records = []
    for line in metrics_file.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("kind") == "step":
            records.append(record)
    return records


def plot_losses(metrics_file: Path, out: Path) -> Path | None:
    """Draw D and G losses, and D(x) and D(G(z)), over iterations into ``out`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = read_steps(metrics_file)
    if not steps:
        return None
    its = [r["iteration"] for r in steps]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for key, label in (("loss_d", "D loss"), ("loss_g", "G loss")):
        if key in steps[0]:
            top.plot(its, [r.get(key) for r in steps], label=label, linewidth=1)
    top.set_ylabel("loss")
    if top.lines:
        top.legend()
    for key, label in (("d_x", "D(x)"), ("d_g_z", "D(G(z))")):
        if key in steps[0]:
            bottom.plot(its, [r.get(key) for r in steps], label=label, linewidth=1)
    bottom.set_ylabel("discriminator output")
    bottom.set_xlabel("iteration")
    bottom.set_ylim(-0.02, 1.02)
    if bottom.lines:
        bottom.legend()
    fig.tight_layout()
    tmp = out.with_name(f".tmp-{out.name}")
    fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    tmp.replace(out)
    return out


class LossPlot:
    """``samples/losses.png``: losses and discriminator outputs over iterations (from metrics.jsonl)."""

    def __init__(self, config: LossPlotConfig):
        self.config = config

    def attach(self, engine: Engine, run: Run) -> None:
        folder = run.ensure_dir()

        def draw(_: Engine) -> None:
            plot_losses(folder / "metrics.jsonl", folder / "samples" / "losses.png")

        engine.add_event_handler(END_EVENT, draw)
        run.add_finalizer(draw)
        if self.config.every:
            engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.config.every), draw)


def loss_plot(config: LossPlotConfig) -> LossPlot:
    """A plot of the losses and D(x), D(G(z)) over training (matplotlib, headless)."""
    return LossPlot(config)


@attrs.frozen
class RealSamplesConfig:
    num: int = option(64, doc="Real images in the grid.", validator=[attrs.validators.ge(1), attrs.validators.le(1024)])
    nrow: int = option(8, doc="Images per grid row.", validator=attrs.validators.ge(1))


class RealSamples:
    """``samples/real.png``: a grid of training images, once, to compare the samples with."""

    def __init__(self, config: RealSamplesConfig):
        self.config = config

    def attach(self, engine: Engine, run: Run) -> None:
        if run.train_dataset is None:
            raise DltkError("callbacks: 'real-samples' needs a recipe that trains on a dataset")
        out = run.ensure_dir() / "samples" / "real.png"

        def write(_: Engine) -> None:
            if out.exists():
                return
            dataset = run.train_dataset
            count = min(self.config.num, len(dataset))
            if hasattr(dataset, "__getitems__"):
                images = dataset.__getitems__(list(range(count)))[0]
            else:
                images = torch.stack([dataset[i][0] for i in range(count)])
            grid = image_grid(images, self.config.nrow)
            save_png(grid, out)
            run.add_images("real", grid, 0)

        engine.add_event_handler(Events.STARTED, write)


def real_samples(config: RealSamplesConfig) -> RealSamples:
    """A grid of real training images, written once for comparison."""
    return RealSamples(config)


@hookimpl
def dltk_register_callbacks() -> list[Component]:
    return [
        Component("samples", samples, SamplesConfig),
        Component("progress-gif", progress_gif, GifConfig),
        Component("loss-plot", loss_plot, LossPlotConfig),
        Component("real-samples", real_samples, RealSamplesConfig),
    ]
