"""torchvision's detectors by name, for the ``detect`` recipe, started only from local weights files.

torchvision's builders download weights when asked for them; here they are always called with
``weights=None, weights_backbone=None`` and the files named in the recipe are loaded by
:meth:`TorchvisionDetector.load_pretrained` (sha256 checked first, ``weights_only=True``). With a
weights file the backbone's batch norm is frozen (``FrozenBatchNorm2d``), as torchvision builds
detectors whose backbone was trained.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dltoolkit import DataSpec, DltkError
from dltoolkit_detect.options import TorchvisionDetectorConfig

# arch -> (module whose backbone builder is patched, that builder's name, the losses' groups)
ARCHS: dict[str, tuple[str, str, dict[str, str]]] = {
    "fasterrcnn_mobilenet_v3_large_fpn": (
        "torchvision.models.detection.faster_rcnn",
        "mobilenet_v3_large",
        {"loss_classifier": "classification", "loss_objectness": "classification",
         "loss_box_reg": "localization", "loss_rpn_box_reg": "localization"},
    ),
    "ssdlite320_mobilenet_v3_large": (
        "torchvision.models.detection.ssdlite",
        "mobilenet_v3_large",
        {"classification": "classification", "bbox_regression": "localization"},
    ),
    "retinanet_resnet50_fpn": (
        "torchvision.models.detection.retinanet",
        "resnet50",
        {"classification": "classification", "bbox_regression": "localization"},
    ),
}  # fmt: skip


def load_state_dict(path: Path, where: str) -> dict[str, Tensor]:
    """The tensors of a state-dict file, loaded with ``weights_only=True`` (never running pickled code)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DltkError(
            f"{where}: '{path}' refused: not a state dict that loads with weights_only=True ({first})"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]  # a torchvision reference-scripts checkpoint
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise DltkError(f"{where}: '{path}' refused: not a state dict of tensors")
    return state


def _builder_kwargs(arch: str, config: TorchvisionDetectorConfig) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if arch.startswith("fasterrcnn"):
        kwargs.update(box_score_thresh=config.score_threshold, box_detections_per_img=config.max_detections)
    else:
        kwargs.update(score_thresh=config.score_threshold, detections_per_img=config.max_detections)
    if not arch.startswith("ssdlite"):  # ssdlite320 takes 320x320 images, always
        if config.min_size:
            kwargs["min_size"] = config.min_size
        if config.max_size:
            kwargs["max_size"] = config.max_size
    return kwargs


@contextlib.contextmanager
def _backbone_patched(arch: str, config: TorchvisionDetectorConfig, captured: list[nn.Module]) -> Iterator[None]:
    """While building ``arch``: its backbone classifier built as torchvision builds it for trained
    weights (frozen batch norm; ssdlite's full tail for a backbone file), and kept in ``captured``:
    the detector's backbone layers are that classifier's modules, so loading its state dict later
    is what ``weights_backbone=`` does."""
    from torchvision.ops.misc import FrozenBatchNorm2d

    module_name, name, _ = ARCHS[arch]
    module = importlib.import_module(module_name)
    original = getattr(module, name)
    trained = config.weights_path is not None or config.backbone_weights_path is not None

    def build_backbone(*args: Any, weights: Any = None, **kwargs: Any) -> nn.Module:
        if trained and kwargs.get("norm_layer") is nn.BatchNorm2d:
            kwargs["norm_layer"] = FrozenBatchNorm2d
        if "reduced_tail" in kwargs and config.backbone_weights_path is not None:
            kwargs["reduced_tail"] = False  # ImageNet's mobilenet_v3_large has the full tail
        backbone = original(*args, weights=None, **kwargs)
        captured.append(backbone)
        return backbone

    setattr(module, name, build_backbone)
    try:
        yield
    finally:
        setattr(module, name, original)


def build_net(arch: str, num_classes: int, config: TorchvisionDetectorConfig) -> tuple[nn.Module, nn.Module]:
    """torchvision's ``arch`` with ``num_classes`` outputs (background included), no weights
    downloaded; and the backbone classifier whose modules its backbone holds."""
    import torchvision

    captured: list[nn.Module] = []
    with _backbone_patched(arch, config, captured):
        builder = getattr(torchvision.models.detection, arch)
        net = builder(weights=None, weights_backbone=None, num_classes=num_classes, **_builder_kwargs(arch, config))
    return net, captured[0]


class TorchvisionDetector(nn.Module):
    """A torchvision detector behind the ``detect`` recipe's contract: images in [-1, 1] (it gives the
    detector [0, 1]), labels 0..K-1 (the detector's are 1..K, 0 its background)."""

    def __init__(self, arch: str, num_classes: int, config: TorchvisionDetectorConfig):
        super().__init__()
        self.arch = arch
        self.config = config
        self.num_classes = num_classes
        self.loss_groups = dict(ARCHS[arch][2])
        self.net, _ = build_net(arch, num_classes + 1, config)

    def forward(self, images: Sequence[Tensor], targets: Sequence[dict[str, Tensor]] | None = None):  # type: ignore[override]
        inputs = [(image + 1.0) / 2.0 for image in images]
        if self.training:
            shifted = [{"boxes": t["boxes"], "labels": t["labels"] + 1} for t in targets or ()]
            return self.net(inputs, shifted)
        return [{**p, "labels": p["labels"] - 1} for p in self.net(inputs)]

    def load_pretrained(self) -> None:
        """Load the starting weights files (called once before a fresh run trains, never on resume)."""
        config = self.config
        if config.backbone_weights_path is not None:
            state = load_state_dict(Path(config.backbone_weights_path), "model.backbone_weights_path")
            fresh, classifier = build_net(self.arch, self.num_classes + 1, config)
            try:
                classifier.load_state_dict(state)
            except RuntimeError as exc:
                first = str(exc).strip().splitlines()[0]
                raise DltkError(
                    f"model.backbone_weights_path: '{config.backbone_weights_path}' is not "
                    f"{ARCHS[self.arch][1]} weights ({first})"
                ) from None
            self.net.backbone.load_state_dict(fresh.backbone.state_dict())
        if config.weights_path is not None:
            state = load_state_dict(Path(config.weights_path), "model.weights_path")
            own = self.net.state_dict()
            fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
            if not fits:
                raise DltkError(
                    f"model.weights_path: '{config.weights_path}' holds no weights of {self.arch} "
                    f"(none of its {len(state)} tensors has a name and shape of this detector)"
                )
            self.net.load_state_dict(fits, strict=False)


def _factory(arch: str):
    def build(config: TorchvisionDetectorConfig, *, data: DataSpec) -> TorchvisionDetector:
        if not data.num_classes:
            raise DltkError(f"model: {arch} needs images with boxes and classes, the dataset gives {data.describe()}")
        model = TorchvisionDetector(arch, int(data.num_classes), config)
        model.spec = data  # type: ignore[assignment]
        return model

    build.__name__ = arch
    build.__doc__ = f"torchvision's {arch}, num_classes from the data, weights from local files only."
    return build


fasterrcnn_mobilenet_v3_large_fpn = _factory("fasterrcnn_mobilenet_v3_large_fpn")
ssdlite320_mobilenet_v3_large = _factory("ssdlite320_mobilenet_v3_large")
retinanet_resnet50_fpn = _factory("retinanet_resnet50_fpn")
