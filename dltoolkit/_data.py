"""Fast data for small image datasets: decoded once into a uint8 tensor, batched from memory."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset, Sampler, default_collate

from dltoolkit._dataspec import DataSpec


class InMemoryImages(Dataset):
    """Images held as one uint8 tensor ``(N, C, H, W)``, served as floats in [-1, 1].

    Batches are cut from memory by index (``__getitems__``), not built item by item through PIL
    transforms, so an MNIST-size epoch is bound by the model, not the loader.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor | None = None,
        *,
        num_classes: int | None = None,
        class_names: Sequence[str] = (),
    ):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be a uint8 tensor (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        self.images = images.contiguous()
        self.labels = (
            labels.to(torch.int64) if labels is not None else torch.full((len(images),), -1, dtype=torch.int64)
        )
        if num_classes is None and class_names:
            num_classes = len(class_names)
        if num_classes is None and labels is not None and len(self.labels) and int(self.labels.min()) >= 0:
            num_classes = int(self.labels.max()) + 1
        self.spec = DataSpec.images(self.image_shape, num_classes=num_classes, class_names=class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[1:]
        return (int(c), int(h), int(w))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return to_signed_unit(self.images[index]), self.labels[index]

    def __getitems__(self, indices: Sequence[int] | Tensor) -> tuple[Tensor, Tensor]:
        index = torch.as_tensor(indices, dtype=torch.int64)
        return to_signed_unit(self.images[index]), self.labels[index]


def to_signed_unit(images: Tensor) -> Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return images.to(torch.float32).mul_(2.0 / 255.0).sub_(1.0)


def to_uint8(images: Tensor) -> Tensor:
    """float [-1, 1] -> uint8 [0, 255] (clamped, rounded)."""
    return images.detach().add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)


def resize_uint8(images: Tensor, size: int, chunk: int = 2048) -> Tensor:
    """Resize a uint8 ``(N, C, H, W)`` tensor to ``size x size`` (bilinear, antialiased), in chunks."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = torch.empty((images.shape[0], images.shape[1], size, size), dtype=torch.uint8)
    for start in range(0, len(images), chunk):
        part = images[start : start + chunk].to(torch.float32)
        part = F.interpolate(part, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[start : start + chunk] = part.round_().clamp_(0, 255).to(torch.uint8)
    return out


def convert_channels(images: Tensor, channels: int) -> Tensor:
    """uint8 ``(N, C, H, W)`` to 1 (luma) or 3 channels."""
    have = images.shape[1]
    if have == channels:
        return images
    if have == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    if have == 3 and channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images.to(torch.float32) * weights).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)
    raise ValueError(f"cannot convert {have} channels to {channels}")


class EpochBatchSampler(Sampler[Tensor]):
    """Batches of indices in an order fixed by ``(seed, epoch)``, resumable mid-epoch.

    Bound to an Ignite engine (:meth:`bind`), it reads the epoch and how many iterations of it
    are done from the engine's state when an epoch's iteration starts, so a run restored from a
    mid-epoch checkpoint continues with exactly the batches it had not seen. Under
    ``ignite.distributed`` each process takes its own shard of the permutation.
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        *,
        seed: int,
        shuffle: bool = True,
        drop_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.size = size
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.epoch = 1
        self.skip = 0
        self._engine: Any = None

    def bind(self, engine: Any) -> EpochBatchSampler:
        self._engine = engine
        return self

    def _shard_size(self) -> int:
        if self.drop_last:  # training: every rank gets as many batches (a collective step each)
            return self.size // self.world_size
        return (self.size - self.rank + self.world_size - 1) // self.world_size

    def __len__(self) -> int:
        n = self._shard_size()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _position(self) -> tuple[int, int]:
        if self._engine is None:
            return self.epoch, self.skip
        state = self._engine.state
        epoch = max(int(state.epoch), 1)
        done = int(state.iteration) - (epoch - 1) * len(self)
        return epoch, max(done, 0)

    def order(self, epoch: int) -> Tensor:
        """The indices of ``epoch`` (1-based) for this process, before batching."""
        if self.shuffle:
            rng = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            perm = torch.randperm(self.size, generator=rng)
        else:
            perm = torch.arange(self.size)
        return perm[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[Tensor]:
        epoch, skip = self._position()
        perm = self.order(epoch)
        for b in range(skip, len(self)):
            yield perm[b * self.batch_size : (b + 1) * self.batch_size]


def collate(batch: Any) -> Any:
    """Pass through batches an ``InMemoryImages`` cut itself; collate item lists as usual."""
    if isinstance(batch, tuple):
        return batch
    return default_collate(batch)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    seed: int,
    engine: Any = None,
    shuffle: bool = True,
    drop_last: bool = True,
    num_workers: int = 0,
    split_batch: bool = True,
) -> torch.utils.data.DataLoader:
    """A loader over ``dataset`` through ``ignite.distributed.auto_dataloader``, resumable mid-epoch.

    With N processes (``ignite.distributed``), ``batch_size`` is the global batch: each rank
    takes ``batch_size / N`` (it must divide) from its own shard of the epoch's permutation, and
    batch ``b`` of all ranks together holds exactly the samples of batch ``b`` of one process.
    ``split_batch=False`` makes ``batch_size`` per rank (evaluation, where it changes nothing).
    """
    import logging
    import warnings

    import ignite.distributed as idist

    from dltoolkit._errors import DltkError

    logging.getLogger("ignite.distributed.auto.auto_dataloader").setLevel(logging.WARNING)
    world = idist.get_world_size()
    if split_batch and world > 1:
        if batch_size % world:
            raise DltkError(
                f"recipe.batch_size: {batch_size} does not divide among {world} processes; use a multiple of {world}"
            )
        batch_size //= world

    sampler = EpochBatchSampler(
        len(dataset),  # type: ignore[arg-type]
        batch_size,
        seed=seed,
        shuffle=shuffle,
        drop_last=drop_last,
        rank=idist.get_rank(),
        world_size=idist.get_world_size(),
    )
    if engine is not None:
        sampler.bind(engine)
    with warnings.catch_warnings():  # "Found batch_sampler ...": this one takes its rank's shard
        warnings.filterwarnings("ignore", message="Found batch_sampler", category=UserWarning)
        return idist.auto_dataloader(
            dataset,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
            generator=torch.Generator().manual_seed(seed),  # workers' seeds must not draw from the global RNG
        )
