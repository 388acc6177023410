"""The gan recipe's losses, stabilisers and class-conditional models, end to end on tiny digits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dltoolkit._checkpoint import checkpoints_in, load_checkpoint
from dltoolkit.testing import write_class_folders

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


@pytest.mark.slow
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
    # one word is not a list of one (it used to be read letter by letter: "unknown augmentation 'c'")
    (["recipe.diffaugment=cutout"], "recipe.diffaugment: expected an array such as [\"cutout\"], got 'cutout'"),
    (["recipe.diffaugment=['cutout', 3]"], "recipe.diffaugment.1: expected a string, got 3"),
    (
        ["recipe.diffaugment=[cutout, color]"],  # what a shell leaves of recipe.diffaugment=["cutout", "color"]
        "recipe.diffaugment: expected an array, got '[cutout, color]', which is not one in TOML: quote each "
        'string, as in ["cutout", "color"]; on a shell, single-quote the whole KEY=VALUE so that those quotes survive',
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


@pytest.mark.slow
def test_spectral_norm_run_checkpoints_its_power_iteration(dltk, tiny_gan, tmp_path):
    run = tmp_path / "run"
    result = dltk(
        "run", tiny_gan(), "recipe.epochs=1", "recipe.spectral_norm=true", "recipe.loss=hinge", "--run-dir", run
    )
    assert result.exit_code == 0, result.err
    state = load_checkpoint(checkpoints_in(run / "checkpoints")[0])["discriminator"]
    assert any(k.endswith("parametrizations.weight.original") for k in state)
    assert any(k.endswith("parametrizations.weight.0._u") for k in state)


def _state(run: Path, iteration: int | None = None) -> dict[str, torch.Tensor]:
    path = (
        checkpoints_in(run / "checkpoints")[0]
        if iteration is None
        else run / "checkpoints" / f"checkpoint_{iteration}.pt"
    )
    data = load_checkpoint(path)
    return {f"{part}.{k}": v for part in ("generator", "generator_ema", "discriminator") for k, v in data[part].items()}


@pytest.mark.slow
def test_ema_and_diffaugment_runs_resume_bit_exactly(dltk, tiny_gan, tmp_path):
    recipe = tiny_gan()
    options = [
        "recipe.ema_decay=0.9",
        "recipe.diffaugment=['color','translation','cutout']",
        "recipe.spectral_norm=true",
    ]
    args = [*options, "recipe.epochs=2", "checkpoint.unit=iteration", "checkpoint.every=20", "checkpoint.keep=10"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert dltk("run", recipe, *args, "--run-dir", straight).exit_code == 0
    assert dltk("run", recipe, *args, "--run-dir", split).exit_code == 0
    for path in checkpoints_in(split / "checkpoints"):  # as if the run had died at iteration 60
        if int(path.stem.split("_")[1]) > 60:
            path.unlink()
    result = dltk("run", "--resume", split)
    assert result.exit_code == 0, result.err
    a, b = _state(straight), _state(split)
    assert a.keys() == b.keys() and any(k.startswith("generator_ema.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs"
    # the average is not the generator itself
    assert not torch.equal(a["generator.net.0.weight"], a["generator_ema.net.0.weight"])


@pytest.mark.slow
def test_ema_generator_is_what_generate_and_export_use(dltk, tiny_gan, tmp_path):
    from safetensors.torch import load_file

    from dltoolkit.sampling import ImageSampler
    from dltoolkit_gan.models import mlp_gan
    from dltoolkit_gan.options import MlpGanConfig

    run = tmp_path / "run"
    assert dltk("run", tiny_gan(), "recipe.epochs=1", "recipe.ema_decay=0.95", "--run-dir", run).exit_code == 0
    assert dltk("export", run, "--out", tmp_path / "g.safetensors").exit_code == 0
    tensors = load_file(tmp_path / "g.safetensors")
    assert tensors and all(k.startswith("generator_ema.") for k in tensors)
    for source, out in ((run, "from-run"), (tmp_path / "g.safetensors", "from-export")):
        result = dltk("generate", source, "--num", "4", "--out", tmp_path / out, "--seed", "5")
        assert result.exit_code == 0, result.err

    data = load_checkpoint(checkpoints_in(run / "checkpoints")[0])
    expected = {}
    for part in ("generator_ema", "generator"):
        model = mlp_gan(MlpGanConfig(latent_dim=8, hidden_dim=16, depth=1), image_shape=(1, 8, 8))
        model.generator.load_state_dict(data[part])
        sampler = ImageSampler(model.generator, 8, "cpu")
        expected[part] = to_png_pixels(sampler.generate(sampler.noise(4, 5)))
    for out in ("from-run", "from-export"):
        written = [pixels(tmp_path / out / f"{i:04d}.png") for i in range(4)]
        assert all(np.array_equal(w, e) for w, e in zip(written, expected["generator_ema"], strict=True))
    assert not all(np.array_equal(w, e) for w, e in zip(written, expected["generator"], strict=True))


def to_png_pixels(images: torch.Tensor) -> list[np.ndarray]:
    from dltoolkit.images import to_uint8

    return [to_uint8(image)[0].numpy() for image in images]


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image).copy()


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory, tiny_gan_text) -> Path:
    """A tiny class-conditional MLP GAN (cgan) trained for one epoch on the labelled digits."""
    from dltoolkit.testing import run_cli

    folder = tmp_path_factory.mktemp("cgan")
    recipe = folder / "tiny.toml"
    recipe.write_text(tiny_gan_text.format(runs=folder.as_posix()))
    result = run_cli("run", recipe, "recipe.epochs=1", "model.name=cgan", "--run-dir", folder / "run")
    assert result.exit_code == 0, result.err
    return folder / "run"


@pytest.mark.slow
def test_generate_label_draws_that_class(conditional_run, dltk, tmp_path):
    from dltoolkit import DataSpec
    from dltoolkit_gan.models import cgan
    from dltoolkit_gan.options import MlpGanConfig
    from dltoolkit_gan.recipe import ClassConditionalSampler

    for label, out in (("7", "by-name"), ("07", "by-index")):
        result = dltk(
            "generate", conditional_run, "--num", "5", "--out", tmp_path / out, "--seed", "2", "--label", label
        )
        assert result.exit_code == 0, result.err
    data = DataSpec.images((1, 8, 8), class_names=[str(i) for i in range(10)])
    model = cgan(MlpGanConfig(latent_dim=8, hidden_dim=16, depth=1), image_shape=(1, 8, 8), data=data)
    model.generator.load_state_dict(load_checkpoint(checkpoints_in(conditional_run / "checkpoints")[0])["generator"])
    sampler = ClassConditionalSampler(model.generator, 8, data.class_names, "cpu")
    z = sampler.noise(5, 2, label=7)
    assert torch.equal(z[:, -1], torch.full((5,), 7.0)) and torch.equal(
        z[:, :-1], torch.randn(5, 8, generator=torch.Generator().manual_seed(2))
    )
    expected = to_png_pixels(model.generator(z[:, :-1], torch.full((5,), 7)).detach())
    for out in ("by-name", "by-index"):
        written = [pixels(tmp_path / out / f"{i:04d}.png") for i in range(5)]
        assert all(np.array_equal(w, e) for w, e in zip(written, expected, strict=True))


@pytest.mark.slow
def test_conditional_grids_have_one_row_per_class(conditional_run, dltk, tmp_path):
    with Image.open(sorted((conditional_run / "samples").glob("grid_*.png"))[-1]) as grid:
        assert grid.size == (6 * 10 + 2, 10 * 10 + 2)  # 64 // 10 = 6 digits of 8x8 a row, 10 rows
    result = dltk("generate", conditional_run, "--num", "30", "--out", tmp_path / "g", "--grid")
    assert result.exit_code == 0, result.err
    with Image.open(tmp_path / "g" / "grid.png") as grid:
        assert grid.size == (3 * 10 + 2, 10 * 10 + 2)
    assert len(list((tmp_path / "g").glob("0*.png"))) == 30


@pytest.mark.slow
def test_label_is_refused_where_it_cannot_apply(conditional_run, dltk, tiny_gan, tmp_path):
    result = dltk("generate", conditional_run, "--num", "2", "--out", tmp_path / "x", "--label", "ten")
    assert (result.exit_code, result.err_lines) == (
        2,
        [
            "--label: 'ten' is not a class of this run; give a name or an index from 0 to 9 "
            "(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)"
        ],
    )
    run = tmp_path / "plain"
    assert dltk("run", tiny_gan(), "recipe.epochs=1", "--run-dir", run).exit_code == 0
    result = dltk("generate", run, "--num", "2", "--out", tmp_path / "y", "--label", "3")
    assert (result.exit_code, result.err_lines) == (
        2,
        [
            "--label: this 'gan' run draws unconditionally (its model was not trained on classes); "
            "--label applies to class-conditional runs"
        ],
    )
    assert not (tmp_path / "y").exists()


@pytest.mark.slow
def test_conditional_models_take_an_image_folder_with_class_subfolders(dltk, tiny_gan, tmp_path):
    write_class_folders(tmp_path / "classes", ("circle", "square"), 8, channels=1)
    folder = (
        "dataset.name=image-folder", "dataset.image_size=8", "dataset.channels=1", "model.name=cgan",
        "recipe.batch_size=4",
    )  # fmt: skip
    recipe = tiny_gan()
    result = dltk("check", recipe, *folder, f"dataset.root={tmp_path / 'classes'}")
    assert result.exit_code == 0, result.err
    run = tmp_path / "run"
    result = dltk("run", recipe, *folder, f"dataset.root={tmp_path / 'classes'}", "recipe.epochs=1", "--run-dir", run)
    assert result.exit_code == 0, result.err
    result = dltk("generate", run, "--num", "2", "--out", tmp_path / "squares", "--label", "square")
    assert result.exit_code == 0, result.err
    # a flat folder has no classes: refused once the data is built, in one line, nothing left behind
    write_class_folders(tmp_path, ["flat"], 8, channels=1)  # images straight in flat/: no classes
    result = dltk("run", recipe, *folder, f"dataset.root={tmp_path / 'flat'}", "--run-dir", tmp_path / "flat-run")
    assert result.exit_code == 2
    assert len(result.err_lines) == 1 and "Traceback" not in result.err
    assert result.err_lines[0].startswith(f"{recipe}: dataset.name: dataset 'image-folder' gives ")
    assert result.err_lines[0].endswith("without labels, but the model 'cgan' needs 'labels'")
    assert not (tmp_path / "flat-run").exists()


def test_minibatch_std_lets_the_discriminator_see_a_collapsed_batch():
    from dltoolkit_gan.models import MlpDiscriminator, minibatch_stddev

    torch.manual_seed(0)
    plain = MlpDiscriminator([16], (1, 8, 8))
    with_std = MlpDiscriminator([16], (1, 8, 8), minibatch_std=True)
    # off: the checkpoint keys and shapes of before the option, so older runs load and resume
    assert list(plain.state_dict()) == ["net.1.weight", "net.1.bias", "net.3.weight", "net.3.bias"]
    assert with_std.net[-1].in_features == plain.net[-1].in_features + 1
    image = torch.rand(1, 1, 8, 8) * 2 - 1
    varied = torch.cat([image, torch.rand(7, 1, 8, 8) * 2 - 1])
    collapsed = image.expand(8, 1, 8, 8)
    # off, an image's score does not depend on the batch; on, the same image scores differently
    # in a batch of copies (feature spread 0) and in a varied one
    assert torch.allclose(plain(varied)[0], plain(collapsed)[0])
    assert not torch.allclose(with_std(varied)[0], with_std(collapsed)[0])
    assert torch.equal(minibatch_stddev(torch.ones(4, 3)), torch.zeros(4, 1))
    h = torch.tensor([[0.0, 2.0], [2.0, 6.0]])  # stds 1 and 2 -> 1.5 for every row
    assert torch.equal(minibatch_stddev(h), torch.full((2, 1), 1.5))


@pytest.mark.parametrize("model", ["mlp-gan", "cgan"])
@pytest.mark.slow
def test_minibatch_std_runs_resume_and_generate(dltk, tiny_gan, tmp_path, model):
    recipe = tiny_gan()
    args = [
        f"model.name={model}",
        "model.minibatch_std=true",
        "recipe.ema_decay=0.9",
        "recipe.epochs=2",
        "checkpoint.unit=iteration",
        "checkpoint.every=20",
        "checkpoint.keep=10",
    ]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert dltk("run", recipe, *args, "--run-dir", straight).exit_code == 0
    assert dltk("run", recipe, *args, "--run-dir", split).exit_code == 0
    for path in checkpoints_in(split / "checkpoints"):
        if int(path.stem.split("_")[1]) > 20:
            path.unlink()
    result = dltk("run", "--resume", split)
    assert result.exit_code == 0, result.err
    a, b = _state(straight), _state(split)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["discriminator.net.3.weight"].shape == (1, 16 + 1)  # the last layer reads the spread too
    result = dltk("generate", split, "--num", "4", "--out", tmp_path / "samples")
    assert result.exit_code == 0, result.err
    assert len(list((tmp_path / "samples").glob("*.png"))) == 4
