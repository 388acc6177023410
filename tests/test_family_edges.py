"""The edges a new family hits, crossed by a third-party plugin written here with no core change.

The plugin is an image-to-image translator (its model learns to turn each digit into its
negative): it generates from input files (``dltk generate --input``), its predictions are image
files (``dltk predict --out DIR``), it offers held-out inputs as the preview the ``samples`` and
``progress-gif`` callbacks draw, it owns a handler on its evaluator, and it adds a command-line
option through ``dltk_add_options``. The other tests pin the edges of ``eval``, ``list``,
``export`` and the per-component check (issue 19, items 5 and 9).
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
from PIL import Image

from dltoolkit import Component, DltkError, MetricConfig, Scalar, Trained, hookimpl

try:  # where the public helpers live once the top-level names are cut down (issue 19, item 7)
    from dltoolkit.data import make_loader  # type: ignore[import-not-found]
except ImportError:
    from dltoolkit import make_loader

PLUGIN = "edges_translate_plugin"

# --- the third-party translator ------------------------------------------------------------------


@attrs.frozen
class TranslateConfig:
    epochs: int = 2
    batch_size: int = 64
    lr: float = 0.01


@attrs.frozen
class NetConfig:
    width: int = 4


@attrs.frozen
class HeldOutL1Config(MetricConfig):
    strength: float = 1.0


def invert_net(config: NetConfig, *, data: Any) -> Any:
    """A two-layer convolutional translator."""
    from torch import nn

    channels = data.shape[0]
    return nn.Sequential(
        nn.Conv2d(channels, config.width, 3, padding=1),
        nn.Tanh(),
        nn.Conv2d(config.width, channels, 3, padding=1),
        nn.Tanh(),
    )


def _read(path: Path, shape: tuple[int, ...]) -> Any:
    import torch

    with Image.open(path) as image:
        grey = np.asarray(image.convert("L").resize((shape[2], shape[1])), dtype=np.float32)
    return torch.from_numpy(grey / 127.5 - 1.0).unsqueeze(0)


def _write(image: Any, path: Path) -> None:
    pixels = ((image.clamp(-1, 1) + 1) * 127.5).round().byte().squeeze(0).numpy()
    Image.fromarray(pixels, mode="L").save(path)


def _files(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(p for p in path.iterdir() if p.suffix == ".png")


def make_trained(net: Any, device: Any, shape: tuple[int, ...], held_out: Any = None, handlers: Any = ()) -> Trained:
    import torch

    def translate(batch: Any) -> Any:
        with torch.no_grad():
            return net(batch.to(device)).cpu()

    def generate(out: Path, num: int | None = None, seed: int | None = None, input: Path | None = None) -> list:
        if input is None:
            raise DltkError("--input: give the images to translate")
        written = []
        for path in _files(Path(input)):
            _write(translate(_read(path, shape)[None])[0], Path(out) / path.name)
            written.append(Path(out) / path.name)
        return written

    def predict(path: Path | None, dataset: Any, out: Path | None = None) -> Any:
        if out is None:
            raise DltkError("--out: give a folder for the translated images")
        if path is not None:
            items = [(p.name, _read(p, shape)) for p in _files(path)]
        else:
            items = [(f"{i:04d}.png", dataset[i][0]) for i in range(4)]
        for name, image in items:
            _write(translate(image[None])[0], Path(out) / name)
            yield {"input": name, "output": name}

    def eval_step(batch: Any) -> Any:
        images = batch[0].to(device)
        return net(images), -images

    preview = None
    if held_out is not None:

        def preview(num: int, seed: int) -> Any:
            order = torch.randperm(len(held_out), generator=torch.Generator().manual_seed(seed))[:num]
            inputs = torch.stack([held_out[int(i)][0] for i in order])
            return lambda: torch.cat([inputs, translate(inputs)], dim=3)  # input | translation

    return Trained(
        modules={"net": net},
        generate=generate,
        predict=predict,
        eval_step=eval_step,
        preview=preview,
        evaluator_handlers=handlers,
    )


def translate_offers(model: Any, device: Any, data: Any) -> Trained:
    return make_trained(model.to(device), device, tuple(data.shape))


def train_translator(config: TranslateConfig, *, run: Any) -> None:
    """Learn to turn each image into its negative (L1, Adam)."""
    import torch
    from ignite.engine import Engine, Events

    torch.manual_seed(run.seed)
    dataset = run.build_dataset()
    held_out = run.build_dataset("test")
    net = run.build_model().to(run.device)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)

    def step(_engine: Engine, batch: Any) -> dict[str, Any]:
        images = batch[0].to(run.device)
        loss = (net(images) + images).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"l1": loss.detach()}

    def mark_evaluator(evaluator: Engine, run: Any) -> None:  # the recipe's own handler on its evaluator
        @evaluator.on(Events.COMPLETED)
        def _written(_engine: Engine) -> None:
            with open(run.ensure_dir() / "evaluated.txt", "a") as handle:
                handle.write("evaluated\n")

    trainer = Engine(step)
    loader = make_loader(dataset, config.batch_size, seed=run.seed, engine=trainer)
    run.fit(
        trainer,
        loader,
        epochs=config.epochs,
        state={"net": net, "optimizer": optimizer},
        trained=make_trained(net, run.device, tuple(run.data.shape), held_out, [mark_evaluator]),
    )


def held_l1(config: HeldOutL1Config, *, run: Any = None) -> Any:
    """Held-out L1 of the translations."""
    from ignite.metrics import MeanAbsoluteError

    with open("held-l1-options.json", "w") as handle:  # what the command line gave it (dltk eval)
        json.dump(attrs.asdict(config), handle)
    return MeanAbsoluteError()


def class_metric(config: HeldOutL1Config, *, run: Any = None) -> Any:
    """A metric of classifier runs only."""
    raise AssertionError("built for a run it cannot score")


def noise_metric(config: HeldOutL1Config, *, run: Any = None) -> Any:
    """A metric of images drawn from noise (the kind that downloads feature weights)."""
    raise AssertionError("built for a run that draws no samples: it would have downloaded")


def translator_plugin() -> types.ModuleType:
    module = types.ModuleType(PLUGIN)

    @hookimpl
    def dltk_register_recipes() -> list[Component]:
        return [
            Component(
                "translate",
                train_translator,
                TranslateConfig,
                requires=("model", "dataset"),
                needs={"model": "translator", "dataset": "images"},
                provides=("sample", "evaluate", "predict", "export"),
                reports=[Scalar("l1", "Mean absolute error of a batch's translations.", "lower")],
                offers=translate_offers,
            )
        ]

    @hookimpl
    def dltk_register_models() -> list[Component]:
        return [Component("invert-net", invert_net, NetConfig, provides="translator", needs={"dataset": "images"})]

    @hookimpl
    def dltk_register_metrics() -> list[Component]:
        def scalar(name: str) -> list[Scalar]:
            return [Scalar(name, "a score", "lower")]

        return [
            Component("held-l1", held_l1, HeldOutL1Config, needs={"recipe": "evaluate"}, reports=scalar("held-l1")),
            Component(
                "class-score",
                class_metric,
                HeldOutL1Config,
                needs={"recipe": ("evaluate", "class-logits")},
                reports=scalar("class-score"),
            ),
            Component("noise-fid", noise_metric, HeldOutL1Config, needs={"recipe": "sample"}, reports=scalar("nf")),
        ]

    @hookimpl
    def dltk_add_options(command: str, parser: Any) -> None:
        if command in ("generate", "predict", "eval"):
            parser.add_argument("--strength", type=float, help="how strongly to translate")

    for hook in (dltk_register_recipes, dltk_register_models, dltk_register_metrics, dltk_add_options):
        setattr(module, hook.__name__, hook)
    return module


RECIPE = """
seed = 3
[run]
device = "cpu"
[recipe]
name = "translate"
epochs = 2
[model]
name = "invert-net"
[dataset]
name = "digits"
[[metrics]]
name = "held-l1"
[[callbacks]]
name = "samples"
num = 6
nrow = 3
[[callbacks]]
name = "progress-gif"
"""


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(sys.modules, PLUGIN, translator_plugin())
    return PLUGIN


@pytest.fixture(scope="module")
def translated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One translator run for the tests of this module, which only read it."""
    from dltoolkit.testing import run_cli

    base = tmp_path_factory.mktemp("translator")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, PLUGIN, translator_plugin())
        patch.chdir(base)
        patch.delenv("DLTK_LOAD_PLUGINS", raising=False)
        (base / "recipe.toml").write_text(RECIPE)
        result = run_cli("run", base / "recipe.toml", "--run-dir", base / "run", "-p", PLUGIN)
    assert result.exit_code == 0, result.err
    return base / "run"


