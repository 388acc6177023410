"""The ``vae`` recipe: maximise the ELBO, with reparameterised samples of z and a warm-up of the KL term."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
import torch.nn.functional as F
from ignite.engine import Engine, Events
from torch import Tensor, nn

from dltoolkit import DltkError, Run, Trained
from dltoolkit.data import make_loader, shard_randn_like
from dltoolkit.files import SAMPLES
from dltoolkit.images import image_grid, save_png
from dltoolkit.sampling import ImageSampler
from dltoolkit_vae.models import ImageFromLogits, VaeModel
from dltoolkit_vae.options import RECONSTRUCTIONS, VaeRecipeConfig
from dltoolkit_vae.prior import MixturePrior, PriorFitter, images_at

RECONSTRUCTION_IMAGES = 32  # a fixed batch of held-out images: 4 pairs of rows of 8
RECONSTRUCTION_ROW = 8
INTERPOLATION_PAIRS = 6
INTERPOLATION_STEPS = 10
RECONSTRUCTION_PREFIX = "reconstructions_"


# --- the objective --------------------------------------------------------------------------


def reparameterize(mu: Tensor, logvar: Tensor) -> Tensor:
    """A sample of z ~ N(mu, exp(logvar)) as ``mu + eps * exp(logvar / 2)``, differentiable in both."""
    return mu + shard_randn_like(mu) * torch.exp(0.5 * logvar)  # N ranks x B/N draw what 1 x B draws


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) of each row, in nats: ``(N, D) -> (N,)``."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def reconstruction_loss(logits: Tensor, images: Tensor, kind: str) -> Tensor:
    """Reconstruction loss of each image, summed over its pixels: ``(N, C, H, W) -> (N,)``.

    ``images`` are in [-1, 1]. ``"bce"``: binary cross-entropy of the logits against the images
    mapped to [0, 1] (a Bernoulli decoder). ``"mse"``: squared error of ``tanh(logits / 2)``, the
    decoded image, against the images (a Gaussian decoder of variance 1/2, up to a constant).
    """
    if kind == "bce":
        per_pixel = F.binary_cross_entropy_with_logits(logits, (images + 1.0) * 0.5, reduction="none")
    elif kind == "mse":
        per_pixel = (torch.tanh(logits * 0.5) - images).pow(2)
    else:
        raise ValueError(f"reconstruction must be one of {RECONSTRUCTIONS}, got {kind!r}")
    return per_pixel.flatten(1).sum(dim=1)


def elbo_terms(encoder: nn.Module, decoder: nn.Module, images: Tensor, kind: str) -> tuple[Tensor, Tensor]:
    """``(reconstruction, kl)`` of each image, with one reparameterised sample of z per image."""
    mu, logvar = encoder(images)
    logits = decoder(reparameterize(mu, logvar))
    return reconstruction_loss(logits.float(), images, kind), kl_divergence(mu.float(), logvar.float())


def kl_weight(iteration: int, beta: float, warmup_iterations: int) -> float:
    """The KL weight at ``iteration`` (1-based): 0 at the first, rising linearly to ``beta`` after
    ``warmup_iterations`` iterations. A function of the iteration alone, so a resumed run continues
    the ramp exactly."""
    if warmup_iterations <= 0:
        return beta
    return beta * min(1.0, (iteration - 1) / warmup_iterations)


def make_vae_step(
    encoder: nn.Module,
    decoder: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    device: torch.device,
    reconstruction: str,
    beta: float,
    kl_warmup_epochs: int,
) -> Callable[[Engine, Any], dict[str, Tensor]]:
    """One VAE iteration: encode, sample z, decode, and take an Adam step on the mean objective.

    Returns ``step(engine, batch)`` giving the detached per-image means of the reported scalars
    (``loss``, ``reconstruction``, ``kl``) and the KL weight ``beta`` in effect.
    """

    def step(engine: Engine, batch: Any) -> dict[str, Tensor]:
        images = batch[0].to(device, non_blocking=True)
        state = engine.state
        weight = kl_weight(state.iteration, beta, kl_warmup_epochs * int(state.epoch_length or 0))
        rec, kl = elbo_terms(encoder, decoder, images, reconstruction)
        rec, kl = rec.mean(), kl.mean()
        loss = rec + weight * kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {
            "loss": loss.detach(),
            "reconstruction": rec.detach(),
            "kl": kl.detach(),
            "beta": torch.tensor(weight, dtype=torch.float64),
        }

    return step


# --- what a trained VAE offers -----------------------------------------------------------------


def make_eval_step(encoder: nn.Module, decoder: nn.Module, device: torch.device) -> Callable[[Any], dict[str, Tensor]]:
    """``eval_step(batch)`` on held-out images: per-image ``elbo`` (the negative ELBO: BCE
    reconstruction + KL, beta 1, one z each), ``reconstruction`` and ``kl``.

    The held-out score is always the Bernoulli ELBO, whatever ``recipe.reconstruction`` and
    ``recipe.beta`` trained the model, so scores of different runs compare.
    """

    def eval_step(batch: Any) -> dict[str, Tensor]:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        rec, kl = elbo_terms(encoder, decoder, images.to(device), "bce")
        return {"elbo": rec + kl, "reconstruction": rec, "kl": kl}

    return eval_step


def make_prior(config: VaeRecipeConfig | None, latent_dim: int) -> MixturePrior | None:
    """The module samples draw their codes through: a :class:`MixturePrior` for ``prior = "mixture"``,
    else None (codes are the N(0, I) noise itself)."""
    if config is None or config.prior != "mixture":
        return None
    return MixturePrior(config.components, latent_dim)


def trained_vae(model: Any, device: torch.device, prior: MixturePrior | None = None) -> Trained:
    """What a trained VAE offers: encoder and decoder (and the mixture ``prior``, if any: exported,
    loaded), a sampler decoding codes drawn from the prior to images, and an ``eval_step`` for the
    held-out ELBO. With a mixture prior the sampler's noise has ``latent_dim + 1`` numbers, which
    the prior maps to codes (see :class:`MixturePrior`)."""
    device = torch.device(device)
    modules = {"encoder": model.encoder, "decoder": model.decoder}
    if prior is None:
        decode = nn.Sequential(model.decoder, ImageFromLogits())
        noise_dim = int(model.latent_dim)
    else:
        modules["prior"] = prior.to(device)
        decode = nn.Sequential(prior, model.decoder, ImageFromLogits())
        noise_dim = prior.noise_dim
    return Trained(
        modules=modules,
        sampler=ImageSampler(decode, noise_dim, device),
        eval_step=make_eval_step(model.encoder, model.decoder, device),
    )


def vae_offers(model: Any, device: torch.device, config: VaeRecipeConfig | None = None) -> Trained:
    """What a trained VAE offers (:func:`trained_vae`), with the prior ``config`` names (a run
    recorded before the ``prior`` option: N(0, I))."""
    return trained_vae(model, device, make_prior(config, int(model.latent_dim)))


# --- reconstructions and interpolations ------------------------------------------------------


def fixed_images(dataset: Any, count: int) -> Tensor:
    """``count`` images of ``dataset`` spread evenly over it (the same ones on every call)."""
    count = min(count, len(dataset))
    return images_at(dataset, torch.linspace(0, len(dataset) - 1, count).round().long().tolist())


class VaeImages:
    """Reconstructions of a fixed batch of held-out images and latent interpolations between pairs
    of them, drawn in eval mode from the means of q(z|x): no random draw, so training's RNG stays put."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, images: Tensor, device: torch.device):
        self.encoder = encoder
        self.decoder = decoder
        self.images = images
        self.device = device
        self.decode = nn.Sequential(decoder, ImageFromLogits())

    def _eval(self, function: Callable[[], Tensor]) -> Tensor:
        modes = [self.encoder.training, self.decoder.training]
        self.encoder.eval()
        self.decoder.eval()
        try:
            with torch.no_grad():
                return function().float().cpu()
        finally:
            self.encoder.train(modes[0])
            self.decoder.train(modes[1])

    def reconstructions(self, nrow: int = RECONSTRUCTION_ROW) -> Tensor:
        """Rows of ``nrow`` images, each followed by a row of their reconstructions (images in [-1, 1])."""

        def draw() -> Tensor:
            images = self.images.to(self.device)
            recon = self.decode(self.encoder(images)[0])
            rows = [torch.cat([images[i : i + nrow], recon[i : i + nrow]]) for i in range(0, len(images), nrow)]
            return torch.cat(rows)

        return self._eval(draw)

    def interpolations(self, pairs: int = INTERPOLATION_PAIRS, steps: int = INTERPOLATION_STEPS) -> Tensor:
        """One row per pair of images ``a``, ``b``: ``a``, the decoded ``(1 - t) z_a + t z_b`` for
        ``steps`` values of t from 0 to 1, then ``b`` (``z`` are the means of q(z|x))."""
        half = len(self.images) // 2
        pairs = max(1, min(pairs, half))

        def draw() -> Tensor:
            a = self.images[:pairs].to(self.device)
            b = self.images[half : half + pairs].to(self.device)
            z_a, z_b = self.encoder(a)[0], self.encoder(b)[0]
            t = torch.linspace(0.0, 1.0, steps, device=self.device).view(1, steps, 1)
            z = (1.0 - t) * z_a.unsqueeze(1) + t * z_b.unsqueeze(1)
            middle = self.decode(z.reshape(pairs * steps, -1)).view(pairs, steps, *a.shape[1:])
            return torch.cat([a.unsqueeze(1), middle, b.unsqueeze(1)], dim=1).flatten(0, 1)

        return self._eval(draw)

    def attach(self, engine: Engine, run: Run, every: int) -> None:
        """Write ``samples/reconstructions_<iteration>.png`` and ``samples/interpolation.png`` every
        ``every`` epochs and when the run ends (and the same grids to TensorBoard)."""

        def folder() -> Path:
            return run.ensure_dir() / SAMPLES

        def write(engine: Engine) -> None:
            step = engine.state.iteration
            grid = image_grid(self.reconstructions(), RECONSTRUCTION_ROW)
            out = folder() / f"{RECONSTRUCTION_PREFIX}{step:08d}.png"
            save_png(grid, out)
            run.recorder.image("reconstructions", grid, step, out)
            strip = image_grid(self.interpolations(), INTERPOLATION_STEPS + 2)
            save_png(strip, folder() / "interpolation.png")
            run.recorder.image("interpolation", strip, step, folder() / "interpolation.png")

        def write_last(engine: Engine) -> None:
            if not (folder() / f"{RECONSTRUCTION_PREFIX}{engine.state.iteration:08d}.png").exists():
                write(engine)

        engine.add_event_handler(Events.EPOCH_COMPLETED(every=every), write)
        engine.add_event_handler(Events.COMPLETED, write_last)


