"""The classifiers: LeNet, He et al.'s CIFAR ResNets (and ResNet-18), and any torchvision classification model.

Each is an ``nn.Module`` mapping images ``(N, C, H, W)`` in [-1, 1] to class logits ``(N, K)``,
the object the ``classify`` recipe trains (its models provide ``"classifier"``).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dltoolkit import DataSpec, DltkError
from dltoolkit_vision.options import LenetConfig, ResnetConfig, TorchvisionConfig
from dltoolkit_vision.weights import load_state_dict

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_CLASSES = 1000


def num_classes_of(data: DataSpec, model: str) -> int:
    """The class count a model is built for; a :class:`DltkError` for data without labels."""
    if not data.num_classes:
        raise DltkError(f"model.name: the model '{model}' classifies, but the data ({data.describe()}) has no labels")
    return int(data.num_classes)


# --- LeNet ------------------------------------------------------------------------------------------


class LeNet(nn.Module):
    """LeNet-5 in its modern form: two 5x5 convolutions (padded, so any size from 8x8 up fits), each
    followed by ReLU and 2x2 max pooling, then two hidden dense layers and the class layer."""

    def __init__(self, config: LenetConfig, image_shape: tuple[int, int, int], num_classes: int):
        super().__init__()
        channels, height, width = image_shape
        c1, c2 = config.channels
        h1, h2 = config.hidden

        def block(cin: int, cout: int) -> list[nn.Module]:
            norm: list[nn.Module] = [nn.BatchNorm2d(cout)] if config.batch_norm else []
            return [nn.Conv2d(cin, cout, 5, padding=2, bias=not config.batch_norm), *norm, nn.ReLU(), nn.MaxPool2d(2)]

        self.features = nn.Sequential(*block(channels, c1), *block(c1, c2))
        flat = c2 * (height // 4) * (width // 4)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, h1),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(h1, h2),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(h2, num_classes),
        )

    def forward(self, images: Tensor) -> Tensor:
        return self.classifier(self.features(images))


def build_lenet(config: LenetConfig, data: DataSpec) -> LeNet:
    num_classes = num_classes_of(data, "lenet")
    shape = tuple(data.shape)
    if len(shape) != 3 or min(shape[1:]) < 4:
        raise DltkError(f"model.name: 'lenet' needs images of at least 4x4, got {data.describe()}")
    return LeNet(config, (shape[0], shape[1], shape[2]), num_classes)


# --- CIFAR ResNets ------------------------------------------------------------------------------------


class ShortcutA(nn.Module):
    """He et al.'s option A: subsample, then pad the new channels with zeros (no parameters)."""

    def __init__(self, extra_channels: int):
        super().__init__()
        self.extra = extra_channels

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, ::2, ::2]
        half = self.extra // 2
        return F.pad(x, (0, 0, 0, 0, half, self.extra - half))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a residual connection."""

    def __init__(self, cin: int, cout: int, stride: int, projection: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            if projection:
                self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
            else:
                self.shortcut = ShortcutA(cout - cin)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """A ResNet for small images: a 3x3 stem (no max pooling), stages of basic blocks, global average
    pooling, one dense class layer.

    Depth 6n+2: He et al. (2016), section 4.2: three stages of n blocks at ``width``, 2x and 4x
    channels, parameter-free shortcuts (ResNet-20 has 0.27M parameters). Depth 18: four stages of
    two blocks at ``width`` to 8x channels with projection shortcuts (11M parameters).
    """

    def __init__(self, depth: int, width: int | None, in_channels: int, num_classes: int):
        super().__init__()
        if depth == 18:
            widths, blocks, projection = [width or 64], [2, 2, 2, 2], True
        else:
            widths, blocks, projection = [width or 16], [(depth - 2) // 6] * 3, False
        widths = [widths[0] * 2**i for i in range(len(blocks))]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()
        )
        layers: list[nn.Module] = []
        cin = widths[0]
        for stage, (cout, count) in enumerate(zip(widths, blocks, strict=True)):
            for index in range(count):
                stride = 2 if stage > 0 and index == 0 else 1
                layers.append(BasicBlock(cin, cout, stride, projection))
                cin = cout
        self.stages = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, images: Tensor) -> Tensor:
        features = self.stages(self.stem(images))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(features, 1), 1))


def build_resnet(config: ResnetConfig, data: DataSpec) -> CifarResNet:
    return CifarResNet(config.depth, config.width, int(data.shape[0]), num_classes_of(data, "resnet"))


# --- torchvision models -----------------------------------------------------------------------------


def torchvision_archs() -> list[str]:
    """The classification models torchvision ships (not detection, segmentation, video, quantized)."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def arch_problem(arch: str, where: str = "model") -> str | None:
    """Why ``arch`` is not a torchvision classification model (with suggestions), or None."""
    archs = torchvision_archs()
    if arch in archs:
        return None
    close = difflib.get_close_matches(arch, archs, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return (
        f"{where}.arch: '{arch}' is not a classification model torchvision ships{hint}; "
        "see torchvision.models.list_models(module=torchvision.models)"
    )


def find_head(net: nn.Module) -> tuple[str, nn.Module]:
    """The ImageNet class layer of a torchvision model: its last dense (or 1x1 conv) layer of 1,000 outputs."""
    found = None
    for name, module in net.named_modules():
        dense = isinstance(module, nn.Linear) and module.out_features == IMAGENET_CLASSES
        pointwise = isinstance(module, nn.Conv2d) and module.out_channels == IMAGENET_CLASSES
        if dense or (pointwise and module.kernel_size == (1, 1)):
            found = (name, module)
    if found is None:
        raise TypeError(f"{type(net).__name__}: no class layer of {IMAGENET_CLASSES} outputs found to replace")
    return found


def new_head(old: nn.Module, num_classes: int) -> nn.Module:
    if isinstance(old, nn.Linear):
        return nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    assert isinstance(old, nn.Conv2d)
    return nn.Conv2d(old.in_channels, num_classes, 1, bias=old.bias is not None)


class TorchvisionClassifier(nn.Module):
    """A torchvision classification model with its class layer replaced for ``num_classes``.

    Its state dict is the torchvision model's (prefixed ``net.``), with the new head. Grey
    images are repeated to three channels; with ``imagenet_normalize`` images go from [-1, 1]
    to ImageNet's mean and std first. With ``freeze_backbone`` only the head trains: every
    other parameter is frozen and the backbone stays in eval mode, so its batch-norm statistics
    and dropout do not change either.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, config: TorchvisionConfig, in_channels: int, num_classes: int):
        super().__init__()
        import torchvision

        self.arch = config.arch
        self.weights_path = config.weights_path
        self.weights_sha256 = config.weights_sha256
        self.frozen = config.freeze_backbone
        self.normalize = config.imagenet_normalize
        self.in_channels = in_channels
        self.net = torchvision.models.get_model(config.arch, weights=None)
        self.head_name, old = find_head(self.net)
        parent_name, _, attribute = self.head_name.rpartition(".")
        parent = self.net.get_submodule(parent_name) if parent_name else self.net
        setattr(parent, attribute, new_head(old, num_classes))
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        if self.frozen:
            for parameter in self.net.parameters():
                parameter.requires_grad_(False)
            for parameter in self._head.parameters():
                parameter.requires_grad_(True)
        self.train()

    @property
    def _head(self) -> nn.Module:
        return self.net.get_submodule(self.head_name)

    def train(self, mode: bool = True) -> TorchvisionClassifier:
        super().train(mode)
        if self.frozen:
            self.net.eval()
            self._head.train(mode)
        return self

    def forward(self, images: Tensor) -> Tensor:
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        if self.normalize:
            images = ((images + 1.0) * 0.5 - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        out: Any = self.net(images)
        if not isinstance(out, Tensor):  # googlenet and inception_v3 give (logits, aux logits) when training
            out = out.logits if hasattr(out, "logits") else out[0]
        return out

    def load_pretrained(self) -> None:
        """Load ``weights_path`` (checked by sha256, read with ``weights_only=True``) into every layer
        but the head; the file's own class layer (ImageNet's 1,000 classes) is left out."""
        if self.weights_path is None:
            return
        path = Path(self.weights_path)
        state = load_state_dict(path)
        head_keys = {f"{self.head_name}.{k}" for k in self._head.state_dict()}
        kept = {k: v for k, v in state.items() if k not in head_keys}
        current = self.net.state_dict()
        wrong = [k for k, v in kept.items() if k in current and tuple(v.shape) != tuple(current[k].shape)]
        missing = sorted(set(current) - set(kept) - head_keys)
        unexpected = sorted(set(kept) - set(current))
        if wrong or missing or unexpected:
            parts = []
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
                if keys:
                    parts.append(f"{label} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}")
            raise DltkError(f"model.weights_path: '{path}' does not fit torchvision's {self.arch}: {'; '.join(parts)}")
        self.net.load_state_dict(kept, strict=False)


def build_torchvision(config: TorchvisionConfig, data: DataSpec) -> TorchvisionClassifier:
    problem = arch_problem(config.arch)
    if problem is not None:
        raise DltkError(problem)
    num_classes = num_classes_of(data, "torchvision")
    if data.kind != "images" or len(data.shape) != 3 or data.shape[0] not in (1, 3):
        raise DltkError(f"model.name: 'torchvision' needs grey or RGB images, got {data.describe()}")
    return TorchvisionClassifier(config, int(data.shape[0]), num_classes)


# --- the model components' factories -----------------------------------------------------------------


def _with_spec(model: Any, data: DataSpec) -> Any:
    model.spec = data  # class names and input size, for dltk predict on a rebuilt model
    return model


def lenet(config: LenetConfig, *, data: DataSpec) -> LeNet:
    """LeNet-5 (two 5x5 convolutions, three dense layers) for small images, 8x8 to 32x32, grey or colour."""
    return _with_spec(build_lenet(config, data), data)


def resnet(config: ResnetConfig, *, data: DataSpec) -> CifarResNet:
    """A CIFAR-style ResNet: ResNet-20 (depth 6n+2, He et al. 2016) or ResNet-18, for small images."""
    return _with_spec(build_resnet(config, data), data)


def torchvision_model(config: TorchvisionConfig, *, data: DataSpec) -> TorchvisionClassifier:
    """Any torchvision classification model by name, new head; local starting weights for transfer learning."""
    return _with_spec(build_torchvision(config, data), data)