def _inputs(folder: Path, n: int = 3) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, size=(8, 8), dtype=np.uint8), mode="L").save(folder / f"in{i}.png")
    return folder


def test_preview_of_held_out_inputs_draws_grids_and_the_gif(translated):
    """samples/progress-gif draw the translator's own preview (input | translation), no noise sampler."""
    grids = sorted((translated / "samples").glob("grid_*.png"))
    assert len(grids) == 2  # one per epoch
    with Image.open(grids[-1]) as grid:
        width, height = grid.size
    # 6 previews of 8x16 (input beside translation), 3 per row, with torchvision's 2-pixel padding
    assert (width, height) == (3 * (16 + 2) + 2, 2 * (8 + 2) + 2)
    assert (translated / "samples" / "progress.gif").is_file()


def test_recipe_handlers_run_on_its_evaluator(translated):
    """Trained.evaluator_handlers: the recipe's own handler ran on each evaluation, no global hook."""
    assert (translated / "evaluated.txt").read_text().splitlines() == ["evaluated"] * 2


def test_generate_from_input_files(dltk, translated, plugin, tmp_path):
    inputs = _inputs(tmp_path / "inputs")
    result = dltk("generate", translated, "--input", inputs, "--out", tmp_path / "out", "-p", plugin)
    assert result.exit_code == 0, result.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["in0.png", "in1.png", "in2.png"]
    result = dltk("generate", translated, "--input", inputs / "in1.png", "--out", tmp_path / "one", "-p", plugin)
    assert result.exit_code == 0, result.err
    assert [p.name for p in (tmp_path / "one").iterdir()] == ["in1.png"]
    missing = tmp_path / "nowhere"
    result = dltk("generate", translated, "--input", missing, "--out", tmp_path / "x", "-p", plugin)
    assert (result.exit_code, result.err_lines) == (2, [f"--input: no such file or folder '{missing}'"])


