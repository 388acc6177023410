"""Built-in callbacks: sample grids, a GIF of them, a plot of the reported scalars, real images.

Each attaches itself to the trainer engine with Ignite events. Sample grids draw the preview of
the recipe's :class:`~dltoolkit.Trained` (``Trained.fixed_preview``: fixed noise for a sampler,
held-out inputs for a translator), so they fit any recipe whose runs offer one; the plot draws
whatever scalars the recipe declares.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from dltoolkit import Component, DltkError, Scalar, hookimpl, option
from dltoolkit.files import METRICS_NAME, SAMPLES, atomic_write

if TYPE_CHECKING:
    from ignite.engine import Engine

    from dltoolkit import Run

GRID_PREFIX = "grid_"
# Ignite's Events.COMPLETED ends the run (it also follows a terminate()); a failed run calls
# run.add_finalizer() functions instead (an Ignite EXCEPTION_RAISED handler would swallow the
# exception). Ignite and torch are imported in attach(), when a run starts, not at registration.


@attrs.frozen
class SamplesConfig:
    every: int = option(1, doc="Write a grid every this many `unit`s.", validator=attrs.validators.ge(1))
    unit: str = option("epoch", doc="'epoch' or 'iteration'.", validator=attrs.validators.in_(("epoch", "iteration")))
    num: int = option(
        64,
        doc="Images in the grid. A class-conditional run draws num // classes of each class, one row per class.",
        validator=[attrs.validators.ge(1), attrs.validators.le(1024)],
    )
    nrow: int = option(
        8, doc="Images per grid row (class-conditional runs: num // classes).", validator=attrs.validators.ge(1)
    )
    seed: int | None = option(None, doc="Seed of the fixed noise batch (default: the recipe's seed).")


class Samples:
    """Grids from a fixed noise batch, to ``samples/grid_<iteration>.png`` and TensorBoard."""

    def __init__(self, config: SamplesConfig):
        self.config = config

    def attach(self, engine: Engine, run: Run) -> None:
        from ignite.engine import Events

        seed = self.config.seed if self.config.seed is not None else run.recipe_file.seed
        trained = run.trained
        preview = trained.fixed_preview(self.config.num, seed, self.config.nrow) if trained is not None else None
        if preview is None:
            raise DltkError("callbacks: 'samples' needs a recipe whose runs offer a preview (noise or held-out inputs)")
        draw, nrow = preview
        folder = run.ensure_dir() / SAMPLES

        def write(engine: Engine) -> None:
            from dltoolkit.images import image_grid, save_png

            grid = image_grid(draw(), nrow)
            out = folder / f"{GRID_PREFIX}{engine.state.iteration:08d}.png"
            save_png(grid, out)
            run.recorder.image("samples", grid, engine.state.iteration, out)

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
    # GIF stores a frame's time in hundredths of a second and the loop count in 16 bits
    frame_ms: int = option(
        400,
        doc="How long each grid is shown, in milliseconds (10 to 655350).",
        validator=[attrs.validators.ge(10), attrs.validators.le(655_350)],
    )
    loop: int = option(
        0,
        doc="Times the GIF repeats (0: forever; at most 65535).",
        validator=[attrs.validators.ge(0), attrs.validators.le(65_535)],
    )


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
    atomic_write(
        out,
        lambda handle: frames[0].save(
            handle, format="GIF", save_all=True, append_images=frames[1:], duration=frame_ms, loop=loop
        ),
    )
    return out


class ProgressGif:
    """``samples/progress.gif``: the sample grids over training, written when the run ends or stops."""

    def __init__(self, config: GifConfig):
        self.config = config

    def attach(self, engine: Engine, run: Run) -> None:
        from ignite.engine import Events

        folder = run.ensure_dir() / SAMPLES

        def write(_: Engine) -> None:
            write_gif(folder, self.config.frame_ms, self.config.loop)

        engine.add_event_handler(Events.COMPLETED, write)
        run.add_finalizer(write)


def progress_gif(config: GifConfig) -> ProgressGif:
    """An animated GIF of the sample grids over training (needs the samples callback)."""
    return ProgressGif(config)


@attrs.frozen
class LossPlotConfig:
    every: int = option(
        0, doc="Also redraw every this many epochs (0: only at the end).", validator=attrs.validators.ge(0)
    )


def read_records(metrics_file: Path, kind: str) -> list[dict[str, Any]]:
    """The records of ``kind`` (``step``, ``epoch``, ``eval``) in a ``metrics.jsonl``."""
    if not metrics_file.exists():
        return []
    records = []
    for line in metrics_file.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("kind") == kind:
            records.append(record)
    return records


def plot_scalars(metrics_file: Path, out: Path, scalars: Sequence[Scalar]) -> Path | None:
    """Draw the declared ``scalars`` over iterations into ``out`` (PNG), one panel per group, each
    line labelled by its namespaced name (``train/loss``).

    Uses the per-step records, or the per-epoch ones when a run logged no step (shorter than
    ``log_every``). Returns None, writing nothing, when no declared scalar was logged.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_records(metrics_file, "step") or read_records(metrics_file, "epoch")
    drawn = [s for s in scalars if any(isinstance(r.get(s.name), (int, float)) for r in records)]
    if not drawn:
        return None
    groups: dict[str, list[Scalar]] = {}
    for scalar in drawn:
        groups.setdefault(scalar.group or f"train/{scalar.name}", []).append(scalar)
    fig, axes = plt.subplots(len(groups), 1, figsize=(9, 3 * len(groups)), sharex=True, squeeze=False)
    for ax, (group, members) in zip(axes[:, 0], groups.items(), strict=True):
        for scalar in members:
            points = [(r["iteration"], r[scalar.name]) for r in records if isinstance(r.get(scalar.name), (int, float))]
            ax.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                label=f"train/{scalar.name}",  # training scalars (records of kind step/epoch)
                linewidth=1,
                marker="." if len(points) < 20 else None,
            )
        ax.set_ylabel(group)
        bounds = next((s.bounds for s in members if s.bounds is not None), None)
        if bounds is not None:
            margin = 0.02 * (bounds[1] - bounds[0])
            ax.set_ylim(bounds[0] - margin, bounds[1] + margin)
        ax.legend()
    axes[-1, 0].set_xlabel("iteration")
    fig.tight_layout()
    try:
        atomic_write(out, lambda handle: fig.savefig(handle, format="png", dpi=100))
    finally:
        plt.close(fig)
    return out


