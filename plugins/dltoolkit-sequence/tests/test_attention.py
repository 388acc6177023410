"""Attention models of the sequence plugin: ``gpt`` (causal, key/value cache, GPT-2 initialisation,
tied head), the ``transformer`` encoder, the language-model recipe's Transformer training options
(decay on matrices only, warm-up and cosine, random windows, accumulation), generation (cache or
not, top-k, top-p, seeded), ``dltk check`` pairings and refusals, and bit-exact resume after
SIGKILL of a run using every new option."""

from __future__ import annotations

import math
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from runs import ITERATION_CHECKPOINTS, log_lines, subprocess_run

from dltoolkit import DataSpec, DltkError
from dltoolkit._checkpoint import checkpoints_in, load_checkpoint
from dltoolkit_sequence import (
    EncoderConfig,
    GptConfig,
    LanguageModelConfig,
    RandomWindows,
    decay_groups,
    gpt,
    sample_text,
    scheduled_lr,
    transformer,
)

VOCAB = tuple("abcdefghij")
TEXT_SPEC = DataSpec("text", (8,), vocab_size=10, vocab=VOCAB)
CPU = torch.device("cpu")


def tiny_gpt(context: int = 16, dropout: float = 0.0) -> torch.nn.Module:
    torch.manual_seed(0)
    return gpt(GptConfig(layers=2, heads=2, width=16, context=context, dropout=dropout), data=TEXT_SPEC)


# --- the models ---------------------------------------------------------------------------------


def test_gpt_is_causal_and_its_cache_gives_the_logits_of_the_whole_sequence():
    model = tiny_gpt().eval()
    ids = torch.randint(10, (2, 12))
    full, cache = model(ids)
    assert full.shape == (2, 12, 10) and len(cache) == 2 and cache[0][0].shape == (2, 2, 12, 8)
    changed = ids.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % 10
    assert torch.equal(model(changed)[0][:, :7], full[:, :7])  # no token sees those after it
    first, state = model(ids[:, :5])
    one, state = model(ids[:, 5:6], state)
    rest, state = model(ids[:, 6:], state)  # several new tokens at once against the cache
    assert torch.allclose(torch.cat([first, one, rest], 1), full, atol=1e-5)
    with pytest.raises(ValueError, match="17 positions are more than the model's context of 16"):
        model(torch.zeros(1, 5, dtype=torch.int64), state)


@pytest.mark.parametrize("bias", [False, True])
def test_the_decoder_of_generation_gives_the_logits_of_the_model(bias):
    torch.manual_seed(0)
    model = gpt(GptConfig(layers=2, heads=2, width=16, context=16, dropout=0.0, bias=bias), data=TEXT_SPEC).eval()
    for module in model.modules():  # biases and norms away from their starting 0 and 1
        if isinstance(module, (torch.nn.Linear, torch.nn.LayerNorm)) and module.bias is not None:
            torch.nn.init.normal_(module.bias, std=0.1)
    ids = torch.randint(10, (16,))
    with torch.inference_mode():
        full = model(ids[None])[0][0]
        decoder = model.decoder()
        steps = [decoder.read(ids[:5])] + [decoder.step(int(token)) for token in ids[5:]]
        assert torch.allclose(torch.stack(steps), full[4:], atol=1e-5)
        with pytest.raises(ValueError, match="17 positions are more than the model's context of 16"):
            decoder.step(0)
        assert torch.allclose(decoder.read(ids[8:]), model(ids[None, 8:])[0][0, -1], atol=1e-6)
        after = model(torch.cat([ids[8:], ids[:1]])[None])[0][0, -1]
        assert torch.allclose(decoder.step(int(ids[0])), after, atol=1e-5)


def test_gpt_ties_its_head_to_the_embedding_and_starts_as_gpt2():
    model = gpt(GptConfig(layers=4, heads=4, width=128, context=64, dropout=0.0), data=TEXT_SPEC)
    assert model.head.weight is model.token.weight
    assert sum(p.numel() for p in model.parameters()) == 128 * 10 + 64 * 128 + 4 * (12 * 128 * 128 + 2 * 128) + 128
    proj = torch.cat([b.attention.proj.weight.flatten() for b in model.blocks])
    assert proj.std().item() == pytest.approx(0.02 / math.sqrt(8), rel=0.05)
    assert model.blocks[0].mlp[0].weight.std().item() == pytest.approx(0.02, rel=0.05)


