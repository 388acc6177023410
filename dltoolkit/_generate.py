"""Rebuilding what a finished run offers, from a checkpoint or an export, for any recipe.

The checkpoint (or export) names the recipe that trained it; that recipe's component rebuilds
its :class:`~dltoolkit.Trained` through ``offers(model, device)`` from the recorded model
component, options and data description. Nothing here knows a model family.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from dltoolkit import _checkpoint
from dltoolkit._component import accepted
from dltoolkit._config import validate_options
from dltoolkit._data import to_uint8
from dltoolkit._dataspec import DataSpec
from dltoolkit._errors import DltkError
from dltoolkit._plugin_options import flag_of, refuse_foreign
from dltoolkit._registry import Registry
from dltoolkit._run import model_context, resolve_device
from dltoolkit._rundir import CHECKPOINTS
from dltoolkit._trained import Trained

EXPORT_FORMAT = "dltoolkit-export/1"


def checkpoint_of(run_dir: Path) -> Path:
    """The checkpoint a run directory stands for: its best, else its last readable one."""
    folder = run_dir / CHECKPOINTS
    if not folder.is_dir():
        raise DltkError(f"{run_dir}: not a run directory (no checkpoints/ folder)")
    best = _checkpoint.best_checkpoint_in(folder)
    if best is not None:
        return best
    found = _checkpoint.checkpoints_in(folder)
    if not found:
        raise DltkError(f"{run_dir}: the run has no checkpoint yet")
    return found[0]


MAX_SEED = 2**63 - 1
"""Largest ``--seed`` (what torch.manual_seed takes)."""


def device_option(name: str) -> torch.device:
    """``--device`` of generate, predict and eval, with the problems said as about that flag; only
    devices that hold data (cpu, cuda, mps), not ``meta`` or other pseudo-devices."""
    unknown = f"--device: unknown device '{name}': use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
    try:
        device = resolve_device(name)
    except DltkError as exc:
        raise DltkError(f"--device: {str(exc).split(': ', 1)[-1]}") from None
    except RuntimeError:
        raise DltkError(unknown) from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise DltkError(unknown)
    return device


def _recipe_for(registry: Registry, meta: dict[str, Any], source: Path) -> Any:
    name = meta.get("recipe")
    if not isinstance(name, str):
        raise DltkError(f"{source}: no recipe named in its metadata: not a dltoolkit checkpoint or export")
    problem = registry.problem_with("recipe", name)
    if problem is not None:
        raise DltkError(f"{source}: trained by the '{name}' recipe, which is not available here: {problem}")
    recipe = registry.get("recipe", name)
    if recipe.offers is None:
        raise DltkError(
            f"{source}: the '{name}' recipe offers nothing to rebuild from its runs (no generate, export or eval)"
        )
    return recipe


def _data_of(meta: dict[str, Any], source: Path) -> DataSpec:
    try:
        if meta.get("data"):
            data = DataSpec.from_json(str(meta["data"]))
            if data.vocab and data.vocab_size is not None and len(data.vocab) != data.vocab_size:
                raise ValueError(f"{len(data.vocab)} tokens in vocab but vocab_size is {data.vocab_size}")
            return data
        shape = meta["image_shape"]  # checkpoints and exports written before data descriptions
        return DataSpec.images(json.loads(shape) if isinstance(shape, str) else shape)
    except (ValueError, KeyError, TypeError) as exc:
        raise DltkError(f"{source}: unreadable data description in its metadata: {exc}") from None


def rebuild(registry: Registry, meta: dict[str, Any], source: Path, device: torch.device | str = "cpu") -> Trained:
    """The :class:`Trained` of the recorded recipe and model, with fresh (untrained) weights."""
    recipe = _recipe_for(registry, meta, source)
    name = meta.get("model")
    if not isinstance(name, str):
        raise DltkError(f"{source}: no model name in its metadata")
    problem = registry.problem_with("model", name)
    if problem is not None:
        raise DltkError(f"{source}: model: {problem}")
    component = registry.get("model", name)
    try:
        options = json.loads(meta.get("model_options") or "{}")
    except (ValueError, TypeError) as exc:
        raise DltkError(f"{source}: unreadable model options in its metadata: {exc}") from None
    config = validate_options(component, options, str(source))
    data = _data_of(meta, source)
    context = model_context(data)
    from dltoolkit._limits import build_model_checked

    build_model_checked(  # shapes from metadata someone may have edited: checked before allocating
        lambda: component.build(config, **context), name=name, device=device, source=str(source)
    )
    model = component.build(config, **context)
    context: dict[str, Any] = {"data": data}
    if meta.get("recipe_options"):  # the recipe's own options, for offers(model, device, config=...)
        try:
            recipe_options = json.loads(meta["recipe_options"])
        except (ValueError, TypeError) as exc:
            raise DltkError(f"{source}: unreadable recipe options in its metadata: {exc}") from None
        context["config"] = validate_options(recipe, recipe_options, str(source))
    trained = recipe.offers(model, torch.device(device), **accepted(recipe.offers, context))
    if not isinstance(trained, Trained):
        raise TypeError(f"recipe '{recipe.name}': offers() must return a dltoolkit.Trained, got {trained!r}")
    return trained


def read_source(registry: Registry, source: Path) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any], Path]:
    """``({module: state dict}, metadata, file)`` of a run directory, a checkpoint or an export."""
    source = Path(source)
    if not source.exists():
        raise DltkError(f"{source}: no such run directory or file")
    if source.is_dir():
        source = checkpoint_of(source)
    if source.suffix == ".safetensors":
        states, meta = _read_export(registry, source)
        return states, meta, source
    problem = _checkpoint.verify(source)  # the manifest's sha256, as a resume checks it
    if problem is not None:
        raise DltkError(problem)
    data = _checkpoint.load_checkpoint(source)
    meta = dict(data["meta"])
    names = module_names(meta, source)
    if names is None:  # written before modules were recorded: the recipe's offers() names them
        names = list(rebuild(registry, meta, source).modules)
    missing = [n for n in names if n not in data]
    if missing:
        raise DltkError(f"{source}: the checkpoint holds no {', '.join(missing)}")
    return {n: data[n] for n in names}, meta, source


def load_trained(
    registry: Registry, source: Path, device: torch.device | str = "cpu"
) -> tuple[Trained, dict[str, Any], Path]:
    """What SOURCE's run offers, with its trained weights on ``device``, its metadata and its file."""
    states, meta, path = read_source(registry, source)
    trained = rebuild(registry, meta, path, device)
    for name, module in trained.modules.items():
        if name not in states:
            raise DltkError(f"{path}: holds no weights for '{name}' (it has: {', '.join(states) or 'nothing'})")
        try:
            module.load_state_dict(states[name])
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise DltkError(f"{path}: the weights do not fit model '{meta.get('model')}': {first}") from None
        module.to(device).eval()
    return trained, meta, path


