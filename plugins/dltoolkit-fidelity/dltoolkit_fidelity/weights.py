"""The feature extractor and its weights: found, verified and loaded without running pickled code."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from dltoolkit import DltkError
from dltoolkit.files import sha256_file
from dltoolkit_fidelity.options import INCEPTION

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_SHA256_PREFIX = "6726825d"  # torch.hub convention: the file name carries its sha256 prefix
_EXTRACTORS: dict[tuple[str, str, str, tuple[str, ...]], Any] = {}


def hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def download_inception(dest: Path) -> None:
    """Fetch torch-fidelity's Inception weights into ``dest`` (torch hub's downloader)."""
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    dest.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(URL_INCEPTION_V3, str(dest), progress=False)


def resolve_weights(config: Any, where: str) -> tuple[Path | None, str]:
    """The weights file of ``config`` and its sha256; a clear :class:`DltkError` when unusable.

    For the default Inception: ``weights_path`` or the torch hub cache, downloaded there when
    ``download`` allows; the official file's hash is checked unless ``weights_sha256`` names the
    file's own hash. For other registered extractors, ``weights_path`` is optional.
    """
    if config.feature_extractor != INCEPTION and config.weights_path is None:
        return None, ""
    path = Path(config.weights_path) if config.weights_path else hub_checkpoint_dir() / INCEPTION_FILE
    if not path.is_file() and config.weights_path is None and config.download:
        try:
            download_inception(path)
        except Exception as exc:  # no network, proxy, HTTP error: all the same to the user
            reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            path.unlink(missing_ok=True)
            raise DltkError(_missing(where, path, f"the download failed ({reason.rstrip(': ')})")) from None
    if not path.is_file():
        why = "it is not there" if config.weights_path else "it is not there and download = false"
        raise DltkError(_missing(where, path, why))
    actual = sha256_file(path)
    if config.weights_sha256:
        if actual != config.weights_sha256.lower():
            raise DltkError(
                f"{_key(where, 'weights_sha256')}: '{path}' has sha256 {actual}, not {config.weights_sha256}"
            )
    elif config.feature_extractor == INCEPTION and not actual.startswith(INCEPTION_SHA256_PREFIX):
        raise DltkError(
            f"{_key(where, 'weights_path')}: '{path}' is not the official Inception weights file (its sha256 "
            f"{actual} does not start with {INCEPTION_SHA256_PREFIX}); to use other weights set "
            + (f'{where}.weights_sha256 = "{actual}"' if where.startswith("metrics.") else f"--weights-sha256 {actual}")
        )
    return path, actual


def _key(where: str, option: str) -> str:
    """How the user sets ``option``: a recipe key (``metrics.0.weights_path``) or a flag of ``dltk eval``."""
    return f"{where}.{option}" if where.startswith("metrics.") else f"--{option.replace('_', '-')}"


def _missing(where: str, path: Path, why: str) -> str:
    how = "set" if where.startswith("metrics.") else "give"
    return (
        f"{where}: needs the Inception weights file {INCEPTION_FILE} at '{path}', but {why}; "
        f"put the file in {hub_checkpoint_dir()} (the torch hub cache under $TORCH_HOME), or {how} "
        f"{_key(where, 'weights_path')} to a local copy (and {_key(where, 'weights_sha256')} for weights other "
        "than the official file)"
    )


def _safe_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DltkError(f"{path}: refused: not a plain state dict that loads with weights_only=True ({exc})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DltkError(f"{path}: refused: not a state dict of tensors")
    return state


def load_extractor(name: str, features: tuple[str, ...], path: Path | None, sha: str, device: torch.device) -> Any:
    """A torch-fidelity feature extractor (cached per process), its weights loaded safely.

    torch-fidelity itself reads a local weights file with ``weights_only=False``; we load it
    with ``weights_only=True`` and hand torch-fidelity a copy holding only those tensors.
    """
    import torch_fidelity  # noqa: F401  (registers the built-in extractors)
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    key = (name, sha, str(device), features)
    if key in _EXTRACTORS:
        return _EXTRACTORS[key]
    if name not in FEATURE_EXTRACTORS_REGISTRY:
        raise DltkError(f"feature_extractor: '{name}' is not registered with torch-fidelity")
    cls = FEATURE_EXTRACTORS_REGISTRY[name]
    kwargs: dict[str, Any] = {"verbose": False}
    if path is not None:
        state = _safe_state_dict(path)
        fd, tmp = tempfile.mkstemp(suffix=".pth")
        os.close(fd)
        try:
            torch.save(state, tmp)
            extractor = cls(name, list(features), feature_extractor_weights_path=tmp, **kwargs)
        finally:
            os.unlink(tmp)
    else:
        extractor = cls(name, list(features), **kwargs)
    extractor = extractor.to(device).eval().requires_grad_(False)
    _EXTRACTORS[key] = extractor
    return extractor