def test_weight_decay_falls_on_matrices_only():
    model = gpt(GptConfig(layers=1, heads=2, width=8, context=8, dropout=0.0, bias=True), data=TEXT_SPEC)
    decay, keep = decay_groups(model, 0.1)
    assert (decay["weight_decay"], keep["weight_decay"]) == (0.1, 0.0)
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[id(p)] for p in decay["params"]) == [
        "blocks.0.attention.proj.weight",
        "blocks.0.attention.qkv.weight",
        "blocks.0.mlp.0.weight",
        "blocks.0.mlp.2.weight",
    ]
    kept = {names[id(p)] for p in keep["params"]}
    assert {"token.weight", "position.weight", "norm.weight", "blocks.0.norm1.bias", "blocks.0.mlp.0.bias"} <= kept
    assert len(decay["params"]) + len(keep["params"]) == len(list(model.parameters()))  # the tied head once


def test_the_schedule_warms_up_linearly_then_decays_by_a_cosine_to_its_floor():
    config = LanguageModelConfig(lr=1e-3, warmup_steps=10, schedule="cosine", min_lr=1e-4)
    assert scheduled_lr(config, 1, 110) == pytest.approx(1e-4)
    assert scheduled_lr(config, 10, 110) == pytest.approx(1e-3)
    assert scheduled_lr(config, 60, 110) == pytest.approx(5.5e-4)  # half way: the mean of lr and floor
    assert scheduled_lr(config, 110, 110) == pytest.approx(1e-4)
    assert scheduled_lr(config, 500, 110) == pytest.approx(1e-4)  # steps past the end stay at the floor
    assert scheduled_lr(LanguageModelConfig(lr=2e-3), 7, 100) == 2e-3  # the old default: constant


def test_random_windows_depend_on_the_seed_and_step_only():
    ids = torch.arange(1000)
    windows = RandomWindows(ids, 16, 4, seed=3)
    x, y = windows(7)
    assert x.shape == y.shape == (4, 16) and torch.equal(y, x + 1)  # the next id of each
    assert torch.equal(RandomWindows(ids, 16, 4, seed=3)(7)[0], x)
    assert not torch.equal(windows(8)[0], x) and not torch.equal(RandomWindows(ids, 16, 4, seed=4)(7)[0], x)


def one_step(accumulate: int, precision: str = "fp32") -> tuple[dict, torch.nn.Module]:
    from types import SimpleNamespace

    from dltoolkit_sequence.training import make_optimizer, make_transformer_language_step

    model = tiny_gpt()
    config = LanguageModelConfig(batch_size=4, accumulate=accumulate, precision=precision, optimizer="adamw")
    optimizer = make_optimizer(config, model)
    step = make_transformer_language_step(model, optimizer, config, device=CPU, total_steps=lambda _e: 10)
    ids = torch.randint(10, (4, 9), generator=torch.Generator().manual_seed(0))
    engine = SimpleNamespace(state=SimpleNamespace(iteration=1))
    return step(engine, (ids[:, :-1], ids[:, 1:])), model


