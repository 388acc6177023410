"""The sequence plugin: digit rows with the digits split, text windows and their bad input, LSTM/GRU
shapes, compatibility checks, end-to-end sequence classification and a character language model
(held-out accuracy and bits per character, eval, predict, export, seeded generation) and bit-exact
resume after SIGKILL of each recipe, and MNIST read as rows."""

from __future__ import annotations

import csv
import json
import math
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from runs import ITERATION_CHECKPOINTS, log_lines, subprocess_run

from dltoolkit import DataSpec, DltkError
from dltoolkit._checkpoint import checkpoints_in, load_checkpoint
from dltoolkit.testing import write_mnist
from dltoolkit_sequence import (
    DigitRowsConfig,
    MnistRowsConfig,
    RnnConfig,
    TextFileConfig,
    TimeSeriesConfig,
    build,
    char_windows,
    digit_rows,
    digits_split_indices,
    make_classify_step,
    mnist_rows,
    text_file,
    time_series,
)

ROOT = Path(__file__).resolve().parents[3]  # the repository

TINY_CLASSIFY = """
seed = 1

[run]
dir = "{runs}"
device = "cpu"
threads = 1

[recipe]
name = "sequence-classify"
epochs = 2
batch_size = 64
log_every = 5

[model]
name = "gru"
hidden_size = 16
dropout = 0.1

[dataset]
name = "digit-rows"

[[metrics]]
name = "accuracy"

[checkpoint]
every = 1
keep = 2
best_by = "eval/accuracy"
"""

TINY_TEXT = """
seed = 0

[run]
dir = "{runs}"
device = "cpu"
threads = 1

[recipe]
name = "language-model"
epochs = 2
batch_size = 8
log_every = 5

[model]
name = "lstm"
hidden_size = 32
embedding_dim = 8

[dataset]
name = "text-file"
path = "{text}"
seq_len = 20

[[metrics]]
name = "bpc"

[[metrics]]
name = "perplexity"

[checkpoint]
best_by = "eval/bpc"
"""

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "cats", "sleep", "in", "sun"]


def write_text(path: Path, lines: int = 200) -> Path:
    rng = np.random.default_rng(0)
    text = "\n".join(" ".join(rng.choice(WORDS, size=6)) + "." for _ in range(lines))
    path.write_text(text, encoding="utf-8")
    return path


def write_classify(folder: Path) -> Path:
    path = folder / "tiny_rnn.toml"
    path.write_text(TINY_CLASSIFY.format(runs=(folder / "runs").as_posix()), encoding="utf-8")
    return path


