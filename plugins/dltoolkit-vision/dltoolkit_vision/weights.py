"""Starting weights of torchvision models, offline: a local file, checked by sha256 before training and
read with ``weights_only=True``. Nothing is ever downloaded."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dltoolkit import DltkError
from dltoolkit.files import sha256_file

HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,})\.pth$")


def official_weights(arch: str) -> tuple[str, str]:
    """``(file name, url)`` of the weights torchvision would download for ``arch`` (its default weights)."""
    import torchvision

    url = str(torchvision.models.get_model_weights(arch).DEFAULT.url)
    return url.rsplit("/", 1)[-1], url


def check_weights(config: Any, where: str = "model") -> list[str]:
    """Problems with a ``torchvision`` model's ``weights_path`` (none when it is unset or fine).

    The file must be there; its sha256 must be ``weights_sha256`` when given, else start with the
    hash prefix in the name of torchvision's own file for ``arch`` (as torch.hub checks it).
    """
    if config.weights_path is None:
        return []
    path = Path(config.weights_path)
    name, url = official_weights(config.arch)
    if not path.is_file():
        return [
            f"{where}.weights_path: no file '{path}'; {config.arch} starts from torchvision's weights file "
            f"{name} (torchvision would download it from {url}; nothing is downloaded here): put that file "
            f"there, or set {where}.weights_path to a local copy ({where}.weights_sha256 for other weights)"
        ]
    actual = sha256_file(path)
    if config.weights_sha256 is not None:
        if actual != config.weights_sha256.lower():
            return [f"{where}.weights_sha256: '{path}' has sha256 {actual}, not {config.weights_sha256}"]
        return []
    match = HASH_IN_NAME.search(name)
    if match is None or not actual.startswith(match.group(1)):
        return [
            f"{where}.weights_path: '{path}' is not torchvision's {config.arch} weights {name} (its sha256 "
            f"{actual} does not start with {match.group(1) if match else '?'}); to start from other weights set "
            f'{where}.weights_sha256 = "{actual}"'
        ]
    return []


def load_state_dict(path: Path) -> dict[str, Any]:
    """The tensors of a state-dict file, loaded with ``weights_only=True`` (never running pickled code)."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DltkError(
            f"model.weights_path: '{path}' refused: not a state dict that loads with weights_only=True ({first})"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DltkError(f"model.weights_path: '{path}' refused: not a state dict of tensors")
    return state