def test_accumulating_micro_batches_takes_the_same_step():
    whole, model = one_step(1)
    parts, split = one_step(4)
    assert parts["loss"].item() == pytest.approx(whole["loss"].item(), rel=1e-5)
    for a, b in zip(model.parameters(), split.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_bf16_autocast_trains_with_a_float32_loss():
    result, _ = one_step(2, precision="bf16")
    assert result["loss"].dtype == torch.float32 and math.isfinite(result["loss"].item())
    assert result["lr"] == pytest.approx(LanguageModelConfig().lr)  # no warm-up: the peak at once


def test_the_encoder_classifies_sequences_and_forecasts_series():
    config = EncoderConfig(layers=1, heads=2, width=8)
    classifier = transformer(config, data=DataSpec("sequences", (8, 8), num_classes=10, class_names=list("0123456789")))
    assert classifier.task == "classify" and classifier(torch.rand(3, 8, 8)).shape == (3, 10)
    assert classifier.class_names == tuple("0123456789")
    series = DataSpec("series", (6, 1), horizon=3, extra={"mean": 2.0, "std": 4.0, "column": "v"})
    forecaster = transformer(EncoderConfig(layers=1, heads=2, width=8, pooling="last"), data=series)
    assert forecaster.task == "forecast" and forecaster(torch.rand(5, 6, 1)).shape == (5, 3)
    assert (forecaster.scale, forecaster.context, forecaster.column) == ((2.0, 4.0), 6, "v")
    with pytest.raises(DltkError, match=r"^model: transformer takes labelled sequences .* use gpt"):
        transformer(config, data=TEXT_SPEC)
    with pytest.raises(
        DltkError, match=r"^model.context: 4 is shorter than the training windows of dataset.seq_len = 8"
    ):
        gpt(GptConfig(context=4), data=TEXT_SPEC)


# --- generation ------------------------------------------------------------------------------


def generated(model, **options) -> str:
    defaults = {"prompt": "", "num_chars": 60, "temperature": 1.0}
    return sample_text(model, CPU, generator=torch.Generator().manual_seed(5), **{**defaults, **options})


@pytest.mark.parametrize("prompt", ["", "abc", "abcdefghijabcdefghij"])  # the last outgrows the context
def test_the_cache_changes_nothing_but_the_speed(prompt):
    model = tiny_gpt(context=8)  # 60 characters go through the context several times
    text = generated(model, prompt=prompt)
    assert len(text) == len(prompt) + 60 and text.startswith(prompt)
    assert generated(model, prompt=prompt, cache=False) == text
    assert generated(model, prompt=prompt) == text  # seeded


def test_top_k_and_top_p_keep_only_the_most_likely():
    model = tiny_gpt()
    greedy = generated(model, prompt="a", temperature=1e-45)
    assert generated(model, prompt="a", top_k=1) == greedy
    assert generated(model, prompt="a", top_p=1e-6) == greedy
    assert generated(model, prompt="a", top_k=3) != greedy or generated(model, prompt="a", top_k=10) != greedy


def test_a_draw_never_picks_a_character_outside_the_top_k_or_top_p():
    from dltoolkit_sequence.generate import _draw

    logits = torch.tensor([0.0, 3.0, 2.9, -1.0, 1.0])
    generator = torch.Generator().manual_seed(0)
    assert {_draw(logits, 1.0, generator, 2, None) for _ in range(200)} == {1, 2}
    assert {_draw(logits, 1.0, generator, None, 0.5) for _ in range(200)} == {1, 2}  # 0.40 + 0.37 of it
    assert {_draw(logits, 1.0, generator, None, None) for _ in range(400)} == {0, 1, 2, 3, 4}
    assert _draw(torch.tensor([0.0, float("-inf"), 1.0]), 1e-45, generator, None, None) == 2


# --- recipe files --------------------------------------------------------------------------------

TINY_GPT = """
seed = 0

[run]
dir = "{runs}"
device = "cpu"
threads = 1

[recipe]
name = "language-model"
epochs = 2
steps_per_epoch = 15
windows = "random"
batch_size = 8
accumulate = 2
optimizer = "adamw"
weight_decay = 0.1
betas = [0.9, 0.99]
lr = 3e-3
warmup_steps = 5
schedule = "cosine"
min_lr = 1e-4
log_every = 5

[model]
name = "gpt"
layers = 2
heads = 2
width = 16
context = 24
dropout = 0.1

[dataset]
name = "text-file"
path = "{text}"
seq_len = 16

[[metrics]]
name = "bpc"

[checkpoint]
best_by = "eval/bpc"
"""

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "cats", "sleep", "in", "sun"]


def write_gpt(folder: Path, lines: int = 200) -> Path:
    rng = np.random.default_rng(0)
    text = folder / "text.txt"
    text.write_text("\n".join(" ".join(rng.choice(WORDS, size=6)) + "." for _ in range(lines)), encoding="utf-8")
    recipe = folder / "tiny_gpt.toml"
    recipe.write_text(TINY_GPT.format(runs=(folder / "runs").as_posix(), text=text.as_posix()), encoding="utf-8")
    return recipe


