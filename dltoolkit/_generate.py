"""Images from a trained generator, and exporting it: no dataset, no discriminator needed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from dltoolkit import _checkpoint
from dltoolkit._config import validate_options
from dltoolkit._data import to_uint8
from dltoolkit._errors import DltkError
from dltoolkit._registry import Registry
from dltoolkit._run import resolve_device
from dltoolkit._sampling import ImageSampler

EXPORT_FORMAT = "dltoolkit-generator/1"


def checkpoint_of(run_dir: Path) -> Path:
    """The checkpoint a run directory stands for: its best, else its last readable one."""
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        raise DltkError(f"{run_dir}: not a run directory (no checkpoints/ folder)")
    best = _checkpoint.best_checkpoint_in(folder)
    if best is not None:
        return best
    found = _checkpoint.checkpoints_in(folder)
    if not found:
        raise DltkError(f"{run_dir}: the run has no checkpoint yet")
    return found[0]


def _build_generator(registry: Registry, meta: dict[str, Any], source: Path) -> tuple[torch.nn.Module, int]:
    name = meta.get("model")
    if not isinstance(name, str):
        raise DltkError(f"{source}: no model name in its metadata: not a dltoolkit generator")
    problem = registry.problem_with("model", name)
    if problem is not None:
        raise DltkError(f"{source}: model: {problem}")
    component = registry.get("model", name)
    try:
        options = json.loads(meta.get("model_options", "{}"))
        shape = tuple(int(v) for v in meta["image_shape"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DltkError(f"{source}: unreadable model metadata: {exc}") from None
    config = validate_options(component, options, str(source))
    model = component.build(config, image_shape=shape)
    return model.generator, int(model.latent_dim)


def load_generator(registry: Registry, source: Path, device: torch.device) -> tuple[ImageSampler, dict[str, Any]]:
    """An :class:`ImageSampler` for SOURCE (a run directory, a checkpoint, or an exported file) and its metadata."""
    source = Path(source)
    if not source.exists():
        raise DltkError(f"{source}: no such run directory or file")
    if source.is_dir():
        source = checkpoint_of(source)
    if source.suffix == ".safetensors":
        state, meta = _read_export(source)
    else:
        data = _checkpoint.load_checkpoint(source)
        if "generator" not in data:
            raise DltkError(f"{source}: the checkpoint holds no generator")
        state, meta = data["generator"], dict(data["meta"])
    generator, latent_dim = _build_generator(registry, meta, source)
    try:
        generator.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise DltkError(f"{source}: the weights do not fit model '{meta.get('model')}': {first}") from None
    generator.to(device).eval()
    return ImageSampler(generator, latent_dim, device), meta


def _read_export(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = dict(handle.metadata() or {})
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise DltkError(f"{path}: not a readable safetensors file: {exc}") from None
    if meta.get("format") != EXPORT_FORMAT:
        raise DltkError(f"{path}: not a dltoolkit generator export (metadata format {meta.get('format')!r})")
    try:
        meta["image_shape"] = json.loads(meta["image_shape"])
    except (KeyError, ValueError):
        raise DltkError(f"{path}: not a dltoolkit generator export (no image_shape)") from None
    return state, meta


def export_generator(registry: Registry, run_dir: Path, out: Path) -> Path:
    """Write the generator of ``run_dir`` to ``out`` (safetensors) with what rebuilds it."""
    from safetensors.torch import save_file

    from dltoolkit import __version__

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DltkError(f"{run_dir}: not a run directory")
    source = checkpoint_of(run_dir)
    data = _checkpoint.load_checkpoint(source)
    if "generator" not in data:
        raise DltkError(f"{source}: the checkpoint holds no generator")
    meta = dict(data["meta"])
    _build_generator(registry, meta, source)  # refuse now what could not be rebuilt later
    if Path(out).is_dir():
        raise DltkError(f"--out: '{out}' is a folder; give a file name such as generator.safetensors")
    state = {k: v.contiguous() for k, v in data["generator"].items()}
    metadata = {
        "format": EXPORT_FORMAT,
        "model": str(meta["model"]),
        "model_options": str(meta.get("model_options", "{}")),
        "image_shape": json.dumps(list(meta["image_shape"])),
        "latent_dim": str(meta.get("latent_dim", "")),
        "dataset": str(meta.get("dataset", "")),
        "seed": str(meta.get("seed", 0)),
        "dltoolkit_version": __version__,
        "source": str(source),
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".tmp-{out.name}")
    save_file(state, str(tmp), metadata=metadata)
    tmp.replace(out)
    return source


def generate_images(
    registry: Registry,
    source: Path,
    *,
    num: int,
    out: Path,
    seed: int = 0,
    grid: bool = False,
    batch_size: int = 256,
    device: str = "auto",
) -> int:
    """Write ``num`` PNG files (and ``grid.png``) from SOURCE's generator; return how many."""
    from dltoolkit.builtin.callbacks import image_grid, save_png

    if num < 1:
        raise DltkError(f"--num: must be at least 1, got {num}")
    if batch_size < 1:
        raise DltkError(f"--batch-size: must be at least 1, got {batch_size}")
    try:
        torch_device = resolve_device(device)
    except DltkError as exc:
        raise DltkError(f"--device: {str(exc).split(': ', 1)[-1]}") from None
    except RuntimeError:
        raise DltkError(f"--device: unknown device '{device}': use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from None
    sampler, _meta = load_generator(registry, source, torch_device)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DltkError(f"--out: '{out}' is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    width = max(4, len(str(num - 1)))
    kept = []
    index = 0
    for images in sampler.batches(num, seed=seed, batch_size=batch_size):
        images = images.cpu()
        for image in images:
            save_png(to_uint8(image), out / f"{index:0{width}d}.png")
            index += 1
        if grid and sum(len(k) for k in kept) < 256:
            kept.append(images)
    if grid:
        all_images = torch.cat(kept)[:256]
        save_png(image_grid(all_images, nrow=max(1, int(len(all_images) ** 0.5))), out / "grid.png")
    return index
