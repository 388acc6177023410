import sys
import types

import torch

import dltoolkit
from dltoolkit_example import TinyGanConfig, tiny_gan

EXAMPLE = ("dltoolkit-example", "0.4.0", {"example": "dltoolkit_example"})
GAN = ("dltoolkit-gan", "0.1.0", {"gan": "dltoolkit_gan.plugin"})  # provides the gan recipe
VAE = ("dltoolkit-vae", "0.1.0", {"vae": "dltoolkit_vae.plugin"})

TINY_RUN = """
[run]
device = "cpu"

[recipe]
name = "gan"
epochs = 1
batch_size = 8

[model]
name = "tiny-gan"
width = 8
"""


def test_factory_builds_what_the_gan_recipe_expects():
    model = tiny_gan(TinyGanConfig(width=8), image_shape=(1, 8, 8))
    images = model.generator(torch.randn(4, model.latent_dim))
    assert images.shape == (4, 1, 8, 8) and images.abs().max() <= 1
    assert model.discriminator(images).shape == (4,)  # one logit per image


def test_model_is_listed_with_the_recipe_it_serves(dltk, fake_plugins):
    fake_plugins(EXAMPLE, GAN)
    result = dltk("list", "models")
    assert result.exit_code == 0, result.err
    (row,) = [line for line in result.out.splitlines() if line.split()[:1] == ["tiny-gan"]]
    assert row.endswith("(for: gan)  [dltoolkit-example]")


def test_bad_options_are_reported_one_line_each(dltk, fake_plugins, recipe_file):
    fake_plugins(EXAMPLE, GAN)
    path = recipe_file(TINY_RUN.replace("width = 8", "width = 0") + '[dataset]\nname = "digits"\n')
    result = dltk("check", path, "recipe.epochs=0")
    assert result.exit_code == 2
    assert result.err_lines == [
        f"{path}: recipe.epochs: must be >= 1, got 0",
        f"{path}: model.width: must be >= 1, got 0",
    ]


def test_check_refuses_the_model_with_another_recipe(dltk, fake_plugins, recipe_file):
    fake_plugins(EXAMPLE, GAN, VAE)
    path = recipe_file(TINY_RUN + '[dataset]\nname = "digits"\n')
    result = dltk("check", path, "recipe.name=vae")
    assert (result.exit_code, result.err_lines) == (
        2,
        [
            f"{path}: model.name: model 'tiny-gan' provides 'gan', but the recipe 'vae' needs a model "
            "that provides 'vae' (models that do: conv-vae, mlp-vae)"
        ],
    )


def test_a_tiny_run_writes_checkpoints(dltk, fake_plugins, recipe_file, tmp_path):
    fake_plugins(EXAMPLE, GAN)
    path = recipe_file(TINY_RUN + '[dataset]\nname = "digits"\n')
    result = dltk("run", path, "recipe.batch_size=64", "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.err
    assert (tmp_path / "run" / "checkpoints" / "checkpoint_22.pt").is_file()  # 1437 training digits // 64


def test_name_clash_names_both_plugins(dltk, fake_plugins):
    rival = types.ModuleType("rival_plugin")
    rival.dltk_register_models = dltoolkit.hookimpl(lambda: [dltoolkit.Component("tiny-gan", tiny_gan, TinyGanConfig)])
    fake_plugins(EXAMPLE, ("dltoolkit-rival", "1.0", {"rival": rival}))
    result = dltk("plugins")
    assert (
        "problem: model 'tiny-gan' is registered by both plugin 'example' (dltoolkit-example 0.4.0)"
        " and plugin 'rival' (dltoolkit-rival 1.0)"
    ) in result.out.splitlines()


def test_dash_p_loads_a_module(dltk, fake_plugins, monkeypatch):
    fake_plugins(GAN)  # no other installed plugin: built-ins, the gan plugin, then -p modules
    local = types.ModuleType("my_local_plugin")
    local.dltk_register_models = dltoolkit.hookimpl(
        lambda: [dltoolkit.Component("local-gan", tiny_gan, TinyGanConfig, provides="gan", needs={"dataset": "images"})]
    )
    monkeypatch.setitem(sys.modules, "my_local_plugin", local)
    result = dltk("list", "models", "-p", "my_local_plugin")
    rows = {line.split()[0]: line for line in result.out.splitlines()[1:]}
    assert rows["local-gan"].endswith("(for: gan)  [my_local_plugin]")
    assert rows["dcgan"].endswith("(for: gan)  [dltoolkit-gan]")