def _read_export(registry: Registry, path: Path) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = dict(handle.metadata() or {})
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise DltkError(f"{path}: not a readable safetensors file: {exc}") from None
    if "sha256" in meta and export_digest(tensors, meta) != meta["sha256"]:
        raise DltkError(
            f"{path}: sha256 of its tensors and metadata does not match the one it carries: altered or truncated"
        )
    fmt = meta.get("format")
    if fmt == EXPORT_FORMAT:
        names = module_names(meta, path)
        if names is None:
            raise DltkError(f"{path}: not a dltoolkit export (no module list)")
        states: dict[str, dict[str, torch.Tensor]] = {n: {} for n in names}
        for key, tensor in tensors.items():
            name, _, rest = key.partition(".")
            if name in states:
                states[name][rest] = tensor
        return states, meta
    for recipe_name in registry.names("recipe"):
        module = registry.components["recipe"][recipe_name].export_formats.get(str(fmt))
        if module is not None:  # an older format a recipe still reads: one module's state dict
            return {module: tensors}, {**meta, "recipe": recipe_name}
    raise DltkError(f"{path}: not a dltoolkit export (metadata format {fmt!r})")


def module_names(meta: dict[str, Any], path: Path) -> list[str] | None:
    """The ``modules`` metadata of a checkpoint or export: None when absent, a :class:`DltkError`
    when it is not a JSON list of names."""
    if "modules" not in meta:
        return None
    try:
        names = json.loads(meta["modules"])
    except (ValueError, TypeError, RecursionError):
        names = None
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise DltkError(f"{path}: its 'modules' metadata is not a list of module names: damaged or not dltoolkit's")
    return names