class LossPlot:
    """``samples/losses.png``: the recipe's declared scalars over iterations (from metrics.jsonl)."""

    def __init__(self, config: LossPlotConfig):
        self.config = config

    def attach(self, engine: Engine, run: Run) -> None:
        from ignite.engine import Events

        folder = run.ensure_dir()
        scalars = run.recipe_file.recipe.component.reports

        def draw(_: Engine) -> None:
            plot_scalars(folder / METRICS_NAME, folder / SAMPLES / "losses.png", scalars)

        engine.add_event_handler(Events.COMPLETED, draw)
        run.add_finalizer(draw)
        if self.config.every:
            engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.config.every), draw)


def loss_plot(config: LossPlotConfig) -> LossPlot:
    """A plot of the scalars the recipe reports (losses and more) over training (matplotlib, headless)."""
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
        import torch
        from ignite.engine import Events

        from dltoolkit.images import image_grid, save_png

        if run.train_dataset is None:
            raise DltkError("callbacks: 'real-samples' needs a recipe that trains on a dataset")
        out = run.ensure_dir() / SAMPLES / "real.png"

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
            run.recorder.image("real", grid, 0, out)

        engine.add_event_handler(Events.STARTED, write)


def real_samples(config: RealSamplesConfig) -> RealSamples:
    """A grid of real training images, written once for comparison."""
    return RealSamples(config)


@hookimpl
def dltk_register_callbacks() -> list[Component]:
    return [
        Component("samples", samples, SamplesConfig, needs={"recipe": "sample"}),
        Component("progress-gif", progress_gif, GifConfig, needs={"recipe": "sample"}),
        Component("loss-plot", loss_plot, LossPlotConfig),
        Component("real-samples", real_samples, RealSamplesConfig, needs={"dataset": "images"}),
    ]
