"""Resource limits: inputs that would ask for more memory than this machine has are refused, by
name and in one line, before anything is allocated.

* a model is first built on torch's ``meta`` device (shapes, no storage): its parameter bytes are
  compared with the memory available, and options that cannot build at all are reported;
* an in-memory image dataset compares what resizing would hold with the memory available;
* ``run.device`` is checked against what this machine has by ``dltk check`` as by ``dltk run``.

The memory available is ``MemAvailable`` of ``/proc/meminfo`` (Linux) or, for CUDA, the device's
free memory; elsewhere nothing is refused.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dltoolkit._errors import DltkError

if TYPE_CHECKING:
    import torch

GIB = 1 << 30
SHARE = 0.9
"""Refuse what would take more than this share of the memory available."""


def gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB"


def available_memory() -> int | None:
    """Bytes of memory this process could still allocate (None where unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def device_memory(device: Any) -> int | None:
    """Free bytes on ``device``: CUDA's own count, else the machine's memory."""
    import torch

    if torch.device(device).type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(torch.device(device))[0])
        except (RuntimeError, AssertionError):
            return None
    return available_memory()


def resolve_device(name: str) -> torch.device:
    """``run.device`` as a torch device; one line when this machine lacks it."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DltkError(f"run.device: '{name}' requested but CUDA is not available here")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise DltkError(f"run.device: '{name}' requested but this machine has {torch.cuda.device_count()} CUDA devices")
    if device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise DltkError(f"run.device: '{name}' requested but MPS is not available here")
    return device


def check_device(recipe_file: Any) -> None:
    """``run.device`` against what this machine has (imports torch only for an explicit accelerator)."""
    name = recipe_file.run.device
    if name in ("auto", "cpu"):
        return
    try:
        resolve_device(name)
    except DltkError as exc:
        raise DltkError(f"{recipe_file.path}: {p}" for p in exc.problems) from None


def build_model_checked(build: Callable[[], Any], *, name: str, device: Any, source: str) -> None:
    """Build the model once on the ``meta`` device: options that cannot build (sizes that overflow)
    and parameters larger than the memory available are :class:`DltkError`; nothing is allocated.

    A factory that cannot build on ``meta`` for reasons of its own (it loads a weights file, say)
    is not judged here."""
    import torch

    try:
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            model = build()
    except DltkError:
        return  # the factory's own refusal: the real build says it, with the recipe file's name
    except (RuntimeError, ValueError, OverflowError, MemoryError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "overflow" in text.lower() or isinstance(exc, (OverflowError, MemoryError)):
            raise DltkError(f"{source}: model: '{name}' cannot be built with these options: {text}") from None
        return
    except Exception:  # not ours to judge; the real build reports it
        return
    tensors = {id(t): t for m in _modules_of(model) for t in (*m.parameters(), *m.buffers())}
    needed = sum(t.numel() * t.element_size() for t in tensors.values())
    free = device_memory(device)
    if free is not None and needed > SHARE * free:
        raise DltkError(
            f"{source}: model: '{name}' with these options needs {gib(needed)} of parameters; "
            f"this machine has {gib(free)} available (choose smaller sizes)"
        )


def _modules_of(model: Any) -> list[Any]:
    """The ``torch.nn.Module`` objects a factory returned: the model, or those it holds."""
    import torch

    if isinstance(model, torch.nn.Module):
        return [model]
    if isinstance(model, dict):
        values = list(model.values())
    elif isinstance(model, (list, tuple)):
        values = list(model)
    else:
        values = list(getattr(model, "__dict__", {}).values())
        slots = getattr(type(model), "__slots__", ())
        values += [getattr(model, s) for s in slots if isinstance(s, str) and hasattr(model, s)]
    return [v for v in values if isinstance(v, torch.nn.Module)]


def check_memory(needed: int, what: str, advice: str = "") -> None:
    """Refuse, in one line starting with ``what`` (an option, a flag or a file), work that would need
    ``needed`` bytes of memory when this machine has not that much available (more than
    :data:`SHARE` of ``MemAvailable``); ``advice`` ends the message. Where the memory available is
    unknown, nothing is refused."""
    free = available_memory()
    if free is not None and needed > SHARE * free:
        tail = f" ({advice})" if advice else ""
        raise DltkError(f"{what} needs about {gib(needed)} of memory; this machine has {gib(free)} available{tail}")


def check_images_fit(count: int, shape: tuple[int, int, int], size: int, chunk: int) -> None:
    """An in-memory dataset of ``count`` images of ``shape`` resized to ``size``: what it would hold
    (uint8) plus the float buffers of one resize chunk, against the memory available."""
    channels, height, width = shape
    held = count * channels * size * size
    part = min(count, chunk) * channels * 4
    working = part * (height * width + size * size)
    needed = held + working
    free = available_memory()
    if free is not None and needed > SHARE * free:
        raise DltkError(
            f"dataset.image_size: {size} would hold {count} images of {channels}x{size}x{size} in memory and need "
            f"{gib(needed)} while resizing; this machine has {gib(free)} available (use a smaller image_size, or "
            "image-folder, which reads images one at a time)"
        )


def check_disk_for_files(folder: Path, count: int, bytes_each: int, what: str) -> None:
    """Refuse to write ``count`` files of about ``bytes_each`` bytes under ``folder`` when its file
    system has not the room or the free inodes for them (``what`` says which option asked)."""
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        stats = os.statvfs(probe)
    except (OSError, AttributeError):
        return
    free = stats.f_bavail * stats.f_frsize
    needed = count * bytes_each
    if needed > free:
        raise DltkError(f"{what}: {count} files need about {gib(needed)} on disk; {gib(free)} is free under '{probe}'")
    if stats.f_files and count > stats.f_favail:
        raise DltkError(f"{what}: {count} files, but the file system under '{probe}' has room for {stats.f_favail}")
