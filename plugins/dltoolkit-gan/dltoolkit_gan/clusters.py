"""Self-conditioning (Liu et al. 2020): clusters of the training images stand in for labels.

The ``gan`` recipe, given a model built with ``model.clusters = k``, finds ``k`` clusters in the
training images by k-means (:func:`kmeans`, on the images average-pooled to a small size), trains the
model class-conditionally on the cluster of each image (:class:`ClusterLabelled`), and keeps the
share of each cluster (:class:`ClusterShares`, a module checkpoints and exports carry) so that
samples draw each cluster as often as the data holds it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from dltoolkit import DltkError
from dltoolkit_gan.options import CLUSTER_SIDE

KMEANS_ITERATIONS = 50
"""Lloyd iterations at most (k-means stops earlier once no image changes cluster): about 0.5 s each
on one CPU thread for 60,000 MNIST digits pooled to 16x16 and 50 clusters."""
CHUNK = 4096
"""Images per block of the distance computation (bounds its memory on large datasets)."""


def cluster_names(k: int) -> tuple[str, ...]:
    """The class names of ``k`` clusters, what ``dltk generate --label`` accepts."""
    return tuple(f"cluster {i}" for i in range(k))


def images_at(dataset: Any, index: list[int]) -> Tensor:
    """The images of ``dataset`` at ``index`` as one batch: through ``__getitems__`` when it has one
    (an in-memory dataset's ``(images, labels)``, or PyTorch's list of samples), else item by item."""
    getitems = getattr(dataset, "__getitems__", None)
    items = getitems(index) if getitems is not None else [dataset[i] for i in index]
    if isinstance(items, tuple):  # a batch cut at once: (images, labels)
        return items[0]
    return torch.stack([torch.as_tensor(item[0]) for item in items])


def pooled_images(dataset: Any, side: int = CLUSTER_SIDE, batch: int = 1024) -> Tensor:
    """Every image of ``dataset`` as one float row ``(N, C * s * s)``, average-pooled so that no side
    exceeds ``side`` pixels (``s = min(H, side)``), read in batches (:func:`images_at`)."""
    rows = []
    n = len(dataset)
    for start in range(0, n, batch):
        images = images_at(dataset, list(range(start, min(n, start + batch)))).float()
        if images.shape[-1] > side or images.shape[-2] > side:
            images = F.adaptive_avg_pool2d(images, (min(side, images.shape[-2]), min(side, images.shape[-1])))
        rows.append(images.flatten(1))
    return torch.cat(rows)


def _nearest(x: Tensor, centres: Tensor) -> tuple[Tensor, Tensor]:
    """For each row of ``x``: the index of its nearest centre and the squared distance to it."""
    index, distance = [], []
    c2 = (centres * centres).sum(1)
    for block in x.split(CHUNK):
        d = (block * block).sum(1, keepdim=True) - 2 * block @ centres.T + c2
        best = d.min(dim=1)
        index.append(best.indices)
        distance.append(best.values.clamp_min(0))
    return torch.cat(index), torch.cat(distance)


def kmeans(x: Tensor, k: int, *, seed: int, iterations: int = KMEANS_ITERATIONS) -> Tensor:
    """The cluster (0 to ``k - 1``) of each row of ``x`` ``(N, D)``: k-means++ seeding (Arthur &
    Vassilvitskii 2007) then Lloyd's iterations until no row moves (``iterations`` at most).
    Deterministic for a given ``seed`` and thread count; draws from its own generator, never the
    global RNG. An emptied cluster takes the row farthest from its centre among the clusters of
    more than one row, so every cluster keeps at least one."""
    if not 1 <= k <= len(x):
        raise ValueError(f"k-means of {len(x)} images into {k} clusters: k must be in [1, {len(x)}]")
    x = x.float()
    generator = torch.Generator().manual_seed(seed)
    first = int(torch.randint(len(x), (1,), generator=generator))
    centres = x[first : first + 1]
    _, distance = _nearest(x, centres)
    for _ in range(1, k):
        total = float(distance.sum())
        pick = int(torch.multinomial(distance / total, 1, generator=generator)) if total > 0 else len(centres)
        centres = torch.cat([centres, x[pick : pick + 1]])
        distance = torch.minimum(distance, ((x - x[pick]) ** 2).sum(1))
    assignment = torch.full((len(x),), -1, dtype=torch.int64)
    for _ in range(iterations):
        new, distance = _nearest(x, centres)
        counts = torch.bincount(new, minlength=k)
        for empty in torch.nonzero(counts == 0).flatten().tolist():
            # the farthest row of a cluster that keeps others starts it anew (k <= N: one exists)
            movable = counts[new] > 1
            far = int(torch.where(movable, distance, torch.full_like(distance, -1.0)).argmax())
            counts[new[far]] -= 1
            new[far], distance[far] = empty, 0.0
            counts[empty] += 1
        if torch.equal(new, assignment):
            break
        assignment = new
        sums = torch.zeros_like(centres).index_add_(0, assignment, x)
        centres = sums / counts.clamp_min(1).unsqueeze(1).to(x.dtype)
    return assignment


class ClusterShares(nn.Module):
    """The share of the training images in each cluster (buffer ``shares``, summing to 1): what a
    self-conditioned run's samples draw clusters by. A module, so checkpoints and exports carry it."""

    def __init__(self, k: int):
        super().__init__()
        self.register_buffer("shares", torch.full((k,), 1.0 / k))  # float32: every device has it

    def set(self, assignment: Tensor) -> None:
        counts = torch.bincount(assignment, minlength=len(self.shares)).to(self.shares.dtype)
        self.shares.copy_(counts / counts.sum())

    def labels(self, n: int) -> Tensor:
        """``n`` cluster indices in contiguous blocks sized by the shares (row ``i`` draws the
        cluster whose cumulative share first exceeds ``(i + 0.5) / n``): deterministic, so the
        same seed gives the same samples, and a grid shows one cluster after another."""
        edges = torch.cumsum(self.shares.detach().cpu().double(), 0)
        points = (torch.arange(n, dtype=torch.float64) + 0.5) / n
        return torch.searchsorted(edges, points).clamp_max(len(edges) - 1)


class ClusterAssignment:
    """The cluster of every training image, a checkpointed object: a resumed run trains on exactly
    the clusters it started with, whatever k-means would give on another machine."""

    def __init__(self, assignment: Tensor):
        self.assignment = assignment

    def state_dict(self) -> dict[str, Tensor]:
        return {"assignment": self.assignment}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        loaded = state["assignment"]
        if loaded.shape != self.assignment.shape:
            raise DltkError(
                f"the checkpoint's clusters are of {len(loaded)} images, the dataset has {len(self.assignment)}"
            )
        self.assignment.copy_(loaded)


class ClusterLabelled(Dataset):
    """``dataset``'s images, each labelled with its cluster (read from ``assignment`` at each access,
    so a resume's loaded clusters take effect)."""

    def __init__(self, dataset: Any, assignment: Tensor):
        self.dataset, self.assignment = dataset, assignment

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.dataset[index][0], self.assignment[index]

    def __getitems__(self, indices: Iterable[int]) -> tuple[Tensor, Tensor]:
        index = list(indices)
        return images_at(self.dataset, index), self.assignment[torch.as_tensor(index, dtype=torch.int64)]
