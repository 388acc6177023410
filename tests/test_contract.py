"""The family-free contract: the core knows no family, and a new family is only a plugin.

The third-party plugin in tests/example_plugin (written from docs/writing_plugins.md) adds the
``autoencode`` family; here it is loaded with ``-p`` (tests/test_installed_plugin.py installs it).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "tests" / "example_plugin"
PUBLIC = (
    "dltoolkit.data",
    "dltoolkit.images",
    "dltoolkit.files",
    "dltoolkit.sampling",
    "dltoolkit.writers",
    "dltoolkit.testing",
)
FAMILY_WORDS = re.compile(r"generator|discriminator|latent|loss_g|fidelity|inception", re.IGNORECASE)
# torch names its random-number generators Generator (torch.Generator, generator=...): not a family word
RNG_USES = re.compile(r"torch\.Generator|generator=(rng|torch\.Generator)")

AE_RECIPE = """
[run]
device = "cpu"
[recipe]
name = "autoencode"
epochs = 2
batch_size = 64
log_every = 1000
[model]
name = "tiny-ae"
[dataset]
name = "digits"
[[metrics]]
name = "mse"
[[callbacks]]
name = "loss-plot"
[checkpoint]
best_by = "mse"
"""


@pytest.fixture
def example(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    return ("-p", "dltoolkit_example")


def python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if ".venv" not in p.parts)


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_the_core_names_no_model_family():
    hits = []
    for path in python_files(ROOT / "dltoolkit"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if FAMILY_WORDS.search(RNG_USES.sub("", line)):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not hits, "\n".join(hits)


def test_the_core_imports_no_plugin_and_plugins_only_the_public_api():
    core = [(p, m) for p in python_files(ROOT / "dltoolkit") for m in imports(p) if m.startswith("dltoolkit_")]
    assert not core, core
    # the plugins' code (their tests, like the core's, may use the core's internals to check it)
    plugin_files = [p for p in python_files(ROOT / "plugins") if p.relative_to(ROOT).parts[2:3] != ("tests",)]
    plugin_files += python_files(EXAMPLE)
    assert len(plugin_files) > 8
    private = []
    for path in plugin_files:
        own = path.relative_to(ROOT).parts[1].replace("-", "_") if path.is_relative_to(ROOT / "plugins") else ""
        own = "dltoolkit_example" if path.is_relative_to(EXAMPLE) else own
        for module in imports(path):
            inside_core = module.startswith("dltoolkit.") and module not in PUBLIC  # names: test_public_api.py
            # another plugin only through its top-level package, whose __all__ is its public API (the
            # translate plugin shares dltoolkit_gan's losses and dltoolkit_vision's classifier that way)
            other_plugin = module.startswith("dltoolkit_") and "." in module and module.split(".")[0] != own
            if inside_core or other_plugin:
                private.append(f"{path.relative_to(ROOT)}: {module}")
    assert not private, private


def test_check_refuses_a_model_or_data_of_another_family_with_one_line(dltk, recipe_file, example, monkeypatch):
    monkeypatch.setenv("DLTK_LOAD_PLUGINS", "toy")  # the messages list what is installed: pin it
    path = recipe_file(AE_RECIPE)
    assert dltk("check", path, *example).exit_code == 0
    result = dltk("check", path, "model.name=toy-mlp", *example)
    assert (result.exit_code, result.err_lines) == (
        2,
        [
            f"{path}: model.name: model 'toy-mlp' provides 'toy', but the recipe 'autoencode' needs a model that "
            "provides 'autoencoder' (models that do: tiny-ae)"
        ],
    )
    toy = recipe_file(AE_RECIPE.replace('"autoencode"', '"toy"').replace('best_by = "mse"', ""), name="toy.toml")
    result = dltk("check", toy, "recipe.log_every=10", "metrics=[]", *example)
    assert result.exit_code == 2
    assert result.err_lines == [
        f"{toy}: model.name: model 'tiny-ae' provides 'autoencoder', but the recipe 'toy' needs a model that "
        "provides 'toy' (models that do: toy-mlp)"
    ]
    # a metric that scores predictions, on a recipe that makes none; the same at dltk run, nothing written
    result = dltk("run", toy, "model.name=toy-mlp", "checkpoint.best_by=mse", *example)
    assert (result.exit_code, result.err_lines) == (
        2,
        [
            f"{toy}: metrics.0.name: recipe 'toy' provides 'sample' + 'export', "
            "but the metric 'mse' needs a recipe that provides 'evaluate' (recipes that do: autoencode)"
        ],
    )
    assert not Path("runs").exists()


def test_data_of_another_kind_is_refused_before_anything_is_built(dltk, recipe_file, monkeypatch):
    """A sequence dataset (the kind an RNN plugin brings) with an image recipe and its image models."""
    import types

    import attrs

    from dltoolkit import Component, hookimpl

    @attrs.frozen
    class Rows:
        pass

    plugin = types.ModuleType("sequence_data_plugin")
    plugin.dltk_register_datasets = hookimpl(
        lambda: [Component("rows", lambda config: None, Rows, provides=("sequences", "labels"))]
    )
    monkeypatch.setitem(__import__("sys").modules, plugin.__name__, plugin)
    path = recipe_file(AE_RECIPE.replace('"autoencode"', '"toy"').replace('"tiny-ae"', '"toy-mlp"'))
    result = dltk("check", path, "dataset.name=rows", "metrics=[]", "checkpoint.best_by=loss_d", "-p", plugin.__name__)
    assert result.exit_code == 2
    assert result.err_lines == [
        f"{path}: dataset.name: dataset 'rows' provides 'sequences' + 'labels', but the recipe 'toy' needs a "
        "dataset that provides 'images' (datasets that do: cifar10, digits, fashion-mnist, image-folder, mnist)",
        f"{path}: dataset.name: dataset 'rows' provides 'sequences' + 'labels', but the model 'toy-mlp' needs a "
        "dataset that provides 'images' (datasets that do: cifar10, digits, fashion-mnist, image-folder, mnist)",
    ]


def test_data_that_declared_nothing_is_checked_once_built(dltk, recipe_file, monkeypatch, tmp_path):
    """A dataset registered without `provides` passes dltk check; dltk run refuses its data by its spec."""
    import types

    import attrs
    import torch

    from dltoolkit import Component, DataSpec, hookimpl

    @attrs.frozen
    class Rows:
        pass

    class Sequences(torch.utils.data.Dataset):
        spec = DataSpec("sequences", (8, 8), num_classes=10)

        def __len__(self) -> int:
            return 64

        def __getitem__(self, index: int):
            return torch.zeros(8, 8), torch.tensor(index % 10)

    plugin = types.ModuleType("undeclared_data_plugin")
    plugin.dltk_register_datasets = hookimpl(lambda: [Component("rows", lambda config: Sequences(), Rows)])
    monkeypatch.setitem(__import__("sys").modules, plugin.__name__, plugin)
    path = recipe_file(AE_RECIPE.replace('"autoencode"', '"toy"').replace('"tiny-ae"', '"toy-mlp"'))
    args = ("dataset.name=rows", "metrics=[]", "checkpoint.best_by=loss_d", "-p", plugin.__name__)
    assert dltk("check", path, *args).exit_code == 0
    result = dltk("run", path, *args, "--run-dir", tmp_path / "r")
    assert (result.exit_code, result.err_lines) == (
        2,
        [
            f"{path}: dataset.name: dataset 'rows' gives sequences 8x8, 10 classes, but the {owner} needs 'images'"
            for owner in ("recipe 'toy'", "model 'toy-mlp'")
        ],
    )
    assert not (tmp_path / "r").exists()


def test_list_shows_which_recipe_each_model_and_dataset_serves(dltk, example):
    result = dltk("list", *example)
    rows = {line.split()[0]: line for line in result.out.splitlines() if line.startswith("  ")}
    assert "(for: autoencode)" in rows["tiny-ae"] and "(for: toy)" in rows["toy-mlp"]
    assert "autoencode" in rows["digits"] and "toy" in rows["digits"]
    verbose = dltk("list", "recipe", "-v").out
    assert "epochs (int, default 2): Passes over the training data. May change on --resume." in verbose


@pytest.mark.slow
def test_a_new_family_runs_end_to_end_through_the_core(dltk, recipe_file, example, tmp_path, monkeypatch):
    """Recipe, model and an Ignite metric from a plugin: logs, evaluation, best checkpoint, plot, export, eval."""
    import types

    from dltoolkit import hookimpl

    roles: list[str] = []
    recorder = types.ModuleType("role_recorder")
    recorder.dltk_engine_created = hookimpl(lambda engine, role: roles.append(role))
    monkeypatch.setitem(__import__("sys").modules, recorder.__name__, recorder)
    path = recipe_file(AE_RECIPE)
    result = dltk("run", path, "--run-dir", tmp_path / "ae", *example, "-p", recorder.__name__)
    assert result.exit_code == 0, result.err
    records = [json.loads(line) for line in (tmp_path / "ae" / "metrics.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in records] == ["epoch", "eval", "epoch", "eval"]
    evals = [r for r in records if r["kind"] == "eval"]
    assert evals[1]["protocol"]["mse"]["split"] == "test" and evals[1]["protocol"]["mse"]["count"] == 360
    assert evals[1]["mse"] < evals[0]["mse"]
    assert "mse=" in result.err and "loss=" in result.err  # the progress line shows declared scalars
    # the end-of-run line names what this run wrote (samples/ holds its loss plot)
    assert result.out.splitlines()[-1].startswith(
        f"dltk: done. Results in {tmp_path / 'ae'}/ (samples/, checkpoints/, metrics.jsonl)"
    )
    quiet = dltk("run", path, "callbacks=[]", "--run-dir", tmp_path / "quiet", *example)
    assert f"Results in {tmp_path / 'quiet'}/ (checkpoints/, metrics.jsonl)" in quiet.out  # no empty samples/
    best = list((tmp_path / "ae" / "checkpoints").glob("best_checkpoint_*_eval-mse=*.pt"))
    assert len(best) == 1 and best[0].name.startswith("best_checkpoint_44_")  # lower is better, as declared
    # the run is shorter than log_every: the plot draws the per-epoch records of the declared `loss`
    with Image.open(tmp_path / "ae" / "samples" / "losses.png") as plot:
        assert len(plot.convert("L").getcolors(256)) > 10

    assert dltk("export", tmp_path / "ae", "--out", tmp_path / "ae.safetensors", *example).exit_code == 0
    for source in (tmp_path / "ae", tmp_path / "ae.safetensors"):
        scored = dltk("eval", source, "--metrics", "mse", "--json", tmp_path / "s.json", "--force", *example)
        assert scored.exit_code == 0, scored.err
        assert json.loads((tmp_path / "s.json").read_text())["mse"]["value"] == pytest.approx(evals[1]["mse"])
    assert roles == ["trainer", "evaluator", "evaluator"]  # the held-out metric ran on an evaluator engine
    result = dltk("predict", tmp_path / "ae.safetensors", "--input", "test", "--out", tmp_path / "p.csv", *example)
    assert result.exit_code == 0, result.err
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert rows[0] == "index,reconstruction_mse" and len(rows) == 361 and rows[1].startswith("0,")
    result = dltk("predict", tmp_path / "ae", "--input", tmp_path / "nowhere", *example)
    assert result.err_lines == [
        f"--input: '{tmp_path / 'nowhere'}' is not a file, a folder, or a split name (train, test)"
    ]
    result = dltk("generate", tmp_path / "ae", "--num", "2", "--out", tmp_path / "g", *example)
    assert result.exit_code == 2
    assert result.err_lines == [
        f"{best[0]}: the 'autoencode' recipe does not draw samples (its runs offer: evaluate, predict, export); "
        "dltk generate needs one that does"
    ]


@pytest.mark.slow
def test_resume_accepts_only_options_declared_resumable(dltk, recipe_file, example, tmp_path):
    path = recipe_file(AE_RECIPE)
    assert dltk("run", path, "recipe.epochs=1", "--run-dir", tmp_path / "r", *example).exit_code == 0
    result = dltk("run", "--resume", tmp_path / "r", "recipe.batch_size=32", "model.code=3", *example)
    assert result.exit_code == 2
    assert [line.split(": cannot")[0] for line in result.err_lines] == [
        f"{tmp_path / 'r' / 'recipe.toml'}: recipe.batch_size",
        f"{tmp_path / 'r' / 'recipe.toml'}: model.code",
    ]
    allowed = (
        "run.device, run.threads, checkpoint.every, checkpoint.keep, recipe.epochs, recipe.lr, "
        "recipe.compile, recipe.sync_batchnorm, "  # the core's [recipe] options: how a run executes
        "metrics.0.every"  # dltoolkit.MetricConfig's every (the core's held-out metric option)
    )
    assert f"(only {allowed} can)" in result.err_lines[0]
    result = dltk("run", "--resume", tmp_path / "r", "recipe.epochs=2", "recipe.lr=0.0005", *example)
    assert result.exit_code == 0, result.err
    assert "lr = 0.0005" in (tmp_path / "r" / "recipe.toml").read_text()


def test_registration_hooks_are_traced(dltk, monkeypatch):
    monkeypatch.setenv("DLTK_TRACE_PLUGINS", "1")
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        result = dltk("list", "models")
    assert result.exit_code == 0
    for hook in ("dltk_register_recipes", "dltk_register_models", "dltk_register_datasets"):
        assert hook in result.err + err.getvalue()
