"""StyleGAN2 and its regularisers: the parts against hand-computed values, the step with every
regulariser on, wrong options in one line each, and a run killed with SIGKILL that resumes bit-exactly."""

from __future__ import annotations

import math
import signal
from pathlib import Path

import pytest
import torch

from dltoolkit._checkpoint import checkpoints_in, load_checkpoint

TINY = {"latent_dim": 8, "mapping_layers": 2, "channel_base": 64, "channel_max": 16}
STYLEGAN2 = "model={name='stylegan2', latent_dim=8, mapping_layers=2, channel_base=64, channel_max=16}"


def _config(**options):
    from dltoolkit_gan.options import StyleGan2Config

    return StyleGan2Config(**{**TINY, **options})


def test_modulation_and_demodulation_are_the_papers_equations():
    from dltoolkit_gan.stylegan2 import modulated_conv2d

    # one output, two inputs, 1x1 kernel: w = [1, 2], styles s = [3, 0.5] -> w' = [3, 1];
    # demodulated w'' = w' / sqrt(3^2 + 1^2); on the pixel x = [1, 2]: 3 + 2 = 5, or 5 / sqrt(10)
    weight = torch.tensor([1.0, 2.0]).view(1, 2, 1, 1)
    styles = torch.tensor([[3.0, 0.5]])
    x = torch.tensor([1.0, 2.0]).view(1, 2, 1, 1)
    for fused in (False, True):
        plain = modulated_conv2d(x, weight, styles, demodulate=False, fused=fused)
        demodulated = modulated_conv2d(x, weight, styles, fused=fused)
        assert plain.item() == pytest.approx(5.0)
        assert demodulated.item() == pytest.approx(5.0 / math.sqrt(10.0))
    # with 3x3 kernels and a batch, the shared convolution (training) equals the per-image weights
    torch.manual_seed(0)
    x, weight, styles = torch.randn(3, 4, 5, 5), torch.randn(6, 4, 3, 3), torch.randn(3, 4)
    fused = modulated_conv2d(x, weight, styles, padding=1, fused=True)
    assert torch.allclose(modulated_conv2d(x, weight, styles, padding=1), fused, atol=1e-5)
    # demodulation restores unit scale: each image's weights have unit norm per output
    assert torch.allclose(modulated_conv2d(x, weight, 10 * styles, padding=1), fused, atol=1e-4)


def test_r1_penalty_is_the_squared_gradient_norm_on_real_images():
    from dltoolkit_gan.regularisers import r1_penalty

    # D(x) = a * sum(x^2): grad = 2 a x, |grad|^2 = 4 a^2 sum(x^2), d/da = 8 a sum(x^2)
    a = torch.tensor(0.5, requires_grad=True)
    real = torch.tensor([[1.0, 2.0], [0.0, -3.0]]).view(2, 1, 1, 2)
    penalty = r1_penalty(lambda x: a * x.square().flatten(1).sum(1), real)
    assert torch.allclose(penalty, torch.tensor([4 * 0.25 * 5.0, 4 * 0.25 * 9.0]))
    penalty.sum().backward()
    assert a.grad is not None and a.grad.item() == pytest.approx(8 * 0.5 * 14.0)
    assert not real.requires_grad  # the caller's images are left alone


def test_path_length_penalty_against_hand_computed_lengths():
    from dltoolkit_gan.regularisers import path_length_penalty

    # images = sum over the 2 style inputs of k_i * w_i (w_dim 4 = the 2x2 pixels), k = [1, 3]:
    # grad_w_i = k_i y, so |J^T y| = sqrt(mean_i k_i^2 * |y|^2) = sqrt(5 |y|^2)
    ws = torch.randn(3, 2, 4, generator=torch.Generator().manual_seed(1), requires_grad=True)
    k = torch.tensor([1.0, 3.0], requires_grad=True)  # a weight of the "generator"
    images = (ws * k.view(1, 2, 1)).sum(dim=1).view(3, 1, 2, 2)
    torch.manual_seed(7)
    penalties, mean = path_length_penalty(images, ws, torch.tensor(2.0), decay=0.01)
    torch.manual_seed(7)
    y = torch.randn(3, 1, 2, 2) / 2.0  # / sqrt(H * W)
    lengths = (5.0 * y.square().flatten(1).sum(1)).sqrt()
    expected_mean = 2.0 + 0.01 * (lengths.mean() - 2.0)
    assert mean.item() == pytest.approx(expected_mean.item())
    assert torch.allclose(penalties, (lengths - expected_mean).square())
    assert penalties.requires_grad and not mean.requires_grad