def test_check_pairs_the_attention_models_with_their_recipes_and_refuses_them_elsewhere(dltk, recipe_file, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("hello world\n" * 50, encoding="utf-8")
    cases = {
        ("language-model", "gpt", "text-file"): None,
        ("sequence-classify", "transformer", "digit-rows"): None,
        ("forecast", "transformer", "time-series"): None,
        ("sequence-classify", "gpt", "digit-rows"): "dataset.name: dataset 'digit-rows' provides",
        ("language-model", "transformer", "text-file"): "model.name: 'transformer' is an encoder of labelled "
        "sequences and series, dataset 'text-file' gives text; use model.name=gpt for a language model",
        ("classify", "gpt", "digits"): "model.name: model 'gpt' provides 'sequence-model', but the recipe "
        "'classify' needs a model that provides 'classifier'",
    }
    for (recipe, model, dataset), problem in cases.items():
        path_line = f'path = "{text.as_posix()}"' if dataset == "text-file" else ""
        path = recipe_file(
            f'[recipe]\nname = "{recipe}"\n[model]\nname = "{model}"\n[dataset]\nname = "{dataset}"\n{path_line}\n'
        )
        result = dltk("check", path)
        if problem is None:
            assert result.exit_code == 0, result.err
        else:
            assert result.exit_code == 2, result.err  # one line per problem, all at once
            assert any(line.startswith(f"{path}: {problem}") for line in result.err_lines), result.err


def test_check_refuses_bad_attention_options_in_one_line_each(dltk, tmp_path):
    recipe = write_gpt(tmp_path)
    for overrides, line in [
        (["model.heads=3"], "model.heads: 3 heads do not divide model.width = 16 (each head gets width / heads)"),
        (
            ["model.context=8"],
            "model.context: 8 is shorter than the training windows of dataset.seq_len = 16; "
            "raise model.context or lower dataset.seq_len",
        ),
        (
            ["recipe.accumulate=3"],
            "recipe.accumulate: 3 does not divide recipe.batch_size = 8 (each step splits "
            "its batch into this many equal micro-batches)",
        ),
        (["recipe.windows=sliding"], "recipe.windows: "),
    ]:
        result = dltk("check", recipe, *overrides)
        assert result.exit_code == 2 and len(result.err_lines) == 1, result.err
        assert result.err_lines[0].startswith(f"{recipe}: {line}"), result.err


@pytest.mark.slow
def test_a_text_shorter_than_one_window_is_refused_before_training(dltk, tmp_path):
    recipe = write_gpt(tmp_path, lines=2)  # 80-odd characters: the held-out tenth has fewer than 17
    result = dltk("run", recipe, "--run-dir", tmp_path / "run")
    assert result.exit_code == 2, result.err
    assert result.err_lines[-1].startswith(
        f"{recipe}: dataset.path: '{tmp_path / 'text.txt'}' is too short: its test part"
    )
    assert not checkpoints_in(tmp_path / "run" / "checkpoints")


# --- end to end ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpt_run(tmp_path_factory) -> Path:
    """A tiny GPT trained with every Transformer option for 2 epochs of 15 steps, checkpointed every
    10 iterations: also the uninterrupted reference of the resume test."""
    from dltoolkit.testing import run_cli

    folder = tmp_path_factory.mktemp("gpt")
    result = run_cli("run", write_gpt(folder), *ITERATION_CHECKPOINTS, "--run-dir", folder / "run")
    assert result.exit_code == 0, result.err
    return folder / "run"


def final_state(run: Path) -> dict[str, torch.Tensor]:
    data = load_checkpoint(checkpoints_in(run / "checkpoints")[0])
    state = {f"model.{k}": v for k, v in data["model"].items()}
    for index, entry in data["optimizer"]["state"].items():
        state.update({f"optimizer.{index}.{k}": v for k, v in entry.items() if isinstance(v, torch.Tensor)})
    return state


def records(run: Path) -> list[dict]:
    lines = log_lines(run)
    for line in lines:
        for protocol in line.get("protocol", {}).values():
            protocol.pop("seconds", None)
    return lines


@pytest.mark.slow
def test_gpt_learns_with_the_schedule_it_reports(gpt_run):
    lines = log_lines(gpt_run)
    steps = [r for r in lines if r["kind"] == "step"]
    assert [r["iteration"] for r in steps] == [5, 10, 15, 20, 25, 30]
    assert steps[0]["lr"] == pytest.approx(3e-3 * 3 / 5)  # the mean of warm-up steps 1..5
    assert steps[-1]["lr"] < steps[1]["lr"]  # decaying
    evals = [r for r in lines if r["kind"] == "eval"]
    text = (gpt_run.parent / "text.txt").read_text(encoding="utf-8")
    assert [r["epoch"] for r in evals] == [1, 2]
    assert evals[-1]["bpc"] < evals[0]["bpc"] < math.log2(len(set(text)))  # better than uniform, and learning


@pytest.mark.slow
def test_gpt_sigkill_mid_epoch_then_resume_is_bit_identical(gpt_run, dltk, tmp_path):
    recipe = gpt_run.parent / "tiny_gpt.toml"
    run = tmp_path / "killed"
    killed = subprocess_run(recipe, run, *ITERATION_CHECKPOINTS, env={"DLTK_FAULT_KILL_AT": "27"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert checkpoints_in(run / "checkpoints")[0].name == "checkpoint_20.pt"  # 5 steps into epoch 2
    result = dltk("run", "--resume", run)
    assert result.exit_code == 0, result.err
    left, right = final_state(gpt_run), final_state(run)
    assert left.keys() == right.keys()
    assert not [k for k in left if not torch.equal(left[k], right[k])]
    assert records(run) == records(gpt_run)


@pytest.mark.slow
def test_gpt_generates_the_same_text_for_a_seed_with_or_without_cache_and_from_an_export(gpt_run, dltk, tmp_path):
    args = ("--prompt", "the ", "--num-chars", "80", "--temperature", "0.8", "--top-k", "5", "--top-p", "0.9")
    texts = {}
    for name, extra in [("a", ("--seed", "3")), ("b", ("--seed", "3", "--no-cache")), ("c", ("--seed", "4"))]:
        result = dltk("generate", gpt_run, "--out", tmp_path / name, *args, *extra)
        assert result.exit_code == 0, result.err
        texts[name] = (tmp_path / name / "sample.txt").read_text(encoding="utf-8")
    assert texts["a"] == texts["b"] != texts["c"]
    assert texts["a"].startswith("the ") and len(texts["a"]) == 84  # beyond the context of 24
    assert dltk("export", gpt_run, "--out", tmp_path / "gpt.safetensors").exit_code == 0
    result = dltk("generate", tmp_path / "gpt.safetensors", "--out", tmp_path / "e", "--seed", "3", *args)
    assert result.exit_code == 0, result.err
    assert (tmp_path / "e" / "sample.txt").read_text(encoding="utf-8") == texts["a"]
    for flags, line in [
        (("--top-k", "0"), "--top-k: must be at least 1, got 0"),
        (("--top-p", "1.5"), "--top-p: must be more than 0 and at most 1, got 1.5"),
    ]:
        result = dltk("generate", gpt_run, "--out", tmp_path / "x", *flags)
        assert (result.exit_code, result.err_lines) == (2, [line])


ENCODER = """
[run]
device = "cpu"
threads = 1
writers = []

[recipe]
name = "{recipe}"
epochs = 1
batch_size = 32

[model]
name = "transformer"
layers = 1
heads = 2
width = 16

[dataset]
name = "{dataset}"

[[metrics]]
name = "{metric}"
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("recipe", "dataset", "metric"),
    [("sequence-classify", "digit-rows", "accuracy"), ("forecast", "time-series", "forecast-mae")],
)
def test_the_encoder_trains_in_the_sequence_recipes(recipe, dataset, metric, dltk, tmp_path):
    path = tmp_path / "encoder.toml"
    path.write_text(ENCODER.format(recipe=recipe, dataset=dataset, metric=metric), encoding="utf-8")
    result = dltk("run", path, "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.err
    evals = [r for r in log_lines(tmp_path / "run") if r["kind"] == "eval"]
    assert len(evals) == 1 and math.isfinite(evals[0][metric])
    if recipe == "sequence-classify":
        assert evals[0][metric] > 0.3  # one epoch: far above chance (0.1)
        predicted = dltk("predict", tmp_path / "run", "--input", "test", "--out", tmp_path / "p.csv")
        assert predicted.exit_code == 0, predicted.err