def test_a_plugin_option_the_recipe_does_not_take_is_refused_in_one_line(dltk, translated, plugin, tmp_path):
    inputs = _inputs(tmp_path / "inputs")
    result = dltk("generate", "--help", "-p", plugin)
    assert result.exit_code == 0 and "--strength" in result.out and f"options of plugin {plugin}" in result.out
    result = dltk("generate", translated, "--input", inputs, "--strength", "2", "--out", tmp_path / "o", "-p", plugin)
    assert (result.exit_code, result.err_lines) == (2, ["--strength: the 'translate' recipe's runs do not take it"])
    assert not (tmp_path / "o").exists()
    result = dltk("generate", translated, "--input", inputs, "--strenght", "2", "--out", tmp_path / "o", "-p", plugin)
    assert (result.exit_code, len(result.err_lines)) == (2, 1), result.err  # a flag no plugin adds: one line too
    assert result.err.startswith("dltk generate: unrecognized arguments: --strenght 2 (dltk generate --help lists")
    result = dltk("generate", translated, "--input", inputs, "--label", "3", "--out", tmp_path / "o", "-p", plugin)
    assert result.exit_code == 2 and len(result.err_lines) == 1 and result.err.startswith("--label: ")


def test_predictions_that_are_files(dltk, translated, plugin, tmp_path):
    inputs = _inputs(tmp_path / "inputs")
    out = tmp_path / "translated"
    result = dltk("predict", translated, "--input", inputs, "--out", out, "-p", plugin)
    assert result.exit_code == 0, result.err
    assert sorted(p.name for p in out.iterdir()) == ["in0.png", "in1.png", "in2.png", "predictions.csv"]
    assert (out / "predictions.csv").read_text().splitlines()[0] == "input,output"
    assert result.out.strip() == f"dltk: wrote 4 files (3 predictions) to {out}"
    result = dltk("predict", translated, "--input", inputs, "--out", out, "-p", plugin)  # nothing replaced silently
    assert result.exit_code == 2 and "pass --force" in result.err
    result = dltk("predict", translated, "--input", "test", "--out", tmp_path / "split", "-p", plugin)
    assert result.exit_code == 0, result.err
    assert len(list((tmp_path / "split").glob("*.png"))) == 4
    result = dltk("predict", translated, "--input", inputs, "--out", tmp_path / "p.csv", "-p", plugin)
    assert (result.exit_code, result.err_lines) == (2, ["--out: give a folder for the translated images"])
    result = dltk("predict", translated, "--input", inputs, "--out", tmp_path / "s", "--strength", "1", "-p", plugin)
    assert (result.exit_code, result.err_lines) == (
        2,
        ["--strength: the 'translate' recipe's predictions do not take it"],
    )
    assert not (tmp_path / "s").exists()