def test_style_mixing_switches_to_the_second_styles_at_the_cutoff():
    from dltoolkit_gan.stylegan2 import draw_cutoff, mix_styles, stylegan2

    a, b = torch.zeros(2, 4, 3), torch.ones(2, 4, 3)
    assert mix_styles(a, b, 1).sum(dim=(0, 2)).tolist() == [0.0, 6.0, 6.0, 6.0]
    assert torch.equal(mix_styles(a, b, 4), a)
    z = torch.zeros(1)
    assert {draw_cutoff(4, 0.0, z) for _ in range(20)} == {4}
    assert {draw_cutoff(4, 1.0, z) for _ in range(200)} == {1, 2, 3}

    torch.manual_seed(0)
    g = stylegan2(_config(), image_shape=(1, 16, 16)).generator  # 6 style inputs
    z = torch.randn(5, 8)
    torch.manual_seed(3)
    _, ws = g(z, style_mixing=1.0, return_ws=True)
    torch.manual_seed(3)  # what the generator drew: the second noise batch, then the layer
    z2 = torch.randn_like(z)
    cutoff = int(torch.randint(1, g.num_ws, ()))
    assert ws.shape == (5, g.num_ws, 8) and 1 <= cutoff < g.num_ws
    assert torch.equal(ws[:, :cutoff], g.mapping(z)[:, :cutoff])
    assert torch.equal(ws[:, cutoff:], g.mapping(z2)[:, cutoff:])


def test_layers_have_the_equalised_learning_rate_and_minibatch_stddev():
    from dltoolkit_gan.stylegan2 import FullyConnected, minibatch_stddev_maps

    layer = FullyConnected(16, 4, lr_mult=0.01)
    assert layer.weight_gain == pytest.approx(0.01 / 4) and layer.bias_gain == 0.01
    assert 80 < layer.weight.std().item() < 120  # N(0, 1) / lr_mult, scaled back at run time
    # two images, one feature map each: constant 1 and constant 3 -> std 1 everywhere
    x = torch.cat([torch.ones(1, 1, 2, 2), torch.full((1, 1, 2, 2), 3.0)])
    out = minibatch_stddev_maps(x, group_size=4)
    assert out.shape == (2, 2, 2, 2) and torch.allclose(out[:, 1], torch.ones(2, 2, 2), atol=1e-4)
    assert minibatch_stddev_maps(torch.randn(6, 3, 4, 4), group_size=4).shape == (6, 4, 4, 4)  # groups of 3


@pytest.mark.parametrize(("size", "channels"), [(8, 1), (16, 3), (32, 1)])
def test_any_power_of_two_size_and_channels(size, channels):
    from dltoolkit_gan.stylegan2 import stylegan2

    gan = stylegan2(_config(), image_shape=(channels, size, size))
    images = gan.generator(torch.randn(4, 8))
    assert images.shape == (4, channels, size, size)
    assert gan.discriminator(images).shape == (4,)
    gan.generator.eval()
    first, again = gan.generator(torch.ones(2, 8)), gan.generator(torch.ones(2, 8))
    assert torch.equal(first, again) and first.abs().max() <= 1  # eval: fixed noise, clamped


