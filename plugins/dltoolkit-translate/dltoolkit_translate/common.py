"""What pix2pix and CycleGAN share: the learning-rate schedule, the image pool, the preview grids,
and ``dltk predict`` on image files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from torch import Tensor, nn

from dltoolkit import DataSpec, DltkError, Run
from dltoolkit.files import SAMPLES
from dltoolkit.images import check_images, image_files, image_grid, read_image, save_png, to_signed_unit

TRANSLATIONS_PREFIX = "translations_"
BATCH = 64


def lr_factor(epoch: int, epochs: int, decay_epochs: int) -> float:
    """The reference's linear policy for 1-based ``epoch``: 1 for the first ``epochs - decay_epochs``
    epochs, then ``1 - (epoch - (epochs - decay_epochs)) / (decay_epochs + 1)`` (lambda_rule in
    networks.py, stepped once an epoch). ``decay_epochs`` beyond ``epochs`` (a run shortened with
    ``recipe.epochs=1``) decay over every epoch."""
    decay_epochs = min(decay_epochs, epochs)
    constant = epochs - decay_epochs
    return 1.0 - max(0, epoch - constant) / float(decay_epochs + 1)


def set_lr(optimizers: list[torch.optim.Optimizer], lr: float) -> None:
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = lr


def place(module: nn.Module, run: Run) -> nn.Module:
    module = module.to(run.device)
    if idist.get_world_size() > 1:
        module = idist.auto_model(module)
    return module


class ImagePool:
    """The history of generated images a discriminator sees (Shrivastava et al. 2017), as CycleGAN's
    ``ImagePool``: until ``size`` images are stored each new one is stored and returned; then, for
    each image, with probability 1/2 a stored one is returned and replaced by it, else it is
    returned itself. Random draws come from torch's generator (checkpointed with the run), and the
    stored images are a ``state_dict``, so a resumed run continues the same pool."""

    def __init__(self, size: int):
        self.size = size
        self.images: list[Tensor] = []

    def query(self, images: Tensor) -> Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif float(torch.rand(())) > 0.5:
                k = int(torch.randint(0, self.size, ()))
                out.append(self.images[k].clone())
                self.images[k] = image.clone()
            else:
                out.append(image)
        return torch.cat(out)

    def state_dict(self) -> dict[str, Tensor]:
        if not self.images:
            return {"images": torch.zeros(0)}
        return {"images": torch.cat(self.images).cpu()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        stored = state["images"]
        device = self.images[0].device if self.images else None
        self.images = [] if stored.numel() == 0 else [image.unsqueeze(0).to(device) for image in stored]


def move_pools_to(pools: list[ImagePool], device: torch.device) -> None:
    for pool in pools:
        pool.images = [image.to(device) for image in pool.images]


def fixed_inputs(dataset: Any, count: int) -> tuple[Tensor, ...]:
    """The first ``count`` items of ``dataset`` as batched tensors (a fixed preview batch)."""
    return fixed_inputs_range(dataset, 0, min(count, len(dataset)))


def side_by_side(*images: Tensor) -> Tensor:
    """Images ``(N, C_i, H, W)`` joined along the width, grey repeated to RGB where the others are colour."""
    channels = max(int(x.shape[1]) for x in images)
    return torch.cat([x.expand(-1, channels, -1, -1) if x.shape[1] != channels else x for x in images], dim=3)


def in_eval_mode(modules: list[nn.Module], draw: Callable[[], Tensor]) -> Tensor:
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        with torch.no_grad():
            return draw().float().cpu()
    finally:
        for m, mode in zip(modules, modes, strict=True):
            m.train(mode)


def held_out(run: Run) -> Any:
    """The held-out split (training data if it is empty), built without moving the training RNG."""
    with torch.random.fork_rng(devices=[]):
        dataset = run.reference("test")[0]
        return dataset if len(dataset) else run.train_dataset


def attach_grids(engine: Any, run: Run, draw: Callable[[], Tensor], every: int, nrow: int = 1) -> None:
    """Write ``samples/translations_<iteration>.png`` (and TensorBoard) every ``every`` epochs and at the end."""
    from ignite.engine import Events

    def path(engine: Any) -> Path:
        return run.ensure_dir() / SAMPLES / f"{TRANSLATIONS_PREFIX}{engine.state.iteration:08d}.png"

    def write(engine: Any) -> None:
        grid = image_grid(draw(), nrow)
        out = path(engine)
        save_png(grid, out)
        run.recorder.image("translations", grid, engine.state.iteration, out)

    def write_last(engine: Any) -> None:
        if not path(engine).exists():
            write(engine)

    engine.add_event_handler(Events.EPOCH_COMPLETED(every=every), write)
    engine.add_event_handler(Events.COMPLETED, write_last)


# --- dltk predict ---------------------------------------------------------------------------------


def _input_shape(spec: DataSpec | None, which: str) -> tuple[int, int, int]:
    if spec is None or len(spec.shape) != 3:
        raise DltkError("--input: this run does not record the image size its generators take")
    channels, height, width = (int(s) for s in spec.shape)
    a = int(spec.extra.get("input_channels", channels))
    return (a if which == "a" else channels), height, width


def _written(out: Path, name: str) -> Path:
    path = out / f"{name}.png"
    k = 1
    while path.exists():
        path = out / f"{name}-{k}.png"
        k += 1
    return path


def make_predict(
    generators: dict[str, tuple[nn.Module, str]], device: torch.device, spec: DataSpec | None, default: str
) -> Callable[..., Iterator[dict[str, Any]]]:
    """``predict(path, dataset, out=None, **direction)``: translate image files (or a split's inputs) and
    write each translation as a PNG into ``out``, one row per image (``input``, ``output``).

    ``generators`` maps a direction (``AtoB``, ``BtoA``) to its generator and the side it reads
    (``"a"`` or ``"b"``); ``default`` is the direction used when none is given."""

    def translate(images: Tensor, generator: nn.Module) -> Tensor:
        return in_eval_mode([generator], lambda: generator(images.to(device)))

    def predict(
        path: Path | None, dataset: Any, out: Path | None = None, direction: str | None = None
    ) -> Iterator[dict[str, Any]]:
        chosen = direction or default
        if chosen not in generators:
            raise DltkError(f"--direction: '{chosen}' is not a direction of this run; choose {' or '.join(generators)}")
        generator, side = generators[chosen]
        if out is None:
            raise DltkError("--out: translations are images; give a folder (--out DIR)")
        if dataset is not None:
            column = 0 if side == "a" else 1
            for start in range(0, len(dataset), BATCH):
                batch = fixed_inputs_range(dataset, start, min(len(dataset), start + BATCH))
                fakes = translate(batch[column], generator)
                for offset, fake in enumerate(fakes):
                    written = _written(out, f"{start + offset:05d}")
                    save_png(image_grid(fake.unsqueeze(0), 1), written)
                    yield {"input": start + offset, "output": written.name}
            return
        assert path is not None
        shape = _input_shape(spec, side)
        files = image_files(Path(path), what="--input")
        problems = check_images(files, what="--input")
        if problems:
            raise DltkError(problems)
        for start in range(0, len(files), BATCH):
            chunk = files[start : start + BATCH]
            images = torch.stack(
                [to_signed_unit(read_image(f, channels=shape[0], size=shape[1:], what="--input")) for f in chunk]
            )
            for file, fake in zip(chunk, translate(images, generator), strict=True):
                written = _written(out, Path(file).stem)
                save_png(image_grid(fake.unsqueeze(0), 1), written)
                yield {"input": str(file), "output": written.name}

    return predict


def fixed_inputs_range(dataset: Any, start: int, stop: int) -> tuple[Tensor, ...]:
    """Items ``start`` to ``stop - 1`` of ``dataset`` as batched tensors (cut by ``__getitems__`` when it has one)."""
    index = list(range(start, stop))
    if hasattr(dataset, "__getitems__"):
        return tuple(dataset.__getitems__(index))
    items = [dataset[i] for i in index]
    return tuple(torch.stack([torch.as_tensor(item[k]) for item in items]) for k in range(len(items[0])))
