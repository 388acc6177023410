"""The gan recipe's losses, stabilisers and class-conditional models, end to end on tiny digits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dltoolkit._checkpoint import checkpoints_in, load_checkpoint

DCGAN = ["model={name='dcgan', latent_dim=8, base_channels=8}", "dataset.image_size=16"]


def _model(name: str, **options):
    from dltoolkit import DataSpec
    from dltoolkit_gan.models import cdcgan, cgan, dcgan, mlp_gan
    from dltoolkit_gan.options import DcganConfig, MlpGanConfig

    data = DataSpec.images((1, 16, 16), class_names=[str(i) for i in range(10)])
    if name in ("mlp-gan", "cgan"):
        config = MlpGanConfig(latent_dim=8, hidden_dim=16, depth=1)
        if name == "mlp-gan":
            return mlp_gan(config, image_shape=data.shape)
        return cgan(config, image_shape=data.shape, data=data)
    config = DcganConfig(latent_dim=8, base_channels=8, **options)
    if name == "dcgan":
        return dcgan(config, image_shape=data.shape)
    return cdcgan(config, image_shape=data.shape, data=data)


@pytest.mark.parametrize("model", ["mlp-gan", "dcgan", "cgan", "cdcgan"])
@pytest.mark.parametrize("loss", ["non-saturating", "minimax", "hinge", "least-squares", "wasserstein-gp"])
def test_every_loss_trains_every_model(loss, model):
    from dltoolkit_gan.recipe import make_gan_step

    torch.manual_seed(0)
    gan = _model(model, **({"d_norm": "layer"} if loss == "wasserstein-gp" else {}))
    opt_g = torch.optim.Adam(gan.generator.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(gan.discriminator.parameters(), lr=1e-3)
    step = make_gan_step(
        gan.generator,
        gan.discriminator,
        opt_g,
        opt_d,
        latent_dim=8,
        device=torch.device("cpu"),
        loss=loss,
        precision="fp32",
        channels_last=False,
        scaler=torch.amp.GradScaler("cpu", enabled=False),
        gp_weight=10.0 if loss == "wasserstein-gp" else 0.0,
        augment=("color", "translation", "cutout"),
        conditional=gan.num_classes is not None,
    )
    before_g = [p.detach().clone() for p in gan.generator.parameters()]
    before_d = [p.detach().clone() for p in gan.discriminator.parameters()]
    labels = torch.arange(8) % 10
    for iteration in (1, 2):
        stats = step(torch.rand(8, 1, 16, 16) * 2 - 1, labels, iteration)
        assert stats.shape == (4,) and bool(torch.isfinite(stats).all())
    assert all(not torch.equal(a, b) for a, b in zip(before_g, gan.generator.parameters(), strict=True))
    # every weight moved (a final bias may not: hinge and Wasserstein losses cancel its gradient)
    changed_d = [
        not torch.equal(a, b) for a, b in zip(before_d, gan.discriminator.parameters(), strict=True) if a.dim() > 1
    ]
    assert all(changed_d), changed_d
    if loss in ("non-saturating", "minimax"):
        assert 0 < stats[2] < 1 and 0 < stats[3] < 1  # probabilities


def test_wasserstein_gp_uses_the_papers_adam_and_critic_steps(dltk, tiny_gan, tmp_path):
    run = tmp_path / "run"
    result = dltk("run", tiny_gan(), "recipe.epochs=1", "recipe.loss=wasserstein-gp", "--run-dir", run)
    assert result.exit_code == 0, result.err
    data = load_checkpoint(checkpoints_in(run / "checkpoints")[0])
    assert data["optimizer_g"]["param_groups"][0]["betas"] == (0.0, 0.9)
    assert data["optimizer_d"]["param_groups"][0]["betas"] == (0.0, 0.9)
    # 44 iterations, n_critic 5: the generator stepped on iterations 5, 10, ..., 40 only
    g_steps = {float(s["step"]) for s in data["optimizer_g"]["state"].values()}
    d_steps = {float(s["step"]) for s in data["optimizer_d"]["state"].values()}
    assert g_steps == {8.0} and d_steps == {44.0}


BAD = [
    (
        ["recipe.gp_weight=5"],
        "recipe.gp_weight: only the 'wasserstein-gp' loss has a gradient penalty (recipe.loss is 'non-saturating'); "
        'remove gp_weight or set recipe.loss = "wasserstein-gp"',
    ),
    (
        ["recipe.loss=wasserstein-gp", "recipe.precision=fp16"],
        "recipe.precision: 'fp16' cannot be used with the 'wasserstein-gp' loss (its gradient penalty "
        "differentiates through gradients a GradScaler scales); use 'bf16' or 'fp32'",
    ),
    (
        ["recipe.loss=wgan"],
        "recipe.loss: must be one of ('non-saturating', 'minimax', 'hinge', 'least-squares', 'wasserstein-gp'), "
        "got 'wgan'",
    ),
    (
        ["recipe.diffaugment=['colour']"],
        "recipe.diffaugment: unknown augmentation 'colour': choose from 'color', 'translation', 'cutout'",
    ),
    (["recipe.ema_decay=1.0"], "recipe.ema_decay: must be < 1.0, got 1.0"),
    (["recipe.n_critic=0"], "recipe.n_critic: must be >= 1, got 0"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD)
def test_bad_combinations_are_one_line_errors(dltk, tiny_gan, tmp_path, overrides, message):
    recipe = tiny_gan()
    result = dltk("check", recipe, *overrides)
    assert (result.exit_code, result.err_lines) == (2, [f"{recipe}: {message}"])


def test_wasserstein_gp_refuses_batchnorm_in_the_critic(dltk, tiny_gan, tmp_path):
    recipe = tiny_gan()
    result = dltk("run", recipe, "recipe.loss=wasserstein-gp", *DCGAN)
    assert result.exit_code == 2
    assert result.err_lines == [
        f"{recipe}: recipe.loss: 'wasserstein-gp' penalises each image's gradient, which BatchNorm in the "
        'discriminator mixes across the batch; set model.d_norm = "layer" or "none" (dcgan, cdcgan) '
        "or use a discriminator without BatchNorm"
    ]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_spectral_norm_run_checkpoints_its_power_iteration(dltk, tiny_gan, tmp_path):
    run = tmp_path / "run"
    result = dltk("run", tiny_gan(), "recipe.epochs=1", "recipe.spectral_norm=true", "recipe.loss=hinge", "--run-dir", run)
    assert result.exit_code == 0, result.err
    state = load_checkpoint(checkpoints_in(run / "checkpoints")[0])["discriminator"]
    assert any(k.endswith("parametrizations.weight.original") for k in state)
    assert any(k.endswith("parametrizations.weight.0._u") for k in state)