def test_ada_moves_p_by_the_sign_of_the_overfitting_signal():
    from dltoolkit_gan.regularisers import AdaptiveAugment, RegulariserState, lazy_adam

    ada = AdaptiveAugment(RegulariserState(), ("translation",), target=0.6, kimg=0.1)
    ada.observe(torch.tensor([1.0, 2.0, 3.0, -1.0]))  # r_t = (3 - 1) / 4 = 0.5 < 0.6: p down, stays 0
    assert ada.adjust() == pytest.approx(0.5) and ada.p == 0.0
    ada.observe(torch.tensor([1.0, 1.0, 1.0, 1.0]))  # r_t = 1 > 0.6: up by 4 / 100
    assert ada.adjust() == 1.0 and ada.p == pytest.approx(0.04)
    x = torch.rand(8, 1, 8, 8)
    ada.state.augment_p.fill_(0.0)
    assert torch.equal(ada(x), x)
    lr, betas = lazy_adam(0.01, (0.0, 0.99), 16)
    assert (lr, *betas) == pytest.approx((0.01 * 16 / 17, 0.0, 0.99 ** (16 / 17)))
    assert lazy_adam(0.01, (0.5, 0.99), None) == (0.01, (0.5, 0.99))


@pytest.mark.parametrize("model", ["stylegan2", "cstylegan2"])
def test_a_step_with_every_regulariser_trains_both_networks(model):
    from dltoolkit import DataSpec
    from dltoolkit_gan.recipe import make_gan_step
    from dltoolkit_gan.regularisers import AdaptiveAugment, RegulariserState
    from dltoolkit_gan.stylegan2 import cstylegan2, stylegan2

    torch.manual_seed(0)
    data = DataSpec.images((1, 8, 8), class_names=[str(i) for i in range(10)])
    gan = (
        stylegan2(_config(), image_shape=data.shape)
        if model == "stylegan2"
        else cstylegan2(_config(), image_shape=data.shape, data=data)
    )
    opt_g = torch.optim.Adam(gan.generator.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(gan.discriminator.parameters(), lr=1e-3)
    state = RegulariserState()
    ada = AdaptiveAugment(state, ("color", "translation", "cutout"), target=0.6, kimg=1.0)
    step = make_gan_step(
        gan.generator, gan.discriminator, opt_g, opt_d, latent_dim=8, device=torch.device("cpu"),
        loss="non-saturating", precision="fp32", channels_last=False,
        scaler=torch.amp.GradScaler("cpu", enabled=False), conditional=gan.num_classes is not None,
        r1_gamma=1.0, r1_interval=2, path_length=True, style_mixing=0.9, regularisers=state, ada=ada,
    )  # fmt: skip
    before = [p.detach().clone() for p in (*gan.generator.parameters(), *gan.discriminator.parameters())]
    for iteration in range(1, 5):
        stats = step(torch.rand(8, 1, 8, 8) * 2 - 1, torch.arange(8) % 10, iteration)
        assert bool(torch.isfinite(stats).all())
    after = [*gan.generator.parameters(), *gan.discriminator.parameters()]
    assert sum(not torch.equal(a, b) for a, b in zip(before, after, strict=True)) > 0.9 * len(before)
    assert state.pl_mean.item() > 0  # one path-length step (the 4th generator step)
    assert state.count.item() == 0 and state.augment_p.item() in (0.0, pytest.approx(0.032))


BAD = [
    (
        [STYLEGAN2, "model.mapping_layers=0"],
        "model.mapping_layers: must be >= 1, got 0",
    ),
    ([STYLEGAN2, "model.image_size=12"], "model.image_size: must be one of (8, 16, 32, 64, 128, 256), got 12"),
    (
        [STYLEGAN2, "recipe.r1_gamma=1", "recipe.loss=hinge"],
        "recipe.r1_gamma: R1 regularises the logistic GAN losses 'non-saturating' and 'minimax' (recipe.loss "
        "is 'hinge'); remove r1_gamma or set recipe.loss = \"non-saturating\"",
    ),
    (
        [STYLEGAN2, "recipe.r1_gamma=1", "recipe.loss=wasserstein-gp"],
        "recipe.r1_gamma: R1 regularises the logistic GAN losses 'non-saturating' and 'minimax' (recipe.loss "
        "is 'wasserstein-gp', which has its own gp_weight); remove r1_gamma or set recipe.loss = \"non-saturating\"",
    ),
    ([STYLEGAN2, "recipe.style_mixing=1.5"], "recipe.style_mixing: must be <= 1.0, got 1.5"),
    ([STYLEGAN2, "recipe.ada_target=1"], "recipe.ada_target: must be < 1.0, got 1.0"),
    (
        [STYLEGAN2, "recipe.path_length=true", "recipe.precision=fp16"],
        "recipe.precision: 'fp16' cannot be used with recipe.r1_gamma or recipe.path_length (their penalties "
        "differentiate through gradients a GradScaler scales); use 'bf16' or 'fp32'",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), BAD)
def test_wrong_options_are_one_line_each(dltk, tiny_gan, overrides, message):
    recipe = tiny_gan()
    result = dltk("check", recipe, *overrides)
    assert (result.exit_code, result.err_lines) == (2, [f"{recipe}: {message}"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            [STYLEGAN2, "dataset.image_size=12"],
            "model: stylegan2 needs square images of a power-of-two size from 8 to 256 pixels, the dataset gives "
            "12x12; set dataset.image_size (for example 32 or 64)",
        ),
        (
            [STYLEGAN2, "dataset.image_size=512"],
            "model: stylegan2 needs square images of a power-of-two size from 8 to 256 pixels, the dataset gives "
            "512x512; set dataset.image_size (for example 32 or 64)",
        ),
        (
            ["recipe.path_length=true"],
            'recipe.path_length: needs a generator with a mapping network to styles w (model.name = "stylegan2" '
            "or \"cstylegan2\"), model.name is 'mlp-gan'",
        ),
    ],
)
def test_sizes_and_models_that_do_not_fit_are_refused_before_training(dltk, tiny_gan, tmp_path, overrides, message):
    recipe = tiny_gan()
    result = dltk("run", recipe, *overrides)
    assert (result.exit_code, result.err_lines) == (2, [f"{recipe}: {message}"])
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def _everything(run: Path) -> dict[str, torch.Tensor]:
    data = load_checkpoint(checkpoints_in(run / "checkpoints")[0])
    state = {}
    for part in ("generator", "generator_ema", "discriminator", "regularisers"):
        state.update({f"{part}.{k}": v for k, v in data[part].items()})
    for part in ("optimizer_g", "optimizer_d"):
        for index, entry in data[part]["state"].items():
            state.update({f"{part}.{index}.{k}": v for k, v in entry.items() if isinstance(v, torch.Tensor)})
    return state