def test_predict_and_generate_from_an_export_without_machine_paths(dltk, translated, plugin, tmp_path):
    from safetensors import safe_open

    export = tmp_path / "net.safetensors"
    assert dltk("export", translated, "--out", export, "-p", plugin).exit_code == 0
    with safe_open(str(export), framework="pt") as handle:
        meta = handle.metadata()
    assert all(str(translated.parent) not in value for value in meta.values()), meta
    assert meta["source"].startswith("run/checkpoints/")
    inputs = _inputs(tmp_path / "inputs")
    for source, out in ((translated, tmp_path / "a"), (export, tmp_path / "b")):
        assert dltk("predict", source, "--input", inputs, "--out", out, "-p", plugin).exit_code == 0
    for name in ("in0.png", "in1.png", "in2.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_export_keeps_the_dataset_file_name_not_its_folder(dltk, recipe_file, plugin, tmp_path):
    from dltoolkit.testing import write_image_folder

    write_image_folder(tmp_path / "pictures", n=4, size=(8, 8), formats=("png",))
    recipe = RECIPE.replace(
        'name = "digits"', f'name = "image-folder"\nroot = "{tmp_path / "pictures"}"\nimage_size = 8'
    )
    recipe = recipe.split("[[metrics]]")[0] + "channels = 1\n"
    run = tmp_path / "folder-run"
    path = recipe_file(recipe.replace("epochs = 2", "epochs = 1").replace("[recipe]", "[recipe]\nbatch_size = 2"))
    result = dltk("run", path, "--run-dir", run, "-p", plugin)
    assert result.exit_code == 0, result.err
    assert dltk("export", run, "--out", tmp_path / "m.safetensors", "-p", plugin).exit_code == 0
    from safetensors import safe_open

    with safe_open(str(tmp_path / "m.safetensors"), framework="pt") as handle:
        meta = handle.metadata()
    assert json.loads(meta["dataset"])["root"] == "pictures"
    assert all(str(tmp_path) not in value for value in meta.values()), meta


def test_eval_applies_the_compatibility_rules_of_check(dltk, translated, plugin):
    """A metric the run's recipe cannot feed is one line per metric, before anything is built (the
    metric factories here raise if called: no traceback, and nothing downloaded)."""
    result = dltk("eval", translated, "--metrics", "class-score", "-p", plugin)
    assert result.exit_code == 2, result.err
    (line,) = result.err_lines
    assert line.startswith(
        "--metrics: recipe 'translate' provides 'sample' + 'evaluate' + 'predict' + 'export', but the metric "
        "'class-score' needs a recipe that provides 'evaluate' + 'class-logits' (recipes that do: "
    )
    result = dltk("eval", translated, "--metrics", "noise-fid,class-score,class-score", "-p", plugin)
    assert result.exit_code == 2
    assert len(result.err_lines) == 2  # each refused metric once
    assert result.err_lines[0] == (
        "--metrics: the metric 'noise-fid' scores images drawn from noise, and this 'translate' run draws none"
    )


def test_eval_gives_plugin_options_to_the_metrics_that_take_them(dltk, translated, plugin, tmp_path):
    result = dltk("eval", translated, "--metrics", "held-l1", "--strength", "0.5", "-p", plugin)
    assert result.exit_code == 0, result.err
    assert json.loads(Path("held-l1-options.json").read_text())["strength"] == 0.5
    result = dltk("eval", translated, "--metrics", "held-l1", "--set", "strength=2", "-p", plugin)
    assert (result.exit_code, result.err_lines) == (2, ["--set: strength: use --strength"])


def test_list_says_what_fits_by_the_rules_of_check(dltk, monkeypatch):
    """A model whose own needs no dataset of a recipe meets is not listed for it (user trial: a
    text-only model was said to fit a recipe of time series)."""
    module = types.ModuleType("edges_fit_plugin")

    @attrs.frozen
    class Nothing:
        pass

    def factory(config: Any, **_: Any) -> Any:
        """A component."""

    @hookimpl
    def dltk_register_recipes() -> list[Component]:
        return [
            Component("on-text", factory, Nothing, needs={"model": "seq", "dataset": "text"}),
            Component("on-series", factory, Nothing, needs={"model": "seq", "dataset": "series"}),
        ]

    @hookimpl
    def dltk_register_models() -> list[Component]:
        return [
            Component("any-seq", factory, Nothing, provides="seq"),
            Component("text-only", factory, Nothing, provides="seq", needs={"dataset": "text"}),
        ]

    @hookimpl
    def dltk_register_datasets() -> list[Component]:
        return [
            Component("some-text", factory, Nothing, provides="text"),
            Component("some-series", factory, Nothing, provides="series"),
        ]

    for hook in (dltk_register_recipes, dltk_register_models, dltk_register_datasets):
        setattr(module, hook.__name__, hook)
    monkeypatch.setitem(sys.modules, "edges_fit_plugin", module)
    monkeypatch.setenv("DLTK_LOAD_PLUGINS", "")
    result = dltk("list", "models", "-p", "edges_fit_plugin")
    rows = {line.split()[0]: line for line in result.out.splitlines()[1:]}
    assert "(for: on-series, on-text)" in rows["any-seq"]
    assert "(for: on-text)" in rows["text-only"]


# --- a component's own check --------------------------------------------------------------------


@attrs.frozen
class PickyConfig:
    width: int = 4


def picky_check(config: PickyConfig, *, where: str, tables: Any, stage: str) -> list[str]:
    """The model's own rule against another table: its width must not exceed the data's side."""
    with open("picky-stages.txt", "a") as handle:
        handle.write(stage + "\n")
    if tables["dataset"].name == "digits" and config.width > 8:
        return [f"{where}.width: {config.width} is wider than the 8-pixel digits; at most 8"]
    return []


def test_a_component_checks_its_options_against_the_others_before_anything_is_built(
    dltk, recipe_file, plugin, monkeypatch, tmp_path
):
    module = translator_plugin()

    @hookimpl
    def dltk_register_models() -> list[Component]:
        check = f"{__name__}:picky_check"  # by name, imported when a recipe file names the model
        return [Component("picky-net", invert_net, PickyConfig, provides="translator", check=check)]

    extra = types.ModuleType("edges_picky_plugin")
    extra.dltk_register_models = dltk_register_models  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "edges_picky_plugin", extra)
    monkeypatch.setitem(sys.modules, PLUGIN, module)
    path = recipe_file(RECIPE.replace('name = "invert-net"', 'name = "picky-net"\nwidth = 9'))
    expected = [f"{path}: model.width: 9 is wider than the 8-pixel digits; at most 8"]
    result = dltk("check", path, "-p", PLUGIN, "-p", "edges_picky_plugin")
    assert (result.exit_code, result.err_lines) == (2, expected)
    result = dltk("run", path, "--run-dir", tmp_path / "r", "-p", PLUGIN, "-p", "edges_picky_plugin")
    assert (result.exit_code, result.err_lines) == (2, expected)
    assert not (tmp_path / "r").exists()
    result = dltk("check", path, "model.width=8", "-p", PLUGIN, "-p", "edges_picky_plugin")
    assert result.exit_code == 0, result.err
    assert Path("picky-stages.txt").read_text().split() == ["check", "run", "check"]
