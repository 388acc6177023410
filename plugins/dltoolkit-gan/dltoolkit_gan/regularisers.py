"""StyleGAN2's regularisers and adaptive augmentation, as the ``gan`` recipe's step uses them.

* :func:`r1_penalty`: R1 (Mescheder et al. 2018), ``|grad_x D(x)|^2`` per real image;
* :func:`path_length_penalty`: path-length regularisation (Karras et al. 2020), ``(|J_w^T y| - a)^2``
  per generated image, with the moving mean ``a``;
* :class:`AdaptiveAugment`: ADA's probability ``p`` (Karras et al. 2020, "Training generative
  adversarial networks with limited data"), tuned from the overfitting signal
  ``r_t = E[sign(D(x_real))]``, applying the DiffAugment policies of ``augment.py`` to each image
  with probability ``p``.

The state that must survive a restart (the path-length mean, ``p`` and its running statistics)
lives in the buffers of :class:`RegulariserState`, which checkpoints hold; the randomness comes
from torch's global RNG, which checkpoints also hold, so a resumed run continues bit-exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from dltoolkit_gan.augment import POLICIES


def r1_penalty(discriminator: Callable[[Tensor], Tensor], real: Tensor) -> Tensor:
    """``|grad_x sum D(x)|^2`` for each real image ``x`` (``(N,)``), with the graph kept so that it
    trains D. The R1 loss is ``gamma / 2`` times its mean (NVlabs' ``loss_Dr1``)."""
    real = real.detach().requires_grad_(True)
    scores = discriminator(real).float()
    (grad,) = torch.autograd.grad(scores.sum(), real, create_graph=True)
    return grad.square().sum(dim=tuple(range(1, grad.dim())))


def path_length_penalty(images: Tensor, ws: Tensor, mean: Tensor, decay: float) -> tuple[Tensor, Tensor]:
    """Path-length regularisation of images ``(N, C, H, W)`` generated from styles ``ws``
    ``(N, num_ws, w_dim)``: with ``y ~ N(0, 1) / sqrt(H * W)`` over the pixels, the lengths
    ``|J_w^T y| = sqrt(mean over style inputs of |grad_w sum(images * y)|^2)``, the new moving mean
    ``a = mean + decay * (mean(lengths) - mean)`` and the penalties ``(lengths - a)^2``.

    Returns ``(penalties (N,), a)``; ``a`` is detached, for the caller to store."""
    noise = torch.randn_like(images) / math.sqrt(images.shape[2] * images.shape[3])
    (grad,) = torch.autograd.grad((images * noise).sum(), ws, create_graph=True)
    lengths = grad.square().sum(dim=2).mean(dim=1).sqrt()
    new_mean = mean.lerp(lengths.mean().detach(), decay)
    return (lengths - new_mean).square(), new_mean


def augment_with_probability(x: Tensor, policies: Sequence[str], p: float) -> Tensor:
    """Each policy applied to each image with probability ``p`` (one draw per image and policy)."""
    if p <= 0:
        return x
    for name in policies:
        keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < p
        x = torch.where(keep, POLICIES[name](x), x)
    return x


class RegulariserState(nn.Module):
    """What the regularisers carry from step to step, as buffers (a checkpoint holds them):
    ``pl_mean``, the path-length moving mean; ``augment_p``, ADA's probability; ``signs`` and
    ``count``, the sum of ``sign(D(x_real))`` and the number of real images since ``p`` last moved."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("pl_mean", torch.zeros((), dtype=torch.float32))
        self.register_buffer("augment_p", torch.zeros((), dtype=torch.float64))
        self.register_buffer("signs", torch.zeros((), dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))


class AdaptiveAugment:
    """ADA's adaptive probability over ``state`` (a :class:`RegulariserState`).

    :meth:`observe` adds a batch's real scores; :meth:`adjust`, every ``interval`` iterations,
    moves ``p`` by ``sign(r_t - target) * images / (kimg * 1000)``, ``images`` being those
    observed since the last move, and clamps it to [0, 1] (NVlabs' ``ada_stats`` rule)."""

    def __init__(self, state: RegulariserState, policies: Sequence[str], target: float, kimg: float):
        self.state, self.policies, self.target, self.kimg = state, tuple(policies), target, kimg

    @property
    def p(self) -> float:
        return float(self.state.augment_p)

    def __call__(self, x: Tensor) -> Tensor:
        return augment_with_probability(x, self.policies, self.p)

    @torch.no_grad()
    def observe(self, d_real: Tensor) -> None:
        self.state.signs += d_real.detach().sign().sum().to(self.state.signs)
        self.state.count += d_real.numel()

    @torch.no_grad()
    def adjust(self, all_reduce: Callable[[Tensor], Tensor] | None = None) -> float:
        """Move ``p`` from the statistics gathered (summed over processes by ``all_reduce``); returns ``r_t``."""
        stats = torch.stack([self.state.signs, self.state.count])
        if all_reduce is not None:
            stats = all_reduce(stats)
        signs, count = (float(v) for v in stats)
        if count == 0:
            return 0.0
        r_t = signs / count
        step = ((r_t > self.target) - (r_t < self.target)) * count / (self.kimg * 1000.0)
        self.state.augment_p.copy_(torch.clamp(self.state.augment_p + step, 0.0, 1.0))
        self.state.signs.zero_()
        self.state.count.zero_()
        return r_t


def lazy_adam(lr: float, betas: tuple[float, float], interval: int | None) -> tuple[float, tuple[float, float]]:
    """Adam's learning rate and betas for a network regularised lazily every ``interval`` steps:
    ``lr * c`` and ``beta ** c`` with ``c = interval / (interval + 1)`` (NVlabs' ``mb_ratio``), so
    that the regularisation steps do not make the optimiser faster overall; unchanged without one."""
    if not interval:
        return lr, betas
    c = interval / (interval + 1)
    return lr * c, (betas[0] ** c, betas[1] ** c)