def export_digest(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """The sha256 an export carries: of its tensors (as safetensors lays them out, which does not
    depend on their order) and of its metadata other than ``sha256`` itself."""
    import hashlib

    from safetensors.torch import save

    digest = hashlib.sha256(save(dict(tensors)))
    digest.update(json.dumps({k: v for k, v in metadata.items() if k != "sha256"}, sort_keys=True).encode())
    return digest.hexdigest()


def export_trained(registry: Registry, source: Path, out: Path, *, force: bool = False) -> Path:
    """Write what SOURCE's run offers to ``out`` (safetensors): its inference modules' weights and
    the metadata that rebuilds them without the dataset or any training-only part, with the
    sha256 of both (checked on load). An existing ``out`` is replaced only with ``force``."""
    from safetensors.torch import save

    from dltoolkit import __version__

    source = Path(source)
    if source.suffix == ".safetensors":
        raise DltkError(f"{source}: already an export; give a run directory or a checkpoint")
    if Path(out).is_dir():
        raise DltkError(f"--out: '{out}' is a folder; give a file name such as model.safetensors")
    if Path(out).suffix != ".safetensors":  # what generate, predict and eval recognise as an export
        raise DltkError(f"--out: '{out}' does not end in .safetensors; name the export such as model.safetensors")
    if Path(out).exists() and not force:
        raise DltkError(f"--out: '{out}' exists; pass --force to replace it")
    trained, meta, path = load_trained(registry, source, "cpu")
    tensors = {
        f"{name}.{key}": value.detach().clone().contiguous()
        for name, module in trained.modules.items()
        for key, value in module.state_dict().items()
    }
    metadata = {
        "format": EXPORT_FORMAT,
        "recipe": str(meta["recipe"]),
        "model": str(meta["model"]),
        "model_options": str(meta.get("model_options", "{}")),
        "data": str(meta.get("data") or _data_of(meta, path).to_json()),
        "modules": json.dumps(list(trained.modules)),
        "recipe_options": str(meta.get("recipe_options", "")),
        "dataset": _without_machine_paths(str(meta.get("dataset", ""))),
        "seed": str(meta.get("seed", 0)),
        "dltoolkit_version": __version__,
        "source": _portable_source(path),
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    metadata["sha256"] = export_digest(tensors, metadata)
    payload = save(tensors, metadata=metadata)
    _checkpoint.atomic_write(out, lambda handle: handle.write(payload))
    return path


def _portable_source(path: Path) -> str:
    """The checkpoint an export came from, without this machine's folders: ``<run>/checkpoints/<file>``
    (a checkpoint outside a run directory: its file name)."""
    path = Path(path)
    if path.parent.name == CHECKPOINTS:
        return f"{path.parent.parent.resolve().name}/{CHECKPOINTS}/{path.name}"
    return path.name


def _without_machine_paths(dataset: str) -> str:
    """The recorded dataset table with its ``root``/``path`` cut to their last part: an export
    names its data but not where it lay on the machine that trained it (``dltk eval`` of an
    export then reads a folder or file of that name from where it runs)."""
    try:
        table = json.loads(dataset)
    except ValueError:
        return dataset
    if not isinstance(table, dict):
        return dataset
    for key in ("root", "path"):
        if isinstance(table.get(key), str) and Path(table[key]).is_absolute():
            table[key] = Path(table[key]).name
    return json.dumps(table)


def _draws_nothing(path: Path, meta: dict[str, Any], trained: Any) -> DltkError:
    what = ", ".join(trained.capabilities()) or "nothing"
    return DltkError(
        f"{path}: the '{meta.get('recipe')}' recipe does not draw samples (its runs offer: {what}); "
        "dltk generate needs one that does"
    )


def generate_images(
    registry: Registry,
    source: Path,
    *,
    num: int | None,
    out: Path,
    seed: int = 0,
    grid: bool = False,
    batch_size: int = 256,
    device: str = "auto",
    options: dict[str, Any] | None = None,
    flags: dict[str, str] | None = None,
    force: bool = False,
) -> str:
    """Write samples of SOURCE's model into ``out``; return what was written, in words.

    Samples already in ``out`` (numbered PNG files, ``grid.png``) are replaced only with ``force``.

    A recipe whose ``Trained`` has ``generate`` writes its own kind of sample (text, a forecast,
    translations of ``options["input"]``) and gets ``options`` by name (those it does not take
    are refused, spelled as ``flags`` says); otherwise ``num`` PNG files (and ``grid.png``) are
    drawn from its image sampler.
    """
    from dltoolkit._images import image_grid, save_png

    options = dict(options or {})
    if num is not None and num < 1:
        raise DltkError(f"--num: must be at least 1, got {num}")
    if not 0 <= seed <= MAX_SEED:
        raise DltkError(f"--seed: must be from 0 to {MAX_SEED} (2^63 - 1), got {seed}")
    if batch_size < 1:
        raise DltkError(f"--batch-size: must be at least 1, got {batch_size}")
    torch_device = device_option(device)
    trained, meta, path = load_trained(registry, source, torch_device)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DltkError(f"--out: '{out}' is a file, not a folder")
    if "input" in options and not Path(options["input"]).exists():
        raise DltkError(f"--input: no such file or folder '{options['input']}'")
    if trained.generate is not None:
        if "label" in options and "label" not in inspect.signature(trained.generate).parameters:
            raise DltkError(f"--label: the '{meta.get('recipe')}' recipe's samples have no classes to choose from")
        if "input" in options and "input" not in inspect.signature(trained.generate).parameters:
            raise DltkError(f"--input: the '{meta.get('recipe')}' recipe does not generate from inputs")
        if grid:
            options["grid"] = True
        refuse_foreign(options, trained.generate, f"the '{meta.get('recipe')}' recipe's runs", flags)
        return write_by_recipe(trained.generate, out, force=force, num=num, seed=seed, **options)
    label = options.pop("label", None)
    if options and trained.sampler is None:
        raise _draws_nothing(path, meta, trained)
    if options:
        shown = ", ".join(flag_of(k, flags) for k in options)
        them = "it" if len(options) == 1 else "them"
        raise DltkError(f"{shown}: the '{meta.get('recipe')}' recipe draws images from noise and does not take {them}")
    if num is None:
        raise DltkError("--num: how many images to draw (for example --num 64)")
    if trained.sampler is None:
        raise _draws_nothing(path, meta, trained)
    classes = tuple(getattr(trained.sampler, "classes", None) or ())
    chosen = {} if label is None else {"label": class_index(classes, str(label), str(meta.get("recipe")))}
    if not force:
        _refuse_to_replace(out)
    _check_room(out, num, _data_of(meta, path))
    out.mkdir(parents=True, exist_ok=True)
    width = max(4, len(str(num - 1)))
    kept = []
    index = 0
    for images in trained.sampler.batches(num, seed=seed, batch_size=batch_size, **chosen):
        images = images.cpu()
        for image in images:
            save_png(to_uint8(image), out / f"{index:0{width}d}.png", durable=False)  # many: renamed, not fsynced
            index += 1
        if grid and sum(len(k) for k in kept) < 256:
            kept.append(images)
    if grid and classes and label is None:  # one row per class, the same noise down each column
        per = min(16, max(1, num // len(classes)))
        rows = [trained.sampler.generate(trained.sampler.noise(per, seed, label=c)) for c in range(len(classes))]
        save_png(image_grid(torch.cat(rows).cpu(), nrow=per), out / "grid.png")
    elif grid:
        all_images = torch.cat(kept)[:256]
        save_png(image_grid(all_images, nrow=max(1, int(len(all_images) ** 0.5))), out / "grid.png")
    return f"{index} images"


def write_by_recipe(generate: Any, out: Path, *, force: bool, **options: Any) -> str:
    """Run a recipe's own ``generate`` (text, forecasts...) into a fresh folder beside ``out``, then
    move what it wrote into ``out``: a file of the same name already there is refused without
    ``force`` (as numbered PNGs are), and a failure leaves ``out`` as it was."""
    parent = out.parent if str(out.parent) else Path(".")
    missing = [p for p in [parent, *parent.parents] if not p.exists()]  # removed again if nothing is written
    parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".dltk-generate-", dir=parent))
    try:
        generate(scratch, **options)
        made = sorted(p.relative_to(scratch) for p in scratch.rglob("*") if p.is_file())
        clash = [name for name in made if (out / name).exists()]
        if clash and not force:
            raise DltkError(
                f"--out: '{out}' already holds {clash[0]}{', ...' if len(clash) > 1 else ''}; "
                "pass --force to replace it"
            )
        for name in made:
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(scratch / name, out / name)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        for folder in missing:  # deepest first; only empty ones go
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return f"{len(made)} file{'s' if len(made) != 1 else ''}"


def _refuse_to_replace(out: Path) -> None:
    """``--out`` already holding samples (``0000.png``, ``grid.png``) is refused without ``--force``."""
    if not out.is_dir():
        return
    for entry in os.scandir(out):
        stem, _, suffix = entry.name.partition(".")
        if suffix == "png" and (stem.isdigit() or stem == "grid"):
            raise DltkError(f"--out: '{out}' already holds samples ({entry.name}, ...); pass --force to replace them")


def _check_room(out: Path, num: int, data: DataSpec) -> None:
    """Refuse ``--num`` images that cannot fit on the disk under ``out`` (a PNG of noise-like pixels
    is about its raw size; plus the file system's block for each file)."""
    from dltoolkit._limits import check_disk_for_files

    pixels = 1
    for size in data.shape:
        pixels *= int(size)
    check_disk_for_files(out, num, pixels // 2 + 4096, "--num")


def class_index(classes: tuple[str, ...], label: str, recipe: str) -> int:
    """The index of ``--label`` (a class name, else an index) among a class-conditional sampler's ``classes``."""
    if not classes:
        raise DltkError(
            f"--label: this '{recipe}' run draws unconditionally (its model was not trained on classes); "
            "--label applies to class-conditional runs"
        )
    if label in classes:
        return classes.index(label)
    folded = [c.casefold() for c in classes]
    if label.casefold() in folded:
        return folded.index(label.casefold())
    if label.isdecimal() and label.isascii() and int(label) < len(classes):
        return int(label)
    shown = ", ".join(classes) if len(classes) <= 20 else ", ".join(classes[:20]) + ", ..."
    raise DltkError(
        f"--label: '{label}' is not a class of this run; give a name or an index from 0 to {len(classes) - 1} ({shown})"
    )
