"""Where a trained VAE draws its codes from: an ex-post Gaussian mixture on the training codes.

A VAE trained against N(0, I) does not fill that prior: the means of q(z | x) of the training
images gather in clusters (one or more per digit, say) with gaps between them, and codes drawn
from N(0, I) that fall in a gap decode to something between two digits. Ghosh et al. 2020 ("From
variational to deterministic autoencoders", section 4) fit a density to the training codes after
training instead and sample from it: here a Gaussian mixture, fitted by EM in pure torch.

* :func:`fit_mixture`: the mixture of the codes (k-means++ start, then EM), deterministic for a
  seed;
* :class:`MixturePrior`: the fitted mixture as buffers of an ``nn.Module`` (so checkpoints and
  exports carry it like weights) whose forward maps N(0, I) noise of ``latent_dim + 1`` numbers
  to codes (the first number picks the component, the rest are its Gaussian), so the image
  sampler's seeded noise gives the same samples for the same seed;
* :class:`PriorFitter`: refits the mixture to the encoder of the moment whenever the training
  run reads the prior (a checkpoint, a sample grid, a sample metric) after the weights moved.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Iterator
from typing import Any

import attrs
import numpy as np
import torch
from torch import Tensor, nn

FIT_BATCH = 512
"""Training images encoded at a time when fitting the prior."""


@attrs.frozen
class Mixture:
    """A Gaussian mixture: ``weights (K,)`` summing to 1, ``means (K, D)`` and the lower Cholesky
    factors of the covariances ``scale_tril (K, D, D)`` (diagonal for a diagonal mixture)."""

    weights: Tensor
    means: Tensor
    scale_tril: Tensor

    def log_prob(self, x: Tensor) -> Tensor:
        """The log density of each row of ``x (N, D)`` under the mixture: ``(N,)``."""
        return torch.logsumexp(_component_log_probs(x.double(), self.means.double(), self.scale_tril.double())
                               + self.weights.double().clamp_min(1e-300).log(), dim=1)  # fmt: skip


def _component_log_probs(x: Tensor, means: Tensor, scale_tril: Tensor) -> Tensor:
    """``log N(x_n | means_k, L_k L_k^T)`` for every row and component: ``(N, K)``. One matrix
    product whitens the rows for all components: ``L_k^-1 (x - mu_k) = L_k^-1 x - L_k^-1 mu_k``."""
    k, d = means.shape
    eye = torch.eye(d, dtype=x.dtype, device=x.device).expand(k, d, d)
    inverse = torch.linalg.solve_triangular(scale_tril, eye, upper=False)  # (K, D, D)
    shift = (inverse @ means.unsqueeze(-1)).squeeze(-1)  # (K, D)
    white = (x @ inverse.transpose(1, 2).permute(1, 0, 2).reshape(d, k * d)).view(len(x), k, d) - shift
    log_det = 2.0 * scale_tril.diagonal(dim1=1, dim2=2).log().sum(dim=1)  # (K,)
    return -0.5 * (white.pow(2).sum(dim=2) + log_det + d * math.log(2.0 * math.pi))


def _kmeans_plus_plus(x: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """``k`` starting centres (Arthur & Vassilvitskii 2007): each next one drawn with probability
    proportional to its squared distance from the nearest centre so far."""
    first = int(torch.randint(len(x), (1,), generator=generator))
    centres = [x[first]]
    nearest = (x - x[first]).pow(2).sum(dim=1)
    for _ in range(1, k):
        total = float(nearest.sum())
        if total <= 0.0:  # fewer distinct codes than components: repeat one
            index = int(torch.randint(len(x), (1,), generator=generator))
        else:
            index = int(torch.multinomial(nearest / total, 1, generator=generator))
        centres.append(x[index])
        nearest = torch.minimum(nearest, (x - x[index]).pow(2).sum(dim=1))
    return torch.stack(centres)


def fit_mixture(
    codes: Tensor,
    components: int,
    *,
    covariance: str = "full",
    seed: int = 0,
    iterations: int = 200,
    tolerance: float = 1e-5,
    kmeans_iterations: int = 10,
) -> Mixture:
    """A Gaussian mixture of ``components`` components fitted to the rows of ``codes (N, D)`` by EM.

    Starts from k-means++ centres (seeded by ``seed``) refined by ``kmeans_iterations`` Lloyd
    steps, then alternates EM steps until the mean log-likelihood gains less than ``tolerance``
    nats or after ``iterations``. ``covariance``: ``"full"`` or ``"diagonal"``. Each covariance
    gets ``1e-6`` times the codes' mean variance added to its diagonal (as scikit-learn's
    ``reg_covar``), so a component on a few points stays invertible. In float64 on the codes'
    device; the result is float32 on the CPU. The same codes and seed give the same mixture.
    """
    if covariance not in ("full", "diagonal"):
        raise ValueError(f"covariance must be 'full' or 'diagonal', got {covariance!r}")
    x = codes.detach().double().cpu()
    n, d = x.shape
    if not 1 <= components <= n:
        raise ValueError(f"components must be from 1 to the {n} codes, got {components}")
    generator = torch.Generator().manual_seed(seed)
    reg = 1e-6 * max(float(x.var(dim=0, unbiased=False).mean()), 1e-12)
    eye = torch.eye(d, dtype=x.dtype)

    means = _kmeans_plus_plus(x, components, generator)
    for _ in range(kmeans_iterations):
        assign = torch.cdist(x, means).argmin(dim=1)
        for k in range(components):
            members = x[assign == k]
            if len(members):
                means[k] = members.mean(dim=0)
    assign = torch.cdist(x, means).argmin(dim=1)
    resp = torch.nn.functional.one_hot(assign, components).double()

    previous = -float("inf")
    for step in range(iterations + 1):
        # M step: weights, means and covariances from the responsibilities
        counts = resp.sum(dim=0) + 10.0 * torch.finfo(x.dtype).eps
        weights = counts / counts.sum()
        means = (resp.T @ x) / counts[:, None]
        if covariance == "full":  # E[x x^T] - mu mu^T per component, all in one matrix product
            second = ((resp.unsqueeze(2) * x.unsqueeze(1)).reshape(n, -1).T @ x).view(components, d, d)
            cov = second / counts[:, None, None] - means.unsqueeze(2) * means.unsqueeze(1)
            scale_tril = torch.linalg.cholesky(0.5 * (cov + cov.transpose(1, 2)) + reg * eye)
        else:
            var = (resp.T @ x.pow(2)) / counts[:, None] - means.pow(2)
            scale_tril = torch.diag_embed((var.clamp_min(0.0) + reg).sqrt())
        if step == iterations:
            break
        # E step: responsibilities, and the mean log-likelihood to watch for convergence
        joint = _component_log_probs(x, means, scale_tril) + weights.log()
        total = torch.logsumexp(joint, dim=1, keepdim=True)
        resp = (joint - total).exp()
        current = float(total.mean())
        if current - previous < tolerance:
            break
        previous = current
    return Mixture(weights.float(), means.float(), scale_tril.float())


class MixturePrior(nn.Module):
    """A Gaussian mixture over the latent codes as a module mapping noise to codes.

    Its buffers (``weights (K,)``, ``means (K, D)``, ``scale_tril (K, D, D)``) are what a checkpoint
    and an export hold under ``prior``; before a fit they are one standard normal (weight 1/K
    each, zero means, identity). ``forward(noise)`` takes ``(N, D + 1)`` draws of N(0, I): the
    first column, through the normal CDF, picks component ``k`` by its weight (inverse CDF), the
    other ``D`` give ``means[k] + scale_tril[k] @ eps``. A function of the noise alone: the same
    noise gives the same codes on any device.
    """

    def __init__(self, components: int, latent_dim: int):
        super().__init__()
        self.components = components
        self.latent_dim = latent_dim
        self.noise_dim = latent_dim + 1
        self.register_buffer("weights", torch.full((components,), 1.0 / components))
        self.register_buffer("means", torch.zeros(components, latent_dim))
        self.register_buffer("scale_tril", torch.eye(latent_dim).repeat(components, 1, 1))

    def set(self, mixture: Mixture) -> None:
        """Hold ``mixture`` (of this prior's shape)."""
        with torch.no_grad():
            self.weights.copy_(mixture.weights)
            self.means.copy_(mixture.means)
            self.scale_tril.copy_(mixture.scale_tril)

    def mixture(self) -> Mixture:
        """The mixture it holds."""
        return Mixture(self.weights, self.means, self.scale_tril)

    def forward(self, noise: Tensor) -> Tensor:
        """Codes ``(N, D)`` for noise ``(N, D + 1)`` drawn from N(0, I)."""
        u = torch.special.ndtr(noise[:, 0].float())
        edges = torch.cumsum(self.weights, dim=0)
        k = torch.searchsorted(edges, u.contiguous(), right=True).clamp(max=self.components - 1)
        eps = noise[:, 1:].to(self.means.dtype)
        return self.means[k] + (self.scale_tril[k] @ eps.unsqueeze(-1)).squeeze(-1)


@contextlib.contextmanager
def _rng_untouched() -> Iterator[None]:
    """Leave every RNG a run draws from (torch, numpy, python) as it was: fitting never moves training."""
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def images_at(dataset: Any, index: list[int]) -> Tensor:
    """The images of ``dataset`` at ``index``, stacked."""
    if hasattr(dataset, "__getitems__"):
        return dataset.__getitems__(index)[0]
    return torch.stack([dataset[i][0] for i in index])


class PriorFitter:
    """Keeps a :class:`MixturePrior` fitted to the training codes of the encoder of the moment.

    ``refresh()`` encodes the training images (the means of q(z | x), eval mode, no gradient,
    every RNG left as it was) and fits the mixture again, unless it was already fitted at this
    iteration. :meth:`attach` makes the prior refresh itself whenever it is read during training:
    before its ``state_dict`` (every checkpoint, periodic or best) and before its forward (sample
    grids, sample metrics). The fit is a function of the weights alone, so a resumed run holds the
    same prior as an uninterrupted one.
    """

    def __init__(
        self,
        prior: MixturePrior,
        encoder: nn.Module,
        dataset: Any,
        *,
        covariance: str,
        seed: int,
        device: torch.device,
    ):
        self.prior = prior
        self.encoder = encoder.module if isinstance(encoder, nn.parallel.DistributedDataParallel) else encoder
        self.dataset = dataset
        self.covariance = covariance
        self.seed = seed
        self.device = device
        self.fitted_at: int | None = None
        self.iteration = lambda: 0

    def codes(self) -> Tensor:
        """The means of q(z | x) of every training image, ``(N, latent_dim)``, on the CPU."""
        was_training = self.encoder.training
        self.encoder.eval()
        out = []
        try:
            with _rng_untouched(), torch.no_grad():
                for start in range(0, len(self.dataset), FIT_BATCH):
                    index = list(range(start, min(start + FIT_BATCH, len(self.dataset))))
                    images = images_at(self.dataset, index).to(self.device)
                    out.append(self.encoder(images)[0].float().cpu())
        finally:
            self.encoder.train(was_training)
        return torch.cat(out)

    def refresh(self) -> None:
        """Fit the prior to the current codes, unless already fitted at this iteration."""
        iteration = self.iteration()
        if self.fitted_at == iteration:
            return
        mixture = fit_mixture(self.codes(), self.prior.components, covariance=self.covariance, seed=self.seed)
        self.prior.set(mixture)
        self.fitted_at = iteration

    def attach(self, trainer: Any) -> None:
        """Refresh before every read of the prior while ``trainer`` trains (see the class)."""
        self.iteration = lambda: int(trainer.state.iteration)
        self.prior.register_state_dict_pre_hook(lambda *_: self.refresh())
        self.prior.register_forward_pre_hook(lambda *_: self.refresh())
