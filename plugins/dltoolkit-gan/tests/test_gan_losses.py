"""The GAN losses, stabilisers and validation: values on hand-computed examples, one-line errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dltoolkit_gan.augment import cutout, diff_augment, translation
from dltoolkit_gan.losses import discriminator_loss, generator_loss, gradient_penalty
from dltoolkit_gan.options import LOSSES, GanRecipeConfig
from dltoolkit_gan.recipe import apply_spectral_norm

# D's outputs on two real and two generated images
REAL = torch.tensor([2.0, 0.0])
FAKE = torch.tensor([-1.0, 0.5])


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# each value worked out by hand from the papers' definitions (means over the batch of two)
HAND = {
    # D: -log sigmoid(r) - log(1 - sigmoid(f)) = softplus(-r) + softplus(f)
    "non-saturating": (
        (softplus(-2.0) + softplus(0.0)) / 2 + (softplus(-1.0) + softplus(0.5)) / 2,
        (softplus(1.0) + softplus(-0.5)) / 2,  # G: -log sigmoid(f)
    ),
    "minimax": (
        (softplus(-2.0) + softplus(0.0)) / 2 + (softplus(-1.0) + softplus(0.5)) / 2,
        -(softplus(-1.0) + softplus(0.5)) / 2,  # G: log(1 - sigmoid(f))
    ),
    # D: relu(1 - r) = [0, 1] -> 0.5; relu(1 + f) = [0, 1.5] -> 0.75. G: -mean(f) = -(-0.25)
    "hinge": (0.5 + 0.75, 0.25),
    # D: ((2-1)^2 + (0-1)^2)/2/2 = 0.5; (1 + 0.25)/2/2 = 0.3125. G: ((-2)^2 + (-0.5)^2)/2/2 = 1.0625
    "least-squares": (0.5 + 0.3125, 1.0625),
    # D (without the penalty): mean(f) - mean(r) = -0.25 - 1 = -1.25. G: -mean(f) = 0.25
    "wasserstein-gp": (-1.25, 0.25),
}


def test_every_loss_has_a_hand_computed_check():
    assert set(HAND) == set(LOSSES)


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_loss_values_match_the_hand_computed_ones(loss):
    d_expected, g_expected = HAND[loss]
    assert discriminator_loss(loss, REAL, FAKE).item() == pytest.approx(d_expected, abs=1e-6)
    assert generator_loss(loss, FAKE).item() == pytest.approx(g_expected, abs=1e-6)


def test_gradient_penalty_of_a_linear_critic():
    # D(x) = sum(w * x) has gradient w everywhere: the penalty is (|w| - 1)^2 wherever it is taken
    w = torch.tensor([3.0, 4.0]).view(1, 2, 1, 1)  # |w| = 5 -> (5 - 1)^2 = 16
    critic = lambda x: (x * w).flatten(1).sum(1)  # noqa: E731
    real, fake = torch.randn(4, 2, 1, 1), torch.randn(4, 2, 1, 1)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx(16.0)
    unit = lambda x: (x * (w / 5)).flatten(1).sum(1)  # noqa: E731
    assert gradient_penalty(unit, real, fake).item() == pytest.approx(0.0, abs=1e-10)


def test_gradient_penalty_trains_the_critic():
    layer = nn.Linear(3, 1)
    penalty = gradient_penalty(lambda x: layer(x).view(-1), torch.randn(5, 3), torch.randn(5, 3))
    penalty.backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_defaults_follow_the_loss():
    plain = GanRecipeConfig()
    assert plain.adam_betas == ((0.5, 0.999), (0.5, 0.999))
    assert (plain.critic_steps, plain.penalty_weight) == (1, 0.0)
    wgan = GanRecipeConfig(loss="wasserstein-gp")
    assert wgan.adam_betas == ((0.0, 0.9), (0.0, 0.9))  # Gulrajani et al.'s Adam
    assert (wgan.critic_steps, wgan.penalty_weight) == (5, 10.0)
    chosen = GanRecipeConfig(loss="wasserstein-gp", betas_d=(0.5, 0.9), n_critic=2, gp_weight=1.0)
    assert chosen.adam_betas == ((0.0, 0.9), (0.5, 0.9))
    assert (chosen.critic_steps, chosen.penalty_weight) == (2, 1.0)


def test_spectral_norm_bounds_each_layer():
    torch.manual_seed(0)
    d = nn.Sequential(nn.Linear(6, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1))
    with torch.no_grad():
        d[0].weight.mul_(10)
    apply_spectral_norm(d)
    for _ in range(30):  # power iterations run in training mode
        d(torch.randn(2, 6))
    d.eval()
    assert torch.linalg.matrix_norm(d[0].weight, ord=2).item() == pytest.approx(1.0, rel=1e-2)
    assert "parametrizations.weight.original" in "".join(d.state_dict())


def test_diffaugment_keeps_shapes_and_is_differentiable():
    x = torch.rand(4, 1, 8, 8, requires_grad=True)
    y = diff_augment(x, ("color", "translation", "cutout"))
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad is not None
    assert diff_augment(x, ()) is x


def test_translation_moves_pixels_and_fills_zero():
    torch.manual_seed(3)
    x = torch.ones(64, 1, 8, 8)
    moved = translation(x)
    # a shift of up to 1 pixel (1/8 of 8) brings zeros in on at most one row and one column
    zeros = (moved == 0).flatten(1).sum(1)
    assert zeros.max() <= 15 and zeros.max() > 0
    assert set(zeros.tolist()) <= {0, 8, 15}


def test_cutout_zeroes_a_half_size_square():
    torch.manual_seed(0)
    out = cutout(torch.ones(32, 1, 8, 8))
    zeros = (out == 0).flatten(1).sum(1)
    assert zeros.max() == 16 and zeros.min() >= 4  # a 4x4 square, clipped at the border


def test_ema_decay_ramps_up_to_the_chosen_one():
    from dltoolkit_gan.recipe import ema_decay_at

    assert ema_decay_at(0, 0.999) == pytest.approx(0.1)  # the first average is mostly the trained weights
    assert ema_decay_at(90, 0.999) == pytest.approx(0.91)
    assert ema_decay_at(100_000, 0.999) == 0.999
    initial_share = math.prod(ema_decay_at(t, 0.999) for t in range(850))
    assert initial_share < 1e-6 < 0.999**850  # a fixed decay would keep 43% of the random start


def test_label_names_resolve_to_class_indices():
    from dltoolkit._errors import DltkError
    from dltoolkit._generate import class_index

    fashion = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
    assert class_index(fashion, "Sneaker", "gan") == 7
    assert class_index(fashion, "ankle BOOT", "gan") == 9  # any case
    assert class_index(fashion, "3", "gan") == 3  # an index where no class has that name
    assert class_index(tuple("0123456789"), "7", "gan") == 7
    assert class_index(("1", "2", "3"), "1", "gan") == 0  # a class name wins over an index
    with pytest.raises(DltkError, match=r"^--label: 'Boot' is not a class of this run; give a name or an index"):
        class_index(fashion, "Boot", "gan")
    with pytest.raises(DltkError, match=r"^--label: this 'gan' run draws unconditionally"):
        class_index((), "3", "gan")
