"""A corpus of malformed inputs. Each one: exit code 2, one line per problem naming the file (or
argument) and the key, no traceback, and nothing written."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import attrs
import pytest

from dltoolkit import Component, hookimpl, option

GOOD = """seed = 0
[run]
dir = "runs"
device = "cpu"
[recipe]
name = "toy"
epochs = 1
batch_size = 32
[model]
name = "toy-mlp"
[dataset]
name = "digits"
"""


@attrs.frozen
class _ScoreConfig:
    every: int = option(1, doc="Epochs between evaluations.", validator=attrs.validators.ge(1))


METRIC_PLUGIN = types.ModuleType("corpus_metric")  # a metric to name twice (the core registers none)
METRIC_PLUGIN.dltk_register_metrics = hookimpl(  # type: ignore[attr-defined]
    lambda: [Component("score", lambda config, **_: None, _ScoreConfig, summary="a metric")]
)

# (id, recipe text or None for GOOD, extra CLI args, expected lines; "{f}" is the recipe path)
RECIPE_CASES = [
    ("seed-too-large", GOOD.replace("seed = 0", "seed = 4294967296"), [], ["{f}: seed: expected an integer from 0"]),
    ("betas-scalar", GOOD, ["recipe.betas_g=0.5"], ["{f}: recipe.betas_g: expected an array of 2 values, got 0.5"]),
    (
        "betas-not-toml",
        GOOD,
        ["recipe.betas_g=[0.5,a]"],
        ["{f}: recipe.betas_g: expected an array of 2 values, got '[0.5,a]'"],
    ),
    (
        "duplicate-metric",
        GOOD + "[[metrics]]\nname = 'score'\n[[metrics]]\nname = 'score'\n",
        ["-p", "corpus_metric"],
        ["{f}: metrics.1.name: 'score' is already metrics.0"],
    ),
    ("broken-toml", "[recipe\nname='toy'", [], ["{f}: not valid TOML: "]),
    ("unclosed-string", 'seed = "0\n', [], ["{f}: not valid TOML: "]),
    ("duplicate-table", GOOD + "[model]\nname = 'toy-mlp'\n", [], ["{f}: not valid TOML: "]),
    ("duplicate-key", GOOD.replace("epochs = 1", "epochs = 1\nepochs = 2"), [], ["{f}: not valid TOML: "]),
    ("unknown-top-level", "sed = 1\n" + GOOD, [], ["{f}: sed: unknown key (did you mean 'seed'?)"]),
    (
        "unknown-run-key",
        GOOD.replace('device = "cpu"', 'devise = "cpu"'),
        [],
        ["{f}: run.devise: unknown key (did you mean 'device'?)"],
    ),
    (
        "unknown-recipe-key",
        GOOD.replace("epochs = 1", "epoch = 1"),
        [],
        ["{f}: recipe.epoch: unknown key (did you mean 'epochs'?)"],
    ),
    ("unknown-model-key", GOOD + "", ["model.latent=3"], ["{f}: model.latent: unknown key"]),
    ("unknown-dataset-key", GOOD, ["dataset.size=3"], ["{f}: dataset.size: unknown key"]),
    ("unknown-checkpoint-key", GOOD + "[checkpoint]\nevery_n = 2\n", [], ["{f}: checkpoint.every_n: unknown key"]),
    (
        "unknown-callback-key",
        GOOD + "[[callbacks]]\nname = 'samples'\nevry = 2\n",
        [],
        ["{f}: callbacks.0.evry: unknown key (did you mean 'every'?)"],
    ),
    (
        "seed-string",
        GOOD.replace("seed = 0", 'seed = "zero"'),
        [],
        ["{f}: seed: expected an integer from 0 to 2**32 - 1, got 'zero'"],
    ),
    (
        "seed-negative",
        GOOD.replace("seed = 0", "seed = -1"),
        [],
        ["{f}: seed: expected an integer from 0 to 2**32 - 1, got -1"],
    ),
    ("epochs-float", GOOD, ["recipe.epochs=1.5"], ["{f}: recipe.epochs: expected an integer, got 1.5"]),
    ("epochs-zero", GOOD, ["recipe.epochs=0"], ["{f}: recipe.epochs: must be >= 1, got 0"]),
    ("batch-bool", GOOD, ["recipe.batch_size=true"], ["{f}: recipe.batch_size: expected an integer, got True"]),
    ("lr-string", GOOD, ["recipe.lr_g=fast"], ["{f}: recipe.lr_g: expected a number, got 'fast'"]),
    ("lr-negative", GOOD, ["recipe.lr_d=-0.1"], ["{f}: recipe.lr_d: must be > 0, got -0.1"]),
    (
        "betas-out-of-range",
        GOOD,
        ["recipe.betas_g=[0.5, 1.5]"],
        ["{f}: recipe.betas_g: each beta must be in [0, 1), got [0.5, 1.5]"],
    ),
    (
        "betas-too-many",
        GOOD,
        ["recipe.betas_g=[0.5, 0.9, 0.1]"],
        ["{f}: recipe.betas_g: expected an array of 2 values, got 3: [0.5, 0.9, 0.1]"],
    ),
    (
        "bad-loss",
        GOOD,
        ["recipe.loss=wgan"],
        ["{f}: recipe.loss: must be one of ('non-saturating', 'hinge'), got 'wgan'"],
    ),
    (
        "bad-precision",
        GOOD,
        ["recipe.precision=fp8"],
        ["{f}: recipe.precision: must be one of ('fp32', 'bf16'), got 'fp8'"],
    ),
    (
        "bad-device",
        GOOD,
        ["run.device=tpu9"],
        ["{f}: run.device: unknown device 'tpu9': use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"],
    ),
    ("dataset-size-range", GOOD, ["dataset.image_size=2"], ["{f}: dataset.image_size: must be >= 4, got 2"]),
    (
        "model-depth-range",
        GOOD,
        ["model.depth=9"],
        ["{f}: model.depth: must be <= 4, got 9"],
    ),
    (
        "unknown-recipe",
        GOOD.replace('name = "toy"', 'name = "toyy"'),
        [],
        ["{f}: recipe.name: unknown recipe 'toyy' (did you mean 'toy'?); available: 'toy'"],
    ),
    ("unknown-model", GOOD, ["model.name=stylegan"], ["{f}: model.name: unknown model 'stylegan'"]),
    ("unknown-dataset", GOOD, ["dataset.name=celeba"], ["{f}: dataset.name: unknown dataset 'celeba'"]),
    (
        "unknown-metric",
        GOOD + "[[metrics]]\nname = 'fdi'\n",
        [],
        ["{f}: metrics.0.name: unknown metric 'fdi'"],
    ),
    ("unknown-callback", GOOD + "[[callbacks]]\nname = 'gif'\n", [], ["{f}: callbacks.0.name: unknown callback 'gif'"]),
    (
        "import-path-model",
        GOOD,
        ["model.name=torch.nn.Linear"],
        [
            "{f}: model.name: unknown model 'torch.nn.Linear': a recipe file names registered components, "
            "not import paths"
        ],
    ),
    (
        "import-path-dataset",
        GOOD,
        ["dataset.name=my_pkg:make"],
        [
            "{f}: dataset.name: unknown dataset 'my_pkg:make': a recipe file names registered components, "
            "not import paths"
        ],
    ),
    ("name-not-string", GOOD, ["model.name=3"], ["{f}: model.name: expected a string, got 3"]),
    (
        "table-not-table",
        GOOD.replace('[dataset]\nname = "digits"\n', ""),
        ["dataset=3"],
        ["{f}: dataset: expected a table, got 3"],
    ),
    ("metrics-not-array", GOOD, ["metrics=3"], ["{f}: metrics: expected an array of tables ([[metrics]]), got 3"]),
    (
        "missing-recipe",
        GOOD.replace('[recipe]\nname = "toy"\nepochs = 1\nbatch_size = 32\n', ""),
        [],
        ["{f}: recipe: missing required table [recipe] (with name = ...)"],
    ),
    (
        "missing-dataset",
        GOOD.replace('[dataset]\nname = "digits"\n', ""),
        [],
        ["{f}: dataset: the 'toy' recipe needs a [dataset] table"],
    ),
    (
        "best-by-unknown",
        GOOD + "[checkpoint]\nbest_by = 'fid'\n",
        [],
        ["{f}: checkpoint.best_by: 'fid' is not a score of this recipe file"],
    ),
    ("keep-zero", GOOD + "[checkpoint]\nkeep = 0\n", [], ["{f}: checkpoint.keep: must be >= 1, got 0"]),
    (
        "unit-bad",
        GOOD + "[checkpoint]\nunit = 'step'\n",
        [],
        ["{f}: checkpoint.unit: must be one of ('epoch', 'iteration'), got 'step'"],
    ),
    (
        "batch-too-large",
        GOOD,
        ["recipe.batch_size=5000"],
        ["{f}: recipe.batch_size: 5000 is more than the 1437 training images"],
    ),
    (
        "missing-mnist",
        GOOD,
        ["dataset.name=mnist", "dataset.root=nowhere"],
        ["{f}: dataset.root: MNIST not found in 'nowhere'"],
    ),
    (
        "two-problems",
        GOOD,
        ["recipe.epochs=0", "model.depth=0"],
        ["{f}: recipe.epochs: must be >= 1, got 0", "{f}: model.depth: must be >= 1, got 0"],
    ),
]


@pytest.mark.parametrize(("text", "args", "expected"), [c[1:] for c in RECIPE_CASES], ids=[c[0] for c in RECIPE_CASES])
def test_bad_recipe_file(dltk, tmp_path, text, args, expected, monkeypatch):
    monkeypatch.setitem(sys.modules, METRIC_PLUGIN.__name__, METRIC_PLUGIN)  # "-p corpus_metric"
    monkeypatch.setenv("DLTK_LOAD_PLUGINS", "toy")  # messages list what is available: pin it
    recipe = tmp_path / "bad.toml"
    recipe.write_text(text if text is not None else GOOD)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = dltk("run", recipe, *args)
    assert result.exit_code == 2, result.err
    assert "Traceback" not in result.err
    lines = result.err_lines
    assert len(lines) == len(expected), lines
    for line, want in zip(lines, expected, strict=True):
        assert line.startswith(want.format(f=recipe)), line
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
    assert not (tmp_path / "runs").exists()


def _files(tmp_path: Path) -> dict[str, Path]:
    not_run = tmp_path / "not-a-run"
    not_run.mkdir()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 64)
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    return {"not_run": not_run, "junk": junk, "good": good, "missing": tmp_path / "missing.toml"}


CLI_CASES = [
    ("override-without-equals", ["run", "{good}", "recipe.epochs"], ["override 'recipe.epochs': expected KEY=VALUE"]),
    ("override-empty-key", ["run", "{good}", "=3"], ["override '=3': '' is not a key path"]),
    ("override-index-out-of-range", ["run", "{good}", "callbacks.2.every=1"], ["{good}: callbacks: expected an array"]),
    ("missing-recipe-file", ["run", "{missing}"], ["{missing}: no such file"]),
    ("recipe-is-a-directory", ["check", "{not_run}"], ["{not_run}: is a directory, not a recipe file"]),
    ("resume-not-a-run", ["run", "--resume", "{not_run}"], ["{not_run}: not a run directory (no recipe.toml)"]),
    ("resume-missing", ["run", "--resume", "{missing}"], ["{missing}: not a run directory (no recipe.toml)"]),
    (
        "generate-not-a-run",
        ["generate", "{not_run}", "--num", "1", "--out", "{out}"],
        ["{not_run}: not a run directory (no checkpoints/ folder)"],
    ),
    (
        "generate-junk-checkpoint",
        ["generate", "{junk}", "--num", "1", "--out", "{out}"],
        ["{junk}: not a readable checkpoint"],
    ),
    (
        "export-not-a-run",
        ["export", "{not_run}", "--out", "{out}/g.safetensors"],
        ["{not_run}: not a run directory (no checkpoints/ folder)"],
    ),
    (
        "eval-unknown-metric",
        ["eval", "{not_run}", "--metrics", "fidd"],
        ["--metrics: unknown metric 'fidd'", "{not_run}: not a run directory (no recipe.toml"],
    ),
    ("list-unknown-kind", ["list", "widgets"], ["dltk list: unknown kind 'widgets'"]),
]


@pytest.mark.parametrize(("args", "expected"), [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_bad_command_line(dltk, tmp_path, args, expected):
    files = {**_files(tmp_path), "out": tmp_path / "out"}
    before = sorted(p.name for p in tmp_path.iterdir())
    result = dltk(*[a.format(**files) for a in args])
    assert result.exit_code == 2, result.err
    assert "Traceback" not in result.err
    assert len(result.err_lines) == len(expected), result.err_lines
    for line, want in zip(result.err_lines, expected, strict=True):
        assert line.startswith(want.format(**files)), line
    assert sorted(p.name for p in tmp_path.iterdir()) == before
