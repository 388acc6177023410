"""The ``gan`` recipe: a discriminator step on every batch, a generator step every ``n_critic``-th.

The loss (``recipe.loss``), the stabilisers (spectral normalisation of D, an exponential moving
average of G, DiffAugment) and class-conditional training are all read from the recipe's options;
the step below is the whole algorithm.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine
from torch import Tensor, nn

from dltoolkit import DataSpec, DltkError, Run, Trained
from dltoolkit.data import make_loader, shard_randn
from dltoolkit.sampling import ImageSampler
from dltoolkit_gan.augment import diff_augment
from dltoolkit_gan.clusters import (
    ClusterAssignment,
    ClusterLabelled,
    ClusterShares,
    cluster_names,
    kmeans,
    pooled_images,
)
from dltoolkit_gan.losses import discriminator_loss, generator_loss, gradient_penalty
from dltoolkit_gan.models import GanModel
from dltoolkit_gan.options import (
    ADA_INTERVAL,
    PATH_LENGTH_DECAY,
    PATH_LENGTH_INTERVAL,
    PATH_LENGTH_WEIGHT,
    R1_INTERVAL,
    WGAN_GP,
    GanRecipeConfig,
)
from dltoolkit_gan.regularisers import (
    AdaptiveAugment,
    RegulariserState,
    lazy_adam,
    path_length_penalty,
    r1_penalty,
)

PROBABILITY_LOSSES = ("non-saturating", "minimax")
"""Losses whose discriminator output is a logit: d_x and d_g_z are reported as probabilities."""

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def _place(module: nn.Module, run: Run, channels_last: bool) -> nn.Module:
    module = module.to(run.device)
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    if idist.get_world_size() > 1:
        module = idist.auto_model(module)
    return module


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) of every linear, convolution and embedding
    layer of ``module``, in place, through ``torch.nn.utils.parametrizations.spectral_norm``
    (its power-iteration vectors are buffers: checkpoints hold them)."""
    from torch.nn.utils.parametrizations import spectral_norm

    layers = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Embedding)
    for child in list(module.modules()):
        if isinstance(child, layers):
            spectral_norm(child)
    return module


