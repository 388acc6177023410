"""Recipe files: parsing, strict validation, overrides, and the messages users see."""

from __future__ import annotations

import types
from pathlib import Path

import attrs
import pytest

from dltoolkit import Component, DltkError, RecipeFile, hookimpl, option
from dltoolkit._manager import make_plugin_host
from dltoolkit._registry import Registry
from dltoolkit._toml import apply_overrides, parse_override


@attrs.frozen
class _ScoreConfig:
    every: int = option(1, doc="Epochs between evaluations.", validator=attrs.validators.ge(1))
    num_samples: int = option(8, doc="Samples scored.", validator=attrs.validators.ge(1))


_metric_plugin = types.ModuleType("config_test_metric")
_metric_plugin.dltk_register_metrics = hookimpl(  # type: ignore[attr-defined]
    lambda: [Component("score", lambda config, **_: None, _ScoreConfig, summary="a metric scoring samples")]
)


@pytest.fixture(scope="module")
def registry() -> Registry:
    # the toy and one metric only, so that messages listing what is available do not depend on what is installed
    return Registry(make_plugin_host([_metric_plugin], env={"DLTK_LOAD_PLUGINS": "toy"}))


def problems(path: Path, registry: Registry, overrides=()) -> list[str]:
    with pytest.raises(DltkError) as info:
        RecipeFile.from_toml(path, registry, overrides)
    return list(info.value.problems)


def test_valid_recipe_is_frozen_and_typed(tiny_recipe, registry):
    recipe = RecipeFile.from_toml(tiny_recipe(), registry)
    assert recipe.recipe.name == "toy"
    assert recipe.recipe.config.epochs == 2
    assert recipe.recipe.config.betas_g == (0.5, 0.999)  # the default, typed as declared
    assert recipe.model.config.hidden_dim == 16
    assert recipe.callbacks[0].name == "samples"
    assert recipe.checkpoint.keep == 2
    with pytest.raises(AttributeError):
        recipe.recipe.config.epochs = 3  # type: ignore[misc]


def test_unknown_keys_at_every_level_with_suggestions(recipe_file, registry):
    path = recipe_file("""
seeed = 1
[run]
devise = "cpu"
[recipe]
name = "toy"
epoch = 3
[model]
name = "toy-mlp"
hiden_dim = 3
[dataset]
name = "digits"
[checkpoint]
kep = 2
""")
    assert problems(path, registry) == [
        f"{path}: seeed: unknown key (did you mean 'seed'?)",
        f"{path}: run.devise: unknown key (did you mean 'device'?)",
        f"{path}: checkpoint.kep: unknown key (did you mean 'keep'?)",
        f"{path}: recipe.epoch: unknown key (did you mean 'epochs'?)",
        f"{path}: model.hiden_dim: unknown key (did you mean 'hidden_dim'?)",
    ]


def test_range_errors_reported_together(recipe_file, registry):
    path = recipe_file("""
[recipe]
name = "toy"
lr_g = -1.0
loss = "wasserstein"
epochs = 0
[model]
name = "toy-mlp"
depth = 0
[dataset]
name = "digits"
channels = 2
""")
    assert problems(path, registry) == [
        f"{path}: recipe.epochs: must be >= 1, got 0",
        f"{path}: recipe.lr_g: must be > 0, got -1.0",
        f"{path}: recipe.loss: must be one of ('non-saturating', 'hinge'), got 'wasserstein'",
        f"{path}: model.depth: must be >= 1, got 0",
        f"{path}: dataset.channels: must be one of (1, 3), got 2",
    ]


def test_type_errors_name_the_value(recipe_file, registry):
    path = recipe_file("""
[recipe]
name = "toy"
epochs = 2.5
batch_size = "64"
channels_last = 1
betas_d = [0.5]
[model]
name = "toy-mlp"
[dataset]
name = "digits"
""")
    assert problems(path, registry) == [
        f"{path}: recipe.epochs: expected an integer, got 2.5",
        f"{path}: recipe.batch_size: expected an integer, got '64'",
        f"{path}: recipe.betas_d: expected an array of 2 values, got 1: [0.5]",
        f"{path}: recipe.channels_last: expected true or false, got 1",
    ]


def test_unknown_component_names(recipe_file, registry):
    path = recipe_file("""
[recipe]
name = "toyy"
[model]
name = "torch.nn.Linear"
[dataset]
name = "mnst"
[[callbacks]]
name = "sample"
""")
    lines = problems(path, registry)
    assert lines[0].startswith(f"{path}: recipe.name: unknown recipe 'toyy' (did you mean 'toy'?); available: 'toy'")
    assert lines[1].startswith(
        f"{path}: model.name: unknown model 'torch.nn.Linear': a recipe file names registered "
        "components, not import paths; available: 'toy-mlp'"
    )
    assert lines[2].startswith(f"{path}: dataset.name: unknown dataset 'mnst' (did you mean 'mnist'?)")
    assert lines[3].startswith(f"{path}: callbacks.0.name: unknown callback 'sample' (did you mean 'samples'?)")


def test_missing_tables_and_names(recipe_file, registry):
    path = recipe_file("""
[recipe]
name = "toy"
[model]
latent_dim = 3
""")
    assert problems(path, registry) == [
        f"{path}: model.name: missing: which model? ('toy-mlp')",
        f"{path}: dataset: the 'toy' recipe needs a [dataset] table",
    ]
    empty = recipe_file("seed = 1\n", "empty.toml")
    assert problems(empty, registry) == [f"{empty}: recipe: missing required table [recipe] (with name = ...)"]