def write_lm(folder: Path, text: Path | str) -> Path:
    path = folder / "tiny_lm.toml"
    path.write_text(TINY_TEXT.format(runs=(folder / "runs").as_posix(), text=Path(text).as_posix()), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def classified(tmp_path_factory) -> Path:
    """A tiny GRU trained for 2 epochs (22 iterations each) on digit rows, checkpointed every 10
    iterations: also the uninterrupted reference of the resume test."""
    from dltoolkit.testing import run_cli

    folder = tmp_path_factory.mktemp("rnn")
    result = run_cli("run", write_classify(folder), *ITERATION_CHECKPOINTS, "--run-dir", folder / "run")
    assert result.exit_code == 0, result.err
    return folder / "run"


@pytest.fixture(scope="module")
def language(tmp_path_factory) -> Path:
    """A tiny LSTM language model trained for 2 epochs (33 iterations each) on a text the test
    writes, checkpointed every 10 iterations: also the uninterrupted reference of its resume test."""
    from dltoolkit.testing import run_cli

    folder = tmp_path_factory.mktemp("lm")
    text = write_text(folder / "text.txt")
    result = run_cli("run", write_lm(folder, text), *ITERATION_CHECKPOINTS, "--run-dir", folder / "run")
    assert result.exit_code == 0, result.err
    return folder / "run"


# --- data -------------------------------------------------------------------------------------


def test_digit_rows_use_the_digits_split_and_scale_to_unit_range():
    from dltoolkit.builtin.datasets import digits_split_indices as image_split

    for split in ("train", "test"):
        assert np.array_equal(digits_split_indices(split), image_split(split))
    train, test = digit_rows(DigitRowsConfig()), digit_rows(DigitRowsConfig(), split="test")
    assert (len(train), len(test)) == (1437, 360)
    assert np.bincount(test.targets.numpy()).tolist() == [36] * 10
    assert train.spec == DataSpec("sequences", (8, 8), num_classes=10, class_names=[str(d) for d in range(10)])
    x, y = train.__getitems__([0, 1, 2])
    assert x.shape == (3, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert float(train.inputs.min()) == 0.0 and float(train.inputs.max()) == 1.0
    from sklearn.datasets import load_digits

    first = digits_split_indices("test")[0]
    assert np.allclose(test.inputs[0].numpy(), load_digits().images[first] / 16.0)  # row t = time step t


def test_mnist_rows_read_the_official_splits_row_by_row(tmp_path):
    from dltoolkit.builtin.datasets import ImageDatasetConfig, mnist

    write_mnist(tmp_path, n_train=20, n_test=6)
    train = mnist_rows(MnistRowsConfig(root=str(tmp_path)))
    test = mnist_rows(MnistRowsConfig(root=str(tmp_path)), split="test")
    assert (len(train), len(test)) == (20, 6)
    assert train.spec == DataSpec("sequences", (28, 28), num_classes=10, class_names=[str(d) for d in range(10)])
    x, y = train.__getitems__([0, 1])
    assert x.shape == (2, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    images = mnist(ImageDatasetConfig(root=str(tmp_path), split="test"))
    assert torch.equal(test.inputs, images.images[:, 0].float() / 255.0)  # row t = time step t
    assert torch.equal(test.targets, torch.as_tensor(images.labels, dtype=torch.int64))
    assert float(train.inputs.min()) >= 0.0 and float(train.inputs.max()) == 1.0


def test_missing_mnist_rows_is_one_line_and_exit_2(dltk, tmp_path):
    recipe = write_classify(tmp_path)
    empty = tmp_path / "empty"
    result = dltk("run", recipe, "dataset={name='mnist-rows'}", f"dataset.root={empty}", "--run-dir", tmp_path / "r")
    assert (result.exit_code, result.err_lines) == (
        2,
        [
            f"{recipe}: dataset.root: MNIST not found in '{empty}': put "
            "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte there, or set dataset.download = true to fetch it"
        ],
    )
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_a_sequence_classifier_trains_on_mnist_rows(dltk, tmp_path):
    write_mnist(tmp_path, n_train=128, n_test=16)
    recipe = write_classify(tmp_path)
    dataset = f"dataset={{name='mnist-rows',root='{tmp_path.as_posix()}'}}"
    result = dltk("run", recipe, dataset, "recipe.epochs=1", "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.err
    evals = [r for r in log_lines(tmp_path / "run") if r["kind"] == "eval"]
    assert evals[-1]["protocol"]["accuracy"]["count"] == 16


@pytest.mark.slow
def test_the_shipped_mnist_rows_recipe_runs_on_idx_files(dltk, tmp_path):
    write_mnist(tmp_path, n_train=256, n_test=16)
    recipe = ROOT / "recipes" / "rnn_mnist_rows.toml"
    overrides = [f"dataset.root={tmp_path}", "recipe.epochs=1", "model.hidden_size=8", "callbacks=[]"]
    result = dltk("run", recipe, *overrides, "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.err
    assert [r["epoch"] for r in log_lines(tmp_path / "run") if r["kind"] == "eval"] == [1]


def test_char_windows_predict_the_next_character():
    inputs, targets = char_windows(torch.arange(10), 3)
    assert inputs.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert targets.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]


def test_text_file_splits_by_position_with_one_vocabulary(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("abcdefghij" * 9 + "zzzzzzzzzz", encoding="utf-8")  # 100 chars; the last 10 are held out
    config = TextFileConfig(path=str(path), seq_len=4)
    train, test = text_file(config), text_file(config, split="test")
    assert train.spec.vocab == tuple("abcdefghijz") == test.spec.vocab
    assert train.spec.kind == "text" and train.spec.vocab_size == 11 and train.spec.shape == (4,)
    assert (len(train), len(test)) == ((90 - 1) // 4, (10 - 1) // 4)
    z = train.spec.vocab.index("z")
    assert (test.inputs == z).all() and not (train.inputs == z).any()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "dataset.path: '{path}' does not exist (give a UTF-8 text file)"),
        (b"", "dataset.path: '{path}' is empty"),
        (b"abc\xff\xfedef", "dataset.path: '{path}' is not UTF-8 text (byte 3 cannot be decoded)"),
        (
            b"hello world",
            "dataset.path: '{path}' is too short: its train part has 10 characters, and one window needs "
            "dataset.seq_len + 1 = 21; give a longer text or a smaller dataset.seq_len",
        ),
    ],
    ids=["missing", "empty", "not-utf8", "too-short"],
)
def test_bad_text_is_one_line_and_exit_2(dltk, tmp_path, content, message):
    path = tmp_path / "text.txt"
    if content is not None:
        path.write_bytes(content)
    recipe = write_lm(tmp_path, path)
    result = dltk("run", recipe, "--run-dir", tmp_path / "run")
    assert (result.exit_code, result.err_lines) == (2, [f"{recipe}: " + message.format(path=path)])
    assert not (tmp_path / "run").exists()


def test_the_shipped_text_recipe_asks_for_a_path(dltk, tmp_path):
    recipe = ROOT / "recipes" / "rnn_text.toml"
    assert dltk("check", recipe).exit_code == 0
    result = dltk("run", recipe, "--run-dir", tmp_path / "run")
    assert (result.exit_code, result.err_lines) == (
        2,
        [f"{recipe}: dataset.path: no text file given; set dataset.path=FILE (any UTF-8 text)"],
    )


# --- models ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_classifiers_give_one_logit_row_per_sequence(cell, bidirectional):
    config = RnnConfig(hidden_size=5, num_layers=2, dropout=0.1, bidirectional=bidirectional)
    model = build(cell, config, DataSpec("sequences", (7, 3), num_classes=4))
    assert model(torch.zeros(2, 7, 3)).shape == (2, 4)
    assert model.class_names == ("0", "1", "2", "3")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_language_models_continue_from_their_state(cell):
    model = build(cell, RnnConfig(hidden_size=6, embedding_dim=3), DataSpec("text", (5,), vocab_size=4, vocab="abcd"))
    model.eval()
    ids = torch.tensor([[0, 1, 2, 3, 0]])
    logits, _ = model(ids)
    assert logits.shape == (1, 5, 4)
    head, state = model(ids[:, :3])
    tail, _ = model(ids[:, 3:], state)
    assert torch.allclose(torch.cat([head, tail], 1), logits, atol=1e-6)


def test_models_refuse_what_they_cannot_read():
    with pytest.raises(DltkError, match=r"^model.bidirectional: a language model predicts the next character"):
        build("lstm", RnnConfig(bidirectional=True), DataSpec("text", (5,), vocab_size=4, vocab="abcd"))
    with pytest.raises(
        DltkError, match=r"^model: gru takes labelled sequences \(length x features\), series or text, the dataset"
    ):
        build("gru", RnnConfig(), DataSpec("sequences", (8, 8)))


def test_classify_step_clips_and_reports_the_declared_scalars():
    from dltoolkit_sequence import CLASSIFY_REPORTS

    model = build("gru", RnnConfig(hidden_size=4), DataSpec("sequences", (3, 2), num_classes=2))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e6)
    before = [p.detach().clone() for p in model.parameters()]
    step = make_classify_step(model, optimizer, device=torch.device("cpu"), clip_grad_norm=1e-3)
    out = step(None, (torch.rand(4, 3, 2), torch.tensor([0, 1, 0, 1])))
    assert list(out) == [s.name for s in CLASSIFY_REPORTS] and all(v.dim() == 0 for v in out.values())
    moved = torch.cat([(p - b).flatten() for p, b in zip(model.parameters(), before, strict=True)])
    assert moved.norm().item() == pytest.approx(1e-3 * 1e6, rel=1e-3)  # lr x the clipped norm


# --- compatibility --------------------------------------------------------------------------


def test_check_refuses_parts_of_other_families(dltk, tmp_path):
    recipe = write_classify(tmp_path)
    result = dltk("check", recipe, "model={name='mlp-vae'}")
    assert (result.exit_code, len(result.err_lines)) == (2, 2)  # and mlp-vae needs images
    assert result.err_lines[0] == (
        f"{recipe}: model.name: model 'mlp-vae' provides 'vae', but the recipe 'sequence-classify' needs a model "
        "that provides 'sequence-model' (models that do: gpt, gru, lstm, transformer)"
    )
    result = dltk("check", recipe, "dataset.name=digits")
    assert result.exit_code == 2 and result.err_lines[0].startswith(
        f"{recipe}: dataset.name: dataset 'digits' provides 'images' + 'labels', but the recipe 'sequence-classify'"
    )
    result = dltk("check", recipe, "recipe.name=language-model", "checkpoint.best_by=loss")
    assert result.exit_code == 2
    assert any(
        line.startswith(f"{recipe}: metrics.0.name: recipe 'language-model' provides") for line in result.err_lines
    )
    assert any("dataset 'digit-rows' provides 'sequences' + 'labels'" in line for line in result.err_lines)


@pytest.mark.parametrize("name", ["rnn_digit_rows.toml", "rnn_text.toml", "rnn_mnist_rows.toml"])
@pytest.mark.slow
def test_checking_the_shipped_recipes_imports_no_torch(tmp_path, name):
    probe = (
        "import sys; from dltoolkit.cli import main; code = main(sys.argv[1:]); "
        "print(code, sorted(m for m in ('torch', 'ignite', 'sklearn') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, "check", str(ROOT / "recipes" / name)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.stdout.strip().splitlines()[-1] == "0 []", result.stdout + result.stderr


# --- sequence classification end to end -------------------------------------------------------


@pytest.mark.slow
def test_classify_run_logs_scalars_and_held_out_accuracy(classified):
    names = [p.name for p in checkpoints_in(classified / "checkpoints")]
    assert names == ["checkpoint_44.pt", "checkpoint_40.pt", "checkpoint_30.pt"]
    data = load_checkpoint(classified / "checkpoints" / "checkpoint_44.pt")
    assert set(data) >= {"model", "optimizer", "trainer", "rng", "meta", "stats"}
    assert data["meta"]["recipe"] == "sequence-classify" and data["meta"]["model"] == "gru"
    records = log_lines(classified)
    steps = [r for r in records if r["kind"] == "step"]
    assert steps and all(r["iteration"] % 5 == 0 and {"loss", "accuracy"} <= set(r) for r in steps)
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["epoch"] for r in evals] == [1, 2]
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in evals) and evals[1]["accuracy"] > 0.3
    assert evals[1]["protocol"]["accuracy"]["count"] == 360


@pytest.mark.slow
def test_eval_predict_and_export_of_a_classifier(classified, dltk, tmp_path):
    result = dltk("eval", classified, "--json", tmp_path / "scores.json")
    assert result.exit_code == 0, result.err
    best = max(r["accuracy"] for r in log_lines(classified) if r["kind"] == "eval")
    assert json.loads((tmp_path / "scores.json").read_text())["accuracy"]["value"] == pytest.approx(best)
    result = dltk("predict", classified, "--input", "test", "--out", tmp_path / "p.csv")
    assert result.exit_code == 0, result.err
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert len(rows) == 360 and set(rows[0]) == {"input", "label", "probability", "true_label"}
    right = sum(r["label"] == r["true_label"] for r in rows) / 360
    assert right == pytest.approx(best)
    result = dltk("predict", classified, "--input", tmp_path / "p.csv")
    assert result.exit_code == 2 and result.err_lines[-1].endswith("give --input train or --input test")
    assert dltk("export", classified, "--out", tmp_path / "m.safetensors").exit_code == 0
    result = dltk("eval", tmp_path / "m.safetensors", "--metrics", "accuracy", "--json", tmp_path / "again.json")
    assert result.exit_code == 0, result.err
    assert json.loads((tmp_path / "again.json").read_text())["accuracy"]["value"] == pytest.approx(best)


def final_state(run: Path) -> dict[str, torch.Tensor]:
    data = load_checkpoint(checkpoints_in(run / "checkpoints")[0])
    state = {f"model.{k}": v for k, v in data["model"].items()}
    for index, entry in data["optimizer"]["state"].items():
        state.update({f"optimizer.{index}.{k}": v for k, v in entry.items() if isinstance(v, torch.Tensor)})
    state.update({f"stats.{k}": v for k, v in data["stats"].items() if isinstance(v, torch.Tensor)})
    return state


def records(run: Path) -> list[dict]:
    lines = log_lines(run)
    for line in lines:
        for protocol in line.get("protocol", {}).values():
            protocol.pop("seconds", None)
    return lines


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bit_identical(classified, dltk, tmp_path):
    run = tmp_path / "killed"
    killed = subprocess_run(write_classify(tmp_path), run, *ITERATION_CHECKPOINTS, env={"DLTK_FAULT_KILL_AT": "27"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert checkpoints_in(run / "checkpoints")[0].name == "checkpoint_20.pt"
    result = dltk("run", "--resume", run)
    assert result.exit_code == 0, result.err
    left, right = final_state(classified), final_state(run)
    assert left.keys() == right.keys()
    assert not [k for k in left if not torch.equal(left[k], right[k])]
    assert records(run) == records(classified)


# --- the language model end to end -------------------------------------------------------------


@pytest.mark.slow
def test_language_model_logs_held_out_bits_per_character(language):
    evals = [r for r in log_lines(language) if r["kind"] == "eval"]
    assert [r["epoch"] for r in evals] == [1, 2]
    for r in evals:
        assert r["perplexity"] == pytest.approx(2 ** r["bpc"], rel=1e-5)
    text = (language.parent / "text.txt").read_text()
    counts = np.unique(list(text), return_counts=True)[1]
    unigram = float(-(counts / counts.sum() * np.log2(counts / counts.sum())).sum())
    assert evals[-1]["bpc"] < unigram  # it learned more than the character frequencies
    assert math.isfinite(evals[0]["bpc"])


@pytest.mark.slow
def test_generate_is_seeded_and_the_export_writes_the_same(language, dltk, tmp_path):
    args = ("--prompt", "the ", "--num-chars", "60", "--temperature", "0.8")
    outs = {}
    for name, source, seed in [("a", language, "3"), ("b", language, "3"), ("c", language, "4")]:
        result = dltk("generate", source, "--out", tmp_path / name, "--seed", seed, *args)
        assert result.exit_code == 0, result.err
        outs[name] = (tmp_path / name / "sample.txt").read_text(encoding="utf-8")
    assert outs["a"] == outs["b"] != outs["c"]
    assert outs["a"].startswith("the ") and len(outs["a"]) == 4 + 60
    vocab = set((language.parent / "text.txt").read_text())
    assert set(outs["a"]) <= vocab
    assert dltk("export", language, "--out", tmp_path / "lm.safetensors").exit_code == 0
    result = dltk("generate", tmp_path / "lm.safetensors", "--out", tmp_path / "e", "--seed", "3", *args)
    assert result.exit_code == 0, result.err
    assert (tmp_path / "e" / "sample.txt").read_text(encoding="utf-8") == outs["a"]


@pytest.mark.slow
def test_generate_refuses_what_it_cannot_write(language, dltk, tmp_path):
    result = dltk("generate", language, "--out", tmp_path / "x", "--prompt", "QZ!")
    assert (result.exit_code, result.err_lines) == (
        2,
        ["--prompt: characters not in the training text's vocabulary: '!', 'Q', 'Z'"],
    )
    result = dltk("generate", language, "--out", tmp_path / "x", "--temperature", "0")
    assert (result.exit_code, result.err_lines) == (2, ["--temperature: must be more than 0, got 0"])
    result = dltk("generate", language, "--out", tmp_path / "x", "--num-chars", "0")
    assert (result.exit_code, result.err_lines) == (2, ["--num-chars: must be at least 1, got 0"])
    result = dltk("generate", language, "--out", tmp_path / "x", "--grid")
    assert (result.exit_code, result.err_lines) == (
        2,
        ["--grid: a language model writes text; these options do not apply"],
    )
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_generate_replaces_text_samples_only_with_force(language, dltk, tmp_path):
    out = tmp_path / "text"
    assert dltk("generate", language, "--out", out, "--num-chars", "30").exit_code == 0
    first = (out / "sample.txt").read_text(encoding="utf-8")
    result = dltk("generate", language, "--out", out, "--num-chars", "5", "--seed", "1")
    assert (result.exit_code, result.err_lines) == (
        2,
        [f"--out: '{out}' already holds sample.txt; pass --force to replace it"],
    )
    assert (out / "sample.txt").read_text(encoding="utf-8") == first  # untouched
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no scratch folder left
    result = dltk("generate", language, "--out", out, "--num-chars", "5", "--seed", "1", "--force")
    assert result.exit_code == 0, result.err
    assert "wrote 1 file to" in result.out + result.err
    assert len((out / "sample.txt").read_text(encoding="utf-8")) == 5
    # other samples (a --num of them) go beside it
    assert dltk("generate", language, "--out", out, "--num", "2", "--num-chars", "5").exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["sample.txt", "sample_0000.txt", "sample_0001.txt"]


@pytest.mark.slow
def test_language_model_sigkill_mid_epoch_then_resume_is_bit_identical(language, dltk, tmp_path):
    recipe = write_lm(tmp_path, language.parent / "text.txt")
    run = tmp_path / "killed"
    killed = subprocess_run(recipe, run, *ITERATION_CHECKPOINTS, env={"DLTK_FAULT_KILL_AT": "47"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert checkpoints_in(run / "checkpoints")[0].name == "checkpoint_40.pt"  # 7 windows into epoch 2
    result = dltk("run", "--resume", run)
    assert result.exit_code == 0, result.err
    left, right = final_state(language), final_state(run)
    assert left.keys() == right.keys()
    assert not [k for k in left if not torch.equal(left[k], right[k])]
    assert records(run) == records(language)


# --- forecasting ----------------------------------------------------------------------------

TINY_FORECAST = """
seed = 0

[run]
dir = "{runs}"
device = "cpu"
threads = 1

[recipe]
name = "forecast"
epochs = 2
batch_size = 32
log_every = 10

[model]
name = "lstm"
hidden_size = 8

[dataset]
name = "time-series"
path = "{csv}"
context = 6
horizon = 3

[[metrics]]
name = "forecast-mae"

[[metrics]]
name = "naive-mae"
"""


def write_series(path: Path, values: list[float]) -> Path:
    path.write_text("t,value\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values)), encoding="utf-8")
    return path


def test_time_series_windows_and_normalisation_fitted_on_training_data(tmp_path):
    path = write_series(tmp_path / "s.csv", [float(i) for i in range(20)])
    config = TimeSeriesConfig(path=str(path), context=3, horizon=2, test_fraction=0.25)  # values 15..19 held out
    train, test = time_series(config), time_series(config, split="test")
    mean, std = float(np.mean(range(15))), float(np.std(range(15)))
    assert train.spec == DataSpec("series", (3, 1), horizon=2, extra={"mean": mean, "std": std, "column": "value"})
    real_train = train.targets * std + mean
    real_test = test.targets * std + mean
    assert len(train) == 15 - 5 + 1 and real_train.max().item() == pytest.approx(14.0)  # never a test value
    assert len(test) == 4 and real_test[0].tolist() == pytest.approx([15.0, 16.0])  # every test value forecast
    assert (test.inputs[0, :, 0] * std + mean).tolist() == pytest.approx([12.0, 13.0, 14.0])
    assert time_series(TimeSeriesConfig()).spec.extra["column"] == "load"  # the shipped synthetic series


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("t,value\n0,1\n", "kwh", "dataset.column: '{path}' has no column 'kwh' (it has: t, value)"),
        ("t,value\n0,1\n1,x\n", "", "dataset.path: '{path}' line 3: 'x' in column 'value' is not a number"),
        (
            "t,value\n0,1\n1,2\n",
            "",
            "dataset.path: '{path}' is too short: 2 values, and windows need dataset.context + dataset.horizon = 9 "
            "in the training part and 3 in the test part",
        ),
    ],
    ids=["no-column", "not-a-number", "too-short"],
)
def test_bad_series_is_one_line_and_exit_2(dltk, tmp_path, text, column, message):
    path = tmp_path / "s.csv"
    path.write_text(text, encoding="utf-8")
    recipe = tmp_path / "f.toml"
    recipe.write_text(TINY_FORECAST.format(runs=tmp_path.as_posix(), csv=path.as_posix()), encoding="utf-8")
    overrides = [f"dataset.column={column}"] if column else []
    result = dltk("run", recipe, *overrides, "--run-dir", tmp_path / "run")
    assert (result.exit_code, result.err_lines) == (2, [f"{recipe}: " + message.format(path=path)])


SINE = (np.sin(np.arange(300) / 3.0) * 5 + np.random.default_rng(0).normal(0, 0.1, 300)).tolist()


def write_forecast(folder: Path, series: Path | None = None) -> Path:
    path = series or write_series(folder / "s.csv", SINE)
    recipe = folder / "f.toml"
    recipe.write_text(TINY_FORECAST.format(runs=folder.as_posix(), csv=path.as_posix()), encoding="utf-8")
    return recipe


@pytest.fixture(scope="module")
def forecasted(tmp_path_factory) -> Path:
    """A tiny LSTM forecaster trained for 3 epochs (7 iterations each) on a noisy sine, checkpointed
    every 5 iterations: also the uninterrupted reference of its resume test."""
    from dltoolkit.testing import run_cli

    folder = tmp_path_factory.mktemp("forecast")
    result = run_cli("run", write_forecast(folder), *FORECAST_CHECKPOINTS, "--run-dir", folder / "run")
    assert result.exit_code == 0, result.err
    return folder / "run"


FORECAST_CHECKPOINTS = ["recipe.epochs=3", "checkpoint.unit=iteration", "checkpoint.every=5", "checkpoint.keep=3"]


@pytest.mark.slow
def test_forecast_reports_its_error_beside_the_naive_forecast(forecasted):
    evals = [r for r in log_lines(forecasted) if r["kind"] == "eval"]
    assert [r["epoch"] for r in evals] == [1, 2, 3]
    series = np.asarray(SINE)
    naive = [abs(series[s + 5] - series[s + 6 + h]) for s in range(240 - 6, 300 - 9 + 1) for h in range(3)]
    assert evals[-1]["naive-mae"] == pytest.approx(float(np.mean(naive)), rel=1e-4)
    assert math.isfinite(evals[-1]["forecast-mae"]) and evals[-1]["forecast-mae"] > 0


@pytest.mark.slow
def test_forecast_sigkill_mid_epoch_then_resume_is_bit_identical(forecasted, dltk, tmp_path):
    run = tmp_path / "killed"
    recipe = write_forecast(tmp_path, forecasted.parent / "s.csv")  # the same series file: records name it
    killed = subprocess_run(recipe, run, *FORECAST_CHECKPOINTS, env={"DLTK_FAULT_KILL_AT": "13"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert checkpoints_in(run / "checkpoints")[0].name == "checkpoint_10.pt"  # 3 windows into epoch 2
    result = dltk("run", "--resume", run)
    assert result.exit_code == 0, result.err
    left, right = final_state(forecasted), final_state(run)
    assert left.keys() == right.keys()
    assert not [k for k in left if not torch.equal(left[k], right[k])]
    assert records(run) == records(forecasted)


def read_rows(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_predict_forecasts_after_a_series_end_and_each_window_of_a_split(forecasted, dltk, tmp_path):
    """A trained forecaster forecasts from the command line (user trial: it could not)."""
    result = dltk("predict", forecasted, "--input", "test", "--out", tmp_path / "test.csv")
    assert result.exit_code == 0, result.err
    rows = read_rows(tmp_path / "test.csv")
    windows = (300 - 9) - (240 - 6) + 1  # the first test context starts 6 values before the 240/60 cut
    assert len({r["input"] for r in rows}) == windows and len(rows) == 3 * windows
    assert {r["step"] for r in rows} == {"1", "2", "3"}
    assert [float(r["actual"]) for r in rows[-3:]] == pytest.approx(SINE[-3:], abs=1e-5)
    mae = float(np.mean([abs(float(r["forecast"]) - float(r["actual"])) for r in rows]))
    final = [r for r in log_lines(forecasted) if r["kind"] == "eval"][-1]
    assert mae == pytest.approx(final["forecast-mae"], rel=1e-4)  # what the held-out metric measured

    # a CSV of the series up to the last window's context: the same forecast, for the next 3 values
    series = write_series(tmp_path / "upto.csv", SINE[:-3])
    result = dltk("predict", forecasted, "--input", series, "--out", tmp_path / "next.csv")
    assert result.exit_code == 0, result.err
    ahead = read_rows(tmp_path / "next.csv")
    assert [r["step"] for r in ahead] == ["1", "2", "3"]
    assert [float(r["forecast"]) for r in ahead] == pytest.approx([float(r["forecast"]) for r in rows[-3:]], abs=1e-5)

    short = write_series(tmp_path / "short.csv", SINE[:5])
    result = dltk("predict", forecasted, "--input", short)
    assert (result.exit_code, result.err_lines) == (
        2,
        [
            f"--input: '{short}' has 5 values in column 'value'; a forecast reads the last 6 "
            "(the model's dataset.context)"
        ],
    )
