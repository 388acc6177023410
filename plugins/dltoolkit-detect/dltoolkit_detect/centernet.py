"""``centernet``: a small anchor-free detector (Zhou et al. 2019, "Objects as Points") that trains from
scratch on a CPU in minutes.

A stride-4 feature map from a short residual network; three heads read it: a heatmap of object
centres per class (penalty-reduced focal loss on Gaussian peaks), the box size and the sub-cell
offset of each centre (L1 at the centres). Decoding keeps the local maxima of the heatmap (a 3x3
max-pool instead of NMS) and reads the size and offset there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dltoolkit import DataSpec, DltkError
from dltoolkit_detect.options import CenterNetConfig

STRIDE = 4
SIZE_WEIGHT = 0.1
MIN_OVERLAP = 0.7


class Block(nn.Module):
    """A residual block of two 3x3 convolutions with batch norm."""

    def __init__(self, width: int, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(y)))


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _head(width: int, out: int, bias: float = 0.0) -> nn.Sequential:
    head = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(width, out, 1))
    nn.init.constant_(head[-1].bias, bias)
    return head


def gaussian_radius(height: float, width: float, min_overlap: float = MIN_OVERLAP) -> float:
    """CenterNet's radius of a centre's Gaussian: the shift of a box of this size that keeps its IoU
    with the true one above ``min_overlap`` (the smallest of the three cases)."""
    a1, b1 = 1.0, height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * a1 * c1)) / 2
    a2, b2 = 4.0, 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2**2 - 4 * a2 * c2)) / 2
    a3, b3 = 4 * min_overlap, -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


class CenterNet(nn.Module):
    """The detector. ``forward(images, targets=None)`` follows torchvision's detectors: ``images`` a
    list of ``(C, H, W)`` tensors in [-1, 1] (sizes may differ; the batch is padded), ``targets`` a
    list of ``{"boxes" (n, 4) x1y1x2y2 pixels, "labels" (n,) 0..K-1}``; in training mode it returns
    the losses ``{"heatmap", "size", "offset"}``, in eval mode one ``{"boxes", "labels", "scores"}``
    per image."""

    loss_groups = {"heatmap": "classification", "size": "localization", "offset": "localization"}

    def __init__(self, channels: int, num_classes: int, config: CenterNetConfig):
        super().__init__()
        width = config.width
        self.num_classes = num_classes
        self.max_detections = config.max_detections
        self.score_threshold = config.score_threshold
        self.stem = nn.Sequential(_conv(channels, width // 2, 2), _conv(width // 2, width, 2))
        self.blocks = nn.Sequential(*[Block(width, dilation=1 + i % 2) for i in range(config.blocks)])
        self.heatmap = _head(width, num_classes, bias=-2.19)  # sigmoid(-2.19) = 0.1: the focal loss's prior
        self.size = _head(width, 2)
        self.offset = _head(width, 2)

    def features(self, batch: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.blocks(self.stem(batch))
        return self.heatmap(x), self.size(x), self.offset(x)

    @staticmethod
    def pad(images: Sequence[Tensor]) -> Tensor:
        """The images as one batch, padded (with -1, black) at the bottom and right to a multiple of the stride."""
        height = max(int(i.shape[1]) for i in images)
        width = max(int(i.shape[2]) for i in images)
        height, width = -(-height // STRIDE) * STRIDE, -(-width // STRIDE) * STRIDE
        batch = images[0].new_full((len(images), int(images[0].shape[0]), height, width), -1.0)
        for n, image in enumerate(images):
            batch[n, :, : image.shape[1], : image.shape[2]] = image
        return batch

    def forward(self, images: Sequence[Tensor], targets: Sequence[dict[str, Tensor]] | None = None):  # type: ignore[override]
        heat, size, offset = self.features(self.pad(images))
        if self.training:
            if targets is None:
                raise ValueError("centernet: targets are needed in training mode")
            return self.losses(heat, size, offset, targets)
        return self.decode(heat, size, offset)

    def encode(self, targets: Sequence[dict[str, Tensor]], shape: tuple[int, int], device: torch.device):
        """Heatmaps ``(N, K, h, w)`` and, at each object's centre cell, its index, size and offset."""
        n, (h, w) = len(targets), shape
        heat = torch.zeros(n, self.num_classes, h, w)
        ys, xs = torch.arange(h, dtype=torch.float32)[:, None], torch.arange(w, dtype=torch.float32)[None, :]
        where, sizes, offsets = [], [], []
        for i, t in enumerate(targets):
            for box, label in zip(t["boxes"].cpu().tolist(), t["labels"].cpu().tolist(), strict=True):
                bw, bh = (box[2] - box[0]) / STRIDE, (box[3] - box[1]) / STRIDE
                if bw <= 0 or bh <= 0:
                    continue
                cx, cy = (box[0] + box[2]) / (2 * STRIDE), (box[1] + box[3]) / (2 * STRIDE)
                ix, iy = min(int(cx), w - 1), min(int(cy), h - 1)
                sigma = (2 * max(0, int(gaussian_radius(math.ceil(bh), math.ceil(bw)))) + 1) / 6
                peak = torch.exp(-((xs - ix) ** 2 + (ys - iy) ** 2) / (2 * sigma**2))
                heat[i, label] = torch.maximum(heat[i, label], peak)
                where.append(i * h * w + iy * w + ix)
                sizes.append([bw, bh])
                offsets.append([cx - ix, cy - iy])
        as_tensor = lambda v: torch.tensor(v, dtype=torch.float32).reshape(-1, 2).to(device)  # noqa: E731
        return (
            heat.to(device),
            torch.tensor(where, dtype=torch.int64, device=device),
            as_tensor(sizes),
            as_tensor(offsets),
        )

    def losses(
        self, heat: Tensor, size: Tensor, offset: Tensor, targets: Sequence[dict[str, Tensor]]
    ) -> dict[str, Tensor]:
        n, _k, h, w = heat.shape
        truth, where, sizes, offsets = self.encode(targets, (h, w), heat.device)
        count = max(len(where), 1)
        p = torch.sigmoid(heat.float()).clamp(1e-4, 1 - 1e-4)
        positive = truth.eq(1).float()
        pos = -(torch.log(p) * (1 - p) ** 2 * positive).sum()
        neg = -(torch.log(1 - p) * p**2 * (1 - truth) ** 4 * (1 - positive)).sum()
        flat = lambda m: m.float().permute(0, 2, 3, 1).reshape(n * h * w, 2)[where]  # noqa: E731
        return {
            "heatmap": (pos + neg) / count,
            "size": SIZE_WEIGHT * F.l1_loss(flat(size), sizes, reduction="sum") / count,
            "offset": F.l1_loss(flat(offset), offsets, reduction="sum") / count,
        }

    def decode(self, heat: Tensor, size: Tensor, offset: Tensor) -> list[dict[str, Tensor]]:
        n, k, h, w = heat.shape
        p = torch.sigmoid(heat.float())
        p = p * (F.max_pool2d(p, 3, stride=1, padding=1) == p)
        top = min(self.max_detections, k * h * w)
        scores, index = p.reshape(n, -1).topk(top)
        labels, cell = index // (h * w), index % (h * w)
        ys, xs = (cell // w).float(), (cell % w).float()
        results = []
        for i in range(n):
            keep = scores[i] > self.score_threshold
            c = cell[i][keep]
            wh = size[i].float().reshape(2, -1)[:, c].T.clamp(min=0)
            off = offset[i].float().reshape(2, -1)[:, c].T
            cx, cy = xs[i][keep] + off[:, 0], ys[i][keep] + off[:, 1]
            boxes = torch.stack([cx - wh[:, 0] / 2, cy - wh[:, 1] / 2, cx + wh[:, 0] / 2, cy + wh[:, 1] / 2], 1)
            results.append({"boxes": boxes * STRIDE, "labels": labels[i][keep], "scores": scores[i][keep]})
        return results


def centernet(config: CenterNetConfig, *, data: DataSpec) -> CenterNet:
    """A small anchor-free detector (CenterNet-style, stride 4) that trains from scratch on a CPU in minutes."""
    if not data.num_classes or len(data.shape) != 3:
        raise DltkError(f"model: centernet needs images with boxes and classes, the dataset gives {data.describe()}")
    model = CenterNet(int(data.shape[0]), int(data.num_classes), config)
    model.spec = data  # type: ignore[assignment]
    return model