def test_broken_toml_and_duplicate_tables(recipe_file, registry):
    broken = recipe_file("[recipe\nname = 'toy'\n", "broken.toml")
    assert problems(broken, registry)[0].startswith(f"{broken}: not valid TOML: ")
    duplicate = recipe_file("[recipe]\nname = 'toy'\n[recipe]\nname = 'toy'\n", "dup.toml")
    (line,) = problems(duplicate, registry)
    assert line.startswith(f"{duplicate}: not valid TOML: ") and "recipe" in line


def test_missing_file(registry, tmp_path):
    assert problems(tmp_path / "nope.toml", registry) == [f"{tmp_path / 'nope.toml'}: no such file"]


def test_best_by_must_name_a_score(tiny_recipe, registry):
    path = tiny_recipe()
    assert problems(path, registry, ["checkpoint.best_by=fd"]) == [
        f"{path}: checkpoint.best_by: 'fd' is not a score of this recipe file; choose 'train/loss_d' or 'train/loss_g'"
    ]
    # a metric table with a bad option is one problem, not also a best_by naming its score
    path = tiny_recipe('[[metrics]]\nname = "score"\nnum_samples = 0\n', "metric.toml")
    found = problems(path, registry, ["checkpoint.best_by=score"])
    assert len(found) == 1 and found[0].startswith(f"{path}: metrics.0.num_samples: "), found


@pytest.mark.parametrize(
    ("text", "parts", "value"),
    [
        ("recipe.epochs=3", ["recipe", "epochs"], 3),
        ("metrics=[]", ["metrics"], []),
        ('dataset.root="/x y"', ["dataset", "root"], "/x y"),
        ("dataset.root=/x", ["dataset", "root"], "/x"),
        ("recipe.lr_g=1e-3", ["recipe", "lr_g"], 1e-3),
        ("recipe.betas_g=[0.0, 0.9]", ["recipe", "betas_g"], [0.0, 0.9]),
        ("callbacks.0.every=2", ["callbacks", 0, "every"], 2),
        ("dataset.download=true", ["dataset", "download"], True),
    ],
)
def test_parse_override(text, parts, value):
    assert parse_override(text) == (parts, value)


def test_override_errors():
    with pytest.raises(ValueError, match=r"override 'epochs': expected KEY=VALUE \(for example recipe.epochs=3\)"):
        parse_override("epochs")
    with pytest.raises(ValueError, match=r"override 'recipe..x=1': 'recipe..x' is not a key path"):
        parse_override("recipe..x=1")
    with pytest.raises(DltkError) as info:
        apply_overrides({"callbacks": [{"name": "samples"}], "seed": 1}, ["callbacks.3.every=1", "seed.x=2"], "r.toml")
    assert info.value.problems == (
        "r.toml: callbacks.3: no such entry (the array has 1)",
        "r.toml: seed.x: cannot set inside 1",
    )


def test_overrides_apply_and_validate(tiny_recipe, registry):
    path = tiny_recipe()
    recipe = RecipeFile.from_toml(path, registry, ["recipe.epochs=7", "dataset.image_size=16", "callbacks=[]"])
    assert recipe.recipe.config.epochs == 7
    assert recipe.dataset.config.image_size == 16
    assert recipe.callbacks == ()
    assert recipe.data["recipe"]["epochs"] == 7
    assert problems(path, registry, ["recipe.epochs=many"]) == [
        f"{path}: recipe.epochs: expected an integer, got 'many'"
    ]


def test_best_by_defaults_to_fid_only_with_a_fid_metric(tiny_recipe, registry):
    assert RecipeFile.from_toml(tiny_recipe(), registry).checkpoint.best_by is None


@attrs.frozen
class _Item:
    a: int = 0


@attrs.frozen
class _ArrayOptions:
    words: tuple[str, ...] = ()
    pairs: list[tuple[int, int]] = attrs.field(factory=list)
    items: list[_Item] = attrs.field(factory=list)


def test_array_options_name_every_bad_item_and_refuse_a_string():
    """Arrays of any length: a string is not one (it was read letter by letter), and each bad item
    is named by its 0-based index, nested ones and tables inside too, all at once."""
    from dltoolkit._config import structure

    Options = _ArrayOptions
    problems: list[tuple[str, str]] = []
    structure(Options, {"words": "abc"}, "model", problems)
    assert problems == [("model.words", "expected an array such as [\"abc\"], got 'abc'")]
    problems = []
    data = {"words": ["a", 1, 2], "pairs": [[1, 2], [3, "x"]], "items": [{"a": 1}, {"a": "z"}]}
    structure(Options, data, "model", problems)
    assert sorted(problems) == [
        ("model.items.1.a", "expected an integer, got 'z'"),
        ("model.pairs.1", "expected an integer, got 'x'"),  # a fixed-size pair: named as one
        ("model.words.1", "expected a string, got 1"),
        ("model.words.2", "expected a string, got 2"),
    ]
    problems = []
    assert structure(Options, {"words": ["a", "b"], "pairs": [[1, 2]]}, "model", problems) == Options(
        ("a", "b"), [(1, 2)]
    )
    assert problems == []