# --- the recipe -----------------------------------------------------------------------------


def _place(module: nn.Module, run: Run) -> nn.Module:
    module = module.to(run.device)
    if idist.get_world_size() > 1:
        module = idist.auto_model(module)
    return module


def _held_out_images(run: Run, count: int) -> Tensor:
    """A fixed batch of test-split images (training images if the test split is empty)."""
    with torch.random.fork_rng(devices=[]):  # loading data must not move the training RNG
        dataset = run.reference("test")[0]
        if len(dataset) == 0:
            dataset = run.train_dataset
        return fixed_images(dataset, count)


def train_vae(config: VaeRecipeConfig, *, run: Run) -> None:
    """Train a VAE: minimise reconstruction + beta * KL (the negative ELBO) with Adam, one z per image."""
    from ignite.utils import manual_seed

    manual_seed(run.recipe_file.seed)
    dataset = run.build_dataset()
    if len(dataset) < config.batch_size:
        raise DltkError(
            f"{run.recipe_file.path}: recipe.batch_size: {config.batch_size} is more than the "
            f"{len(dataset)} training images (the last partial batch is dropped); lower it"
        )
    if config.prior == "mixture" and config.components > len(dataset):
        raise DltkError(
            f"{run.recipe_file.path}: recipe.prior_components: {config.components} components for the "
            f"{len(dataset)} training images' codes; lower it"
        )
    model: VaeModel = run.build_model()
    encoder = _place(model.encoder, run)
    decoder = _place(model.decoder, run)
    params = [*encoder.parameters(), *decoder.parameters()]
    optimizer = idist.auto_optim(torch.optim.Adam(params, lr=config.lr))
    step = make_vae_step(
        encoder,
        decoder,
        optimizer,
        device=run.device,
        reconstruction=config.reconstruction,
        beta=config.beta,
        kl_warmup_epochs=config.kl_warmup_epochs,
    )

    trainer = Engine(step)
    loader = make_loader(
        dataset, config.batch_size, seed=run.recipe_file.seed, engine=trainer, num_workers=config.num_workers
    )
    images = VaeImages(encoder, decoder, _held_out_images(run, RECONSTRUCTION_IMAGES), run.device)
    images.attach(trainer, run, config.images_every)  # before run.fit: checkpoints then include them

    prior = make_prior(config, int(model.latent_dim))
    state: dict[str, Any] = {"encoder": encoder, "decoder": decoder, "optimizer": optimizer}
    if prior is not None:
        prior = prior.to(run.device)
        fitter = PriorFitter(
            prior, encoder, dataset, covariance=config.covariance, seed=run.recipe_file.seed, device=run.device
        )
        fitter.attach(trainer)  # refitted whenever a checkpoint, a sample grid or a metric reads it
        state["prior"] = prior

    def on_resume() -> None:
        for group in optimizer.param_groups:  # the recipe file (with its overrides) wins
            group["lr"] = config.lr

    run.fit(
        trainer,
        loader,
        epochs=config.epochs,
        state=state,
        trained=trained_vae(VaeModel(encoder, decoder, model.latent_dim), run.device, prior),
        log_every=config.log_every,
        on_resume=on_resume,
        failure_hint="a lower recipe.lr or a recipe.kl_warmup_epochs often helps",
    )