def make_gan_step(
    generator: nn.Module,
    discriminator: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    *,
    latent_dim: int,
    device: torch.device,
    loss: str,
    precision: str,
    channels_last: bool,
    scaler: torch.amp.GradScaler,
    n_critic: int = 1,
    gp_weight: float = 0.0,
    augment: Sequence[str] = (),
    conditional: bool = False,
    r1_gamma: float = 0.0,
    r1_interval: int = R1_INTERVAL,
    path_length: bool = False,
    style_mixing: float = 0.0,
    regularisers: RegulariserState | None = None,
    ada: AdaptiveAugment | None = None,
) -> Callable[..., Tensor]:
    """One GAN iteration: a discriminator step on fresh noise, then, every ``n_critic``-th
    iteration, a generator step on the same generated batch.

    Returns ``step(real, labels=None, iteration=1) -> Tensor`` of the detached statistics
    ``[loss_d, loss_g, D(x), D(G(z))]``. ``iteration`` (1-based, the trainer's) decides whether the
    generator steps (``iteration % n_critic == 0``). A conditional model (``conditional``) gets
    the batch's ``labels`` for real and generated images alike, so the generated classes follow
    the data's. ``augment`` (DiffAugment policies) transforms every image D sees, real or
    generated, in both steps; with ``ada`` they are applied with its adaptive probability instead,
    which moves every ``ADA_INTERVAL`` iterations. With ``gp_weight`` the critic's loss adds
    WGAN-GP's penalty.

    StyleGAN2's regularisers, each a step of its own (lazy regularisation, Karras et al. 2020):
    with ``r1_gamma``, every ``r1_interval``-th iteration a discriminator step on
    ``r1_interval * r1_gamma / 2 * mean |grad D(x)|^2`` over the real batch; with ``path_length``
    (a generator with a mapping network), every ``PATH_LENGTH_INTERVAL``-th generator step a
    generator step on half a batch of ``PATH_LENGTH_INTERVAL * PATH_LENGTH_WEIGHT`` times the
    path-length penalty, whose moving mean lives in ``regularisers``. ``style_mixing`` is passed
    to such a generator in its main steps.
    """
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype is not None else contextlib.nullcontext
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    probabilities = loss in PROBABILITY_LOSSES
    mixing = {"style_mixing": style_mixing} if style_mixing else {}
    if path_length and regularisers is None:
        raise TypeError("path-length regularisation keeps its moving mean in a RegulariserState")

    def seen(x: Tensor) -> Tensor:  # what D sees of an image batch
        return ada(x) if ada is not None else diff_augment(x, augment)

    def step(real: Tensor, labels: Tensor | None = None, iteration: int = 1) -> Tensor:
        real = real.to(device, non_blocking=True, memory_format=memory_format)
        batch = real.shape[0]
        cond: tuple[Tensor, ...] = ()
        if conditional:
            if labels is None:
                raise TypeError("a class-conditional GAN step needs the batch's labels")
            cond = (labels.to(device, non_blocking=True),)
        z = shard_randn(batch, latent_dim, device=device)  # N ranks x B/N draw what 1 x B draws
        with autocast():
            fake = generator(z, *cond, **mixing)
            real_seen = seen(real)
            d_real = discriminator(real_seen, *cond).float()
            d_fake = discriminator(seen(fake.detach()), *cond).float()
            loss_d = discriminator_loss(loss, d_real, d_fake)
        if gp_weight:
            fake_seen = seen(fake.detach())
            loss_d = loss_d + gp_weight * gradient_penalty(
                lambda x: discriminator(x, *cond), real_seen.float(), fake_seen.float()
            )
        opt_d.zero_grad(set_to_none=True)
        scaler.scale(loss_d).backward()
        scaler.step(opt_d)
        if ada is not None:
            ada.observe(d_real)
        if r1_gamma and iteration % r1_interval == 0:
            with autocast():
                penalty = r1_penalty(lambda x: discriminator(seen(x), *cond), real.float())
            loss_r1 = penalty.mean() * (r1_gamma / 2 * r1_interval)
            opt_d.zero_grad(set_to_none=True)
            loss_r1.backward()
            opt_d.step()

        if iteration % n_critic == 0:
            with autocast():
                d_fake_g = discriminator(seen(fake), *cond).float()
                loss_g = generator_loss(loss, d_fake_g)
            opt_g.zero_grad(set_to_none=True)
            scaler.scale(loss_g).backward()
            scaler.step(opt_g)
            if path_length and (iteration // n_critic) % PATH_LENGTH_INTERVAL == 0:
                assert regularisers is not None
                half = max(1, batch // 2)
                z_pl = shard_randn(half, latent_dim, device=device)
                with autocast():
                    images, ws = generator(z_pl, *(c[:half] for c in cond), return_ws=True)
                penalties, pl_mean = path_length_penalty(images.float(), ws, regularisers.pl_mean, PATH_LENGTH_DECAY)
                regularisers.pl_mean.copy_(pl_mean)
                opt_g.zero_grad(set_to_none=True)
                (penalties.mean() * (PATH_LENGTH_WEIGHT * PATH_LENGTH_INTERVAL)).backward()
                opt_g.step()
        else:  # a critic-only iteration: the generator's loss on this batch, for the record
            loss_g = generator_loss(loss, d_fake.detach())
        scaler.update()
        if ada is not None and iteration % ADA_INTERVAL == 0:
            ada.adjust(_sum_over_processes)
        shown_real, shown_fake = d_real.detach(), d_fake.detach()
        if probabilities:
            shown_real, shown_fake = torch.sigmoid(shown_real), torch.sigmoid(shown_fake)
        return torch.stack([loss_d.detach(), loss_g.detach(), shown_real.mean(), shown_fake.mean()])

    return step


def _sum_over_processes(x: Tensor) -> Tensor:
    return idist.all_reduce(x) if idist.get_world_size() > 1 else x


class ClassConditionalSampler(ImageSampler):
    """An :class:`~dltoolkit.sampling.ImageSampler` for a class-conditional generator ``G(z, labels)``.

    ``classes`` names the classes in index order (what ``dltk generate --label`` accepts). A noise
    row is ``z`` (the same ``z`` an unconditional sampler draws for the seed) with the class
    index appended as its last column: ``noise(n, seed, label=c)`` draws class ``c``; without a
    label the ``n`` rows are spread over the classes in equal contiguous blocks (row ``i`` is of
    class ``i * k // n``), so metrics score every class equally and a grid of ``k`` rows of
    ``n / k`` images shows one class a row.
    """

    def __init__(self, generator: nn.Module, latent_dim: int, classes: Sequence[str], device: torch.device | str):
        super().__init__(generator, latent_dim, device)
        self.classes = tuple(classes)

    def labels(self, n: int, label: int | None = None) -> Tensor:
        """The class of each of ``n`` rows: ``label``, else equal blocks of every class."""
        k = len(self.classes)
        if label is None:
            return torch.arange(n) * k // n
        if not 0 <= int(label) < k:
            raise ValueError(f"class index {label} is not in [0, {k})")
        return torch.full((n,), int(label), dtype=torch.int64)

    def noise(self, n: int, seed: int, label: int | None = None) -> Tensor:
        z = super().noise(n, seed)
        return torch.cat([z, self.labels(n, label).to(z.dtype).unsqueeze(1).to(z.device)], dim=1)

    @torch.no_grad()
    def generate(self, z: Tensor) -> Tensor:
        z = z.to(self.device)
        was_training = self.module.training
        self.module.eval()
        try:
            return self.module(z[:, :-1], z[:, -1].round().long()).float()
        finally:
            self.module.train(was_training)

    def batches(self, n: int, *, seed: int, batch_size: int = 256, label: int | None = None) -> Iterator[Tensor]:
        z = self.noise(n, seed, label)
        for start in range(0, n, batch_size):
            yield self.generate(z[start : start + batch_size])


class ClusterSampler(ClassConditionalSampler):
    """The sampler of a self-conditioned generator: a :class:`ClassConditionalSampler` over its
    clusters whose rows, without a label, draw each cluster with its share of the training images
    (:meth:`ClusterShares.labels`) instead of equally, so samples keep the data's proportions."""

    def __init__(self, generator: nn.Module, latent_dim: int, shares: ClusterShares, device: torch.device | str):
        super().__init__(generator, latent_dim, cluster_names(len(shares.shares)), device)
        self.shares = shares

    def labels(self, n: int, label: int | None = None) -> Tensor:
        return super().labels(n, label) if label is not None else self.shares.labels(n)


def gan_offers(
    model: Any,
    device: torch.device,
    config: GanRecipeConfig | None = None,
    data: DataSpec | None = None,
    shares: ClusterShares | None = None,
) -> Trained:
    """What a trained GAN offers: its generator (exported, loaded) and a sampler drawing from it.

    With ``recipe.ema_decay`` the generator offered is the moving average, stored as
    ``generator_ema`` (the training generator stays ``generator`` in checkpoints). A
    class-conditional model (``num_classes``) gets a :class:`ClassConditionalSampler` whose
    classes are the data's class names (else ``0`` to ``k - 1``); a self-conditioned one a
    :class:`ClusterSampler` and a second module, ``clusters``, the shares of its clusters
    (``shares``: the ones training found, else uniform ones for a checkpoint to load into).
    """
    device = torch.device(device)
    name = "generator_ema" if config is not None and config.ema_decay else "generator"
    k = getattr(model, "num_classes", None)
    if k and getattr(model, "self_conditioned", False):
        shares = (shares or ClusterShares(int(k))).to(device)
        sampler = ClusterSampler(model.generator, int(model.latent_dim), shares, device)

        def preview(num: int, seed: int) -> Callable[[], Tensor]:  # num images by the shares, fixed noise
            noise = sampler.noise(num, seed)
            return lambda: sampler.generate(noise)

        return Trained(modules={name: model.generator, "clusters": shares}, sampler=sampler, preview=preview)
    if k:
        names = tuple(data.class_names) if data is not None and len(data.class_names) == k else ()
        sampler: ImageSampler = ClassConditionalSampler(
            model.generator, int(model.latent_dim), names or tuple(str(i) for i in range(k)), device
        )
    else:
        sampler = ImageSampler(model.generator, int(model.latent_dim), device)
    return Trained(modules={name: model.generator}, sampler=sampler)


def _check_model(config: GanRecipeConfig, model: Any, run: Run) -> None:
    path = run.recipe_file.path
    if config.loss == WGAN_GP and any(isinstance(m, BATCH_NORMS) for m in model.discriminator.modules()):
        raise DltkError(
            f"{path}: recipe.loss: 'wasserstein-gp' penalises each image's gradient, which BatchNorm in the "
            f'discriminator mixes across the batch; set model.d_norm = "layer" or "none" (dcgan, cdcgan) '
            "or use a discriminator without BatchNorm"
        )
    styled = [key for key, on in (("path_length", config.path_length), ("style_mixing", config.style_mixing)) if on]
    if styled and not hasattr(model.generator, "mapping"):
        raise DltkError(
            f"{path}: recipe.{styled[0]}: needs a generator with a mapping network to styles w "
            f'(model.name = "stylegan2" or "cstylegan2"), model.name is \'{run.recipe_file.model.name}\''
        )
    k = getattr(model, "num_classes", None)
    if k and not getattr(model, "self_conditioned", False) and (run.data is None or run.data.num_classes != k):
        raise DltkError(
            f"{path}: model: a class-conditional model of {k} classes, but the dataset gives "
            f"{run.data.describe() if run.data is not None else 'no description'}"
        )


def self_condition(model: Any, dataset: Any, run: Run) -> tuple[ClusterLabelled, ClusterShares, ClusterAssignment]:
    """For a self-conditioned model: ``dataset`` labelled with its k-means clusters (seeded by the
    recipe's seed), the clusters' shares, and the assignment a checkpoint keeps."""
    k = int(model.num_classes)
    if k > len(dataset):
        raise DltkError(
            f"{run.recipe_file.path}: model.clusters: {k} clusters of {len(dataset)} training images; "
            f"use at most {len(dataset)}"
        )
    if idist.get_rank() == 0:
        assignment = kmeans(pooled_images(dataset), k, seed=run.recipe_file.seed)
    else:
        assignment = torch.zeros(len(dataset), dtype=torch.int64)
    if idist.get_world_size() > 1:  # rank 0's clusters for every process: all train on the same labels
        assignment = idist.broadcast(assignment.to(idist.device()), src=0).cpu()
    shares = ClusterShares(k)
    shares.set(assignment)
    return ClusterLabelled(dataset, assignment), shares, ClusterAssignment(assignment)


def ema_decay_at(steps: int, decay: float) -> float:
    """The EMA decay after ``steps`` generator steps: ``min(decay, (1 + steps) / (10 + steps))``, the
    ramp of TensorFlow's ``ExponentialMovingAverage(num_updates=...)``, so that the average of a short
    run is not dominated by the random weights it started from (with a fixed 0.999, 43% of the
    average after 850 steps would still be the initial weights; with the ramp, nothing measurable)."""
    return min(decay, (1.0 + steps) / (10.0 + steps))


def train_gan(config: GanRecipeConfig, *, run: Run) -> None:
    """Train a GAN: a discriminator step on every batch, a generator step every n_critic-th (Adam)."""
    from ignite.engine import Events
    from ignite.handlers import EMAHandler
    from ignite.utils import manual_seed

    manual_seed(run.recipe_file.seed)
    dataset = run.build_dataset()
    if len(dataset) < config.batch_size:
        raise DltkError(
            f"{run.recipe_file.path}: recipe.batch_size: {config.batch_size} is more than the "
            f"{len(dataset)} training images (the last partial batch is dropped); lower it"
        )
    model: GanModel = run.build_model()
    _check_model(config, model, run)
    conditional = bool(getattr(model, "num_classes", None))
    shares: ClusterShares | None = None
    assignment: ClusterAssignment | None = None
    if conditional and getattr(model, "self_conditioned", False):
        dataset, shares, assignment = self_condition(model, dataset, run)
    if config.spectral_norm:
        apply_spectral_norm(model.discriminator)
    generator = _place(model.generator, run, config.channels_last)
    discriminator = _place(model.discriminator, run, config.channels_last)
    betas_g, betas_d = config.adam_betas
    # lazy regularisation: the regularised network's Adam slowed as NVlabs' mb_ratio does
    lr_g, betas_g = lazy_adam(config.lr_g, betas_g, PATH_LENGTH_INTERVAL if config.path_length else None)
    lr_d, betas_d = lazy_adam(config.lr_d, betas_d, config.r1_interval if config.r1_gamma else None)
    opt_g = idist.auto_optim(torch.optim.Adam(generator.parameters(), lr=lr_g, betas=betas_g))
    opt_d = idist.auto_optim(torch.optim.Adam(discriminator.parameters(), lr=lr_d, betas=betas_d))
    regularisers = RegulariserState().to(run.device) if config.path_length or config.ada_target else None
    ada = (
        AdaptiveAugment(regularisers, config.augment_policies, config.ada_target, config.ada_kimg)
        if regularisers is not None and config.ada_target
        else None
    )
    scaler = torch.amp.GradScaler(run.device.type, enabled=config.precision == "fp16")
    n_critic = config.critic_steps
    step = make_gan_step(
        generator,
        discriminator,
        opt_g,
        opt_d,
        latent_dim=model.latent_dim,
        device=run.device,
        loss=config.loss,
        precision=config.precision,
        channels_last=config.channels_last,
        scaler=scaler,
        n_critic=n_critic,
        gp_weight=config.penalty_weight,
        augment=config.diffaugment,
        conditional=conditional,
        r1_gamma=config.r1_gamma or 0.0,
        r1_interval=config.r1_interval,
        path_length=config.path_length,
        style_mixing=config.style_mixing,
        regularisers=regularisers,
        ada=ada,
    )

    def process(engine: Engine, batch: Any) -> Tensor:
        return step(batch[0], batch[1] if conditional else None, engine.state.iteration)

    trainer = Engine(process)
    loader = make_loader(
        dataset, config.batch_size, seed=run.recipe_file.seed, engine=trainer, num_workers=config.num_workers
    )
    state: dict[str, Any] = {
        "generator": generator,
        "discriminator": discriminator,
        "optimizer_g": opt_g,
        "optimizer_d": opt_d,
    }
    offered = generator
    if config.ema_decay:
        # Ignite's EMAHandler: ema = decay * ema + (1 - decay) * G after each generator step; buffers
        # (BatchNorm statistics) are copied. Attached before run.fit, so a checkpoint taken at an
        # iteration already holds that iteration's average. The decay in effect ramps up with the
        # generator steps taken (ema_decay_at), computed from the trainer's iteration, so a resumed
        # run continues it exactly.
        ema = EMAHandler(generator, momentum=1.0 - config.ema_decay, handle_buffers="copy")
        every_g_step = Events.ITERATION_COMPLETED(every=n_critic)

        def set_decay(engine: Engine) -> None:
            engine.state.ema_momentum = 1.0 - ema_decay_at(engine.state.iteration // n_critic, config.ema_decay)

        trainer.add_event_handler(every_g_step, set_decay)
        ema.attach(trainer, event=every_g_step, warn_if_exists=False)
        state["generator_ema"] = offered = ema.ema_model
    if scaler.is_enabled():
        state["scaler"] = scaler
    if regularisers is not None:
        state["regularisers"] = regularisers
    if shares is not None and assignment is not None:
        state["clusters"], state["cluster_assignment"] = shares, assignment

    def on_resume() -> None:
        for opt, lr, betas in ((opt_g, lr_g, betas_g), (opt_d, lr_d, betas_d)):
            for group in opt.param_groups:  # the recipe file (with its overrides) wins
                group["lr"], group["betas"] = lr, betas

    run.fit(
        trainer,
        loader,
        epochs=config.epochs,
        state=state,
        trained=gan_offers(
            GanModel(
                offered,
                discriminator,
                model.latent_dim,
                getattr(model, "num_classes", None),
                getattr(model, "self_conditioned", False),
            ),
            run.device,
            config=config,
            data=run.data,
            shares=shares,
        ),
        log_every=config.log_every,
        on_resume=on_resume,
        failure_hint="a lower recipe.lr_d / recipe.lr_g often helps",
    )
