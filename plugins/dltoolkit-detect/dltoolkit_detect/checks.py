"""The torchvision detectors' check of their weights files: run by ``dltk check`` and when a run starts,
before anything is built. Light: no torch here (``dltk check`` never imports it)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

# torchvision's own files (their names carry the start of their sha256, as torch.hub checks it)
OFFICIAL = {
    "fasterrcnn_mobilenet_v3_large_fpn": ("fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth",),
    "ssdlite320_mobilenet_v3_large": ("ssdlite320_mobilenet_v3_large_coco-a79551df.pth",),
    "retinanet_resnet50_fpn": ("retinanet_resnet50_fpn_coco-eeacb38b.pth",),
}
OFFICIAL_BACKBONES = {
    "fasterrcnn_mobilenet_v3_large_fpn": ("mobilenet_v3_large-8738ca79.pth", "mobilenet_v3_large-5c1a4163.pth"),
    "ssdlite320_mobilenet_v3_large": ("mobilenet_v3_large-8738ca79.pth", "mobilenet_v3_large-5c1a4163.pth"),
    "retinanet_resnet50_fpn": ("resnet50-0676ba61.pth", "resnet50-11ad3fa6.pth"),
}
HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,})\.pth$")


def sha256_file(path: Path) -> str:
    """A file's sha256 hex digest (``dltoolkit.files.sha256_file`` imports torch; ``dltk check`` must not)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _official(path: Path, names: tuple[str, ...], actual: str) -> bool:
    """Whether ``path`` is one of torchvision's files: its name, and a sha256 starting with the hash in it."""
    match = HASH_IN_NAME.search(path.name)
    return path.name in names and match is not None and actual.startswith(match.group(1))


def check_weights(config: Any, where: str, arch: str) -> list[str]:
    """Problems with the weights files a torchvision detector names: each must be there, and have its
    ``*_sha256`` (which torchvision's own files, kept under their names, need not give)."""
    problems = []
    for key, names in (
        ("weights_path", OFFICIAL.get(arch, ())),
        ("backbone_weights_path", OFFICIAL_BACKBONES.get(arch, ())),
    ):
        value = getattr(config, key)
        if value is None:
            continue
        sha_key = key.replace("_path", "_sha256")
        expected = getattr(config, sha_key)
        path = Path(value)
        if not path.is_file():
            problems.append(
                f"{where}.{key}: no file '{path}' (nothing is downloaded: put the weights file there, or leave "
                f"{where}.{key} out to start from random weights)"
            )
            continue
        actual = sha256_file(path)
        if expected is None and not _official(path, names, actual):
            problems.append(f"{where}.{sha_key}: missing; set it to the sha256 of '{path}' ({sha_key} = \"{actual}\")")
        elif expected is not None and actual != expected.lower():
            problems.append(f"{where}.{sha_key}: '{path}' has sha256 {actual}, not {expected}")
    return problems


def check_detector(config: Any, *, where: str, tables: Any, stage: str) -> list[str]:
    """The weights files, at ``dltk check`` and when a run starts (not on resume: the checkpoint holds the weights)."""
    arch = str(tables["model"].name)
    problems = [
        f"{where}.{key}: {arch} resizes every image to 320x320 itself; leave {where}.{key} out"
        for key in ("min_size", "max_size")
        if arch.startswith("ssdlite") and getattr(config, key)
    ]
    return problems if stage == "resume" else problems + check_weights(config, where, arch)
