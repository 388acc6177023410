"""The GAN objectives of ``recipe.loss``, on the discriminator's raw outputs (logits or scores).

Each takes the discriminator's outputs on a batch, never probabilities: the BCE losses use
``softplus`` (the numerically stable ``BCEWithLogitsLoss``), the others read a score. See
``LOSSES`` in ``options.py`` for the one-line definitions and papers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def discriminator_loss(loss: str, d_real: Tensor, d_fake: Tensor) -> Tensor:
    """The discriminator's (critic's) loss for outputs ``d_real`` on real and ``d_fake`` on generated images.

    * ``non-saturating`` and ``minimax``: BCE, real as 1 and generated as 0,
      ``softplus(-D(x)) + softplus(D(G(z)))`` (Goodfellow et al. 2014).
    * ``hinge``: ``relu(1 - D(x)) + relu(1 + D(G(z)))`` (Lim & Ye 2017; Miyato et al. 2018).
    * ``least-squares``: ``(D(x) - 1)^2 / 2 + D(G(z))^2 / 2``, targets a=0, b=c=1 (Mao et al. 2017).
    * ``wasserstein-gp``: ``D(G(z)) - D(x)``, the negated Wasserstein estimate; the gradient
      penalty is added by the caller (:func:`gradient_penalty`; Gulrajani et al. 2017).

    Each term is a mean over its batch.
    """
    if loss in ("non-saturating", "minimax"):
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
    if loss == "hinge":
        return F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()
    if loss == "least-squares":
        return 0.5 * (d_real - 1.0).pow(2).mean() + 0.5 * d_fake.pow(2).mean()
    if loss == "wasserstein-gp":
        return d_fake.mean() - d_real.mean()
    raise ValueError(f"unknown GAN loss {loss!r}")


def generator_loss(loss: str, d_fake: Tensor) -> Tensor:
    """The generator's loss for the discriminator's outputs ``d_fake`` on its images.

    * ``non-saturating``: ``softplus(-D(G(z)))`` = ``-log sigmoid(D(G(z)))``.
    * ``minimax``: ``-softplus(D(G(z)))`` = ``log(1 - sigmoid(D(G(z))))``, minimised (it saturates
      when D rejects the samples confidently, Goodfellow's original game).
    * ``hinge`` and ``wasserstein-gp``: ``-D(G(z))``.
    * ``least-squares``: ``(D(G(z)) - 1)^2 / 2``.
    """
    if loss == "non-saturating":
        return F.softplus(-d_fake).mean()
    if loss == "minimax":
        return -F.softplus(d_fake).mean()
    if loss in ("hinge", "wasserstein-gp"):
        return -d_fake.mean()
    if loss == "least-squares":
        return 0.5 * (d_fake - 1.0).pow(2).mean()
    raise ValueError(f"unknown GAN loss {loss!r}")


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor:
    """WGAN-GP's penalty ``mean((|grad_x D(x_hat)|_2 - 1)^2)`` at ``x_hat = e * real + (1 - e) * fake``,
    one ``e ~ U[0, 1]`` per image (Gulrajani et al. 2017, Algorithm 1).

    ``critic`` maps images to one score each (a conditional critic is given with its labels bound).
    The graph is kept (``create_graph``) so that the penalty trains the critic. ``fake`` must be
    detached from the generator.
    """
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    x_hat = (eps * real.detach() + (1.0 - eps) * fake.detach()).requires_grad_(True)
    scores = critic(x_hat).float()
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    norms = grad.flatten(1).norm(2, dim=1)
    return (norms - 1.0).pow(2).mean()