@pytest.mark.slow
def test_killed_with_every_regulariser_on_it_resumes_bit_exactly(dltk, tiny_gan, tmp_path):
    from runs import ITERATION_CHECKPOINTS, log_lines, subprocess_run

    recipe = tiny_gan()
    options = [
        STYLEGAN2, "model.mbstd_group=4", "recipe.r1_gamma=0.1", "recipe.r1_interval=4", "recipe.path_length=true",
        "recipe.style_mixing=0.9", "recipe.ada_target=0.6", "recipe.ada_kimg=0.5",
        "recipe.diffaugment=['translation','cutout']", "recipe.ema_decay=0.99", "recipe.epochs=1",
        "recipe.batch_size=64", "run.threads=1", *ITERATION_CHECKPOINTS,
    ]  # fmt: skip
    straight, run = tmp_path / "straight", tmp_path / "killed"
    result = dltk("run", recipe, *options, "--run-dir", straight)
    assert result.exit_code == 0, result.err
    killed = subprocess_run(recipe, run, *options, env={"DLTK_FAULT_KILL_AT": "17"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    result = dltk("run", "--resume", run)
    assert result.exit_code == 0, result.err
    assert "from checkpoint_10.pt" in result.err  # of 22 iterations
    a, b = _everything(straight), _everything(run)
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    assert a["regularisers.pl_mean"] > 0  # the path-length mean moved (ADA's p may be 0 or not)
    assert log_lines(straight) == log_lines(run)
