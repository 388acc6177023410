"""Drawing images from a trained model that maps noise to images: fixed noise, eval mode, batches."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

NOISE_BLOCK = 1 << 22
"""Noise numbers drawn at once when sampling in batches (16 MiB of float32)."""


class ImageSampler:
    """How recipes, callbacks, metrics and ``dltk generate`` draw images from a trained model.

    ``decode`` maps noise ``(N, noise_dim)`` drawn from N(0, I) to images in [-1, 1] (the
    decoding half of a generative model). Sampling runs in eval mode without gradients and restores the
    module's mode afterwards; noise comes from its own seeded ``torch.Generator`` so drawing
    samples never disturbs the training RNG.
    """

    def __init__(self, decode: nn.Module, noise_dim: int, device: torch.device | str):
        # never through DistributedDataParallel: its forward is a collective, and only rank 0 samples
        self.module = decode.module if isinstance(decode, nn.parallel.DistributedDataParallel) else decode
        self.noise_dim = noise_dim
        self.device = torch.device(device)

    def noise(self, n: int, seed: int) -> Tensor:
        """``n`` noise vectors, the same for the same seed on every device."""
        rng = torch.Generator().manual_seed(seed)
        return torch.randn(n, self.noise_dim, generator=rng).to(self.device)

    @torch.no_grad()
    def generate(self, z: Tensor) -> Tensor:
        """Images in [-1, 1] (float32) for the noise batch ``z``."""
        was_training = self.module.training
        self.module.eval()
        try:
            return self.module(z.to(self.device)).float()
        finally:
            self.module.train(was_training)

    def batches(self, n: int, *, seed: int, batch_size: int = 256) -> Iterator[Tensor]:
        """``n`` images in batches of at most ``batch_size``; the same ``seed`` gives the same images.

        Memory stays constant in ``n``: beyond ``NOISE_BLOCK`` numbers the noise is drawn a block
        at a time from one seeded random stream (``dltk generate --num 2000000000`` holds one block).
        """
        rows = max(batch_size, NOISE_BLOCK // max(self.noise_dim, 1))
        if n <= rows:  # one draw: the noise every earlier version drew for this seed
            z = self.noise(n, seed)
            for start in range(0, n, batch_size):
                yield self.generate(z[start : start + batch_size])
            return
        rng = torch.Generator().manual_seed(seed)
        for block in range(0, n, rows):
            z = torch.randn(min(rows, n - block), self.noise_dim, generator=rng).to(self.device)
            for start in range(0, len(z), batch_size):
                yield self.generate(z[start : start + batch_size])
