"""Reliability, round three (issue 25): ``dltk predict`` and ``dltk generate`` of the sequence family,
and exports, under hostile and garbled input. One tiny forecaster and one tiny language model (a few
seconds each) are shared by the module; the reading code is also tested without any run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dltoolkit import DltkError
from dltoolkit.testing import run_cli

FORECAST = """
seed = 0
[run]
device = "cpu"
threads = 1
[recipe]
name = "forecast"
epochs = 1
batch_size = 32
log_every = 100
[model]
name = "lstm"
hidden_size = 4
[dataset]
name = "time-series"
path = "{csv}"
context = 6
horizon = 3
"""

LANGUAGE = """
seed = 0
[run]
device = "cpu"
threads = 1
[recipe]
name = "language-model"
epochs = 1
batch_size = 8
log_every = 100
[model]
name = "lstm"
hidden_size = 8
embedding_dim = 4
[dataset]
name = "text-file"
path = "{text}"
seq_len = 10
"""


def series_csv(path: Path, values: list[float], header: str = "t,value", tail: str = "") -> Path:
    path.write_text(header + "\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values)) + tail, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def forecaster(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("forecast")
    csv = series_csv(folder / "s.csv", np.sin(np.arange(80) / 3.0).round(4).tolist())
    (folder / "f.toml").write_text(FORECAST.format(csv=csv.as_posix()))
    result = run_cli("run", folder / "f.toml", "--run-dir", folder / "run")
    assert result.exit_code == 0, result.err
    return folder / "run"


@pytest.fixture(scope="module")
def language_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("language")
    (folder / "t.txt").write_text("the quick brown fox jumps over the lazy dog\n" * 12, encoding="utf-8")
    (folder / "l.toml").write_text(LANGUAGE.format(text=(folder / "t.txt").as_posix()))
    result = run_cli("run", folder / "l.toml", "--run-dir", folder / "run")
    assert result.exit_code == 0, result.err
    return folder / "run"


# --- reading a series ----------------------------------------------------------------------------------------------


def test_a_csv_ending_in_blank_lines_is_read(tmp_path):
    from dltoolkit_sequence.data import read_column

    path = series_csv(tmp_path / "s.csv", [1.0, 2.0, 3.0], tail="\n\n")
    assert read_column(path, "")[1].tolist() == [1.0, 2.0, 3.0]


def test_a_csv_with_one_huge_field_is_one_line_naming_its_line(tmp_path):
    from dltoolkit_sequence.data import read_column

    path = tmp_path / "s.csv"
    path.write_text("t,value\n0,1\n1," + "9" * 200_000 + "\n", encoding="utf-8")
    with pytest.raises(DltkError, match=rf"^--input: '{path}' line 3: not a CSV row \(field larger than field limit"):
        read_column(path, "", key="--input")


@pytest.mark.parametrize("value", ["1e308", "-1.7e308", "inf", "nan", "1e31"])
def test_values_near_the_float_limit_are_refused_when_read(tmp_path, value):
    from dltoolkit_sequence.data import read_column

    path = tmp_path / "s.csv"
    path.write_text(f"t,value\n0,1\n1,{value}\n2,3\n", encoding="utf-8")
    with pytest.raises(
        DltkError, match=rf"^dataset.path: '{path}' line 3: {value} in column 'value' is (not finite|too large)"
    ):
        read_column(path, "")


def test_empty_column_names_mean_the_last_column_as_documented(tmp_path):
    from dltoolkit_sequence.data import read_column

    path = tmp_path / "s.csv"
    path.write_text(",\n1,10\n2,20\n3,30\n", encoding="utf-8")
    name, values = read_column(path, "")
    assert values.tolist() == [10.0, 20.0, 30.0] and name == "column 2"


def test_predict_of_a_series_with_huge_values_is_refused_and_writes_nothing(forecaster, dltk, tmp_path):
    path = series_csv(tmp_path / "in.csv", [1.0] * 5 + [1e308] + [1.0] * 5)
    result = dltk("predict", forecaster, "--input", path, "--out", tmp_path / "p.csv")
    assert (result.exit_code, result.err_lines) == (
        2,
        [f"--input: '{path}' line 7: 1e+308 in column 'value' is too large; values must lie within +-1e+30"],
    )
    assert not (tmp_path / "p.csv").exists()


def test_predict_of_a_csv_ending_in_a_blank_line_is_read(forecaster, dltk, tmp_path):
    path = series_csv(tmp_path / "in.csv", [0.1 * i for i in range(10)], tail="\n")
    result = dltk("predict", forecaster, "--input", path, "--out", tmp_path / "p.csv")
    assert result.exit_code == 0, result.err
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 1 + 3


def test_predict_of_a_csv_with_a_huge_field_names_the_flag(forecaster, dltk, tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("t,value\n" + "".join(f"{i},1\n" for i in range(10)) + "10," + "9" * 200_000 + "\n")
    result = dltk("predict", forecaster, "--input", path, "--out", tmp_path / "p.csv")
    assert result.exit_code == 2 and "Traceback" not in result.err
    assert len(result.err_lines) == 1 and result.err_lines[0].startswith(f"--input: '{path}' line 12: not a CSV row")


# --- text -------------------------------------------------------------------------------------------------------------


def test_a_text_too_large_for_the_memory_available_is_refused_before_reading(tmp_path, monkeypatch):
    import dltoolkit._limits as limits
    from dltoolkit_sequence.data import TEXT_BYTES_PER_CHAR, text_file
    from dltoolkit_sequence.options import TextFileConfig

    path = tmp_path / "big.txt"
    path.write_text("abc " * 25_000)  # 100 kB stands for 300 MB under a small limit
    monkeypatch.setattr(limits, "available_memory", lambda: 1_000_000)
    with pytest.raises(DltkError) as info:
        text_file(TextFileConfig(path=str(path)))
    assert info.value.problems == (
        f"dataset.path: '{path}' (0.1 MB) as character ids needs about "
        f"{TEXT_BYTES_PER_CHAR * 100_000 / 2**30:.1f} GiB of memory; this machine has 0.0 GiB available "
        "(use a shorter text)",
    )
    monkeypatch.setattr(limits, "available_memory", lambda: 10**10)
    assert len(text_file(TextFileConfig(path=str(path), seq_len=10))) > 0


# --- dltk generate of a language model --------------------------------------------------------------------------


def test_a_tiny_temperature_draws_the_most_likely_characters(language_model, dltk, tmp_path):
    result = dltk("generate", language_model, "--out", tmp_path / "a", "--temperature", "1e-45", "--seed", "5",
                  "--num-chars", "20")  # fmt: skip
    assert result.exit_code == 0 and "Traceback" not in result.err, result.err
    again = dltk("generate", language_model, "--out", tmp_path / "b", "--temperature", "1e-300", "--seed", "5",
                 "--num-chars", "20")  # fmt: skip
    assert again.exit_code == 0, again.err
    assert (tmp_path / "a" / "sample.txt").read_text() == (tmp_path / "b" / "sample.txt").read_text()  # greedy


@pytest.mark.parametrize("seed", [str(2**63), str(2**64), str(10**30), "-1"])
def test_a_seed_outside_what_generators_take_is_one_line(language_model, dltk, tmp_path, seed):
    result = dltk("generate", language_model, "--out", tmp_path / "a", "--seed", seed)
    assert (result.exit_code, result.err_lines) == (
        2,
        [f"--seed: must be from 0 to {2**63 - 1} (2^63 - 1), got {seed}"],
    )
    assert not (tmp_path / "a").exists()


def test_num_chars_is_bounded(language_model, dltk, tmp_path):
    result = dltk("generate", language_model, "--out", tmp_path / "a", "--num-chars", str(2**63 + 1))
    assert (result.exit_code, result.err_lines) == (
        2,
        [f"--num-chars: at most 1000000, got {2**63 + 1}"],
    )
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("command", ["generate", "predict"])
def test_device_meta_is_refused_in_one_line(language_model, forecaster, dltk, tmp_path, command):
    extra = ["--out", tmp_path / "a"] if command == "generate" else ["--input", "test"]
    source = language_model if command == "generate" else forecaster
    result = dltk(command, source, *extra, "--device", "meta")
    assert (result.exit_code, result.err_lines) == (
        2,
        ["--device: unknown device 'meta': use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"],
    )


def test_a_superscript_digit_label_is_not_an_index():
    from dltoolkit._generate import class_index

    with pytest.raises(
        DltkError, match=r"^--label: '²' is not a class of this run; give a name or an index from 0 to 2"
    ):
        class_index(("a", "b", "c"), "²", "gan")
    assert class_index(("a", "b", "c"), "2", "gan") == 2


# --- exports ----------------------------------------------------------------------------------------------------------


def rewrite_export(path: Path, change) -> None:
    """Change an export's metadata and recompute the sha256 it carries (a tampering the digest cannot see)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from dltoolkit._generate import export_digest

    with safe_open(str(path), framework="pt") as handle:
        meta = dict(handle.metadata())
    tensors = load_file(str(path))
    change(meta)
    meta["sha256"] = export_digest(tensors, meta)
    save_file(tensors, str(path), metadata=meta)


@pytest.mark.parametrize("modules", ['"model"', "3", '[{"a": 1}]', "[1, 2]", '{"model": 1}', "[" * 5000 + "]" * 5000])
def test_an_export_whose_modules_are_not_a_list_of_names_is_one_line(language_model, dltk, tmp_path, modules):
    export = tmp_path / "m.safetensors"
    assert dltk("export", language_model, "--out", export).exit_code == 0
    rewrite_export(export, lambda meta: meta.update(modules=modules))
    result = dltk("generate", export, "--out", tmp_path / "a")
    assert (result.exit_code, result.err_lines) == (
        2,
        [f"{export}: its 'modules' metadata is not a list of module names: damaged or not dltoolkit's"],
    )
    assert not (tmp_path / "a").exists()


def test_an_export_with_a_short_vocab_is_one_line(language_model, dltk, tmp_path):
    export = tmp_path / "m.safetensors"
    assert dltk("export", language_model, "--out", export).exit_code == 0

    def shorten(meta: dict) -> None:
        data = json.loads(meta["data"])
        data["vocab"] = data["vocab"][:3]
        meta["data"] = json.dumps(data)

    rewrite_export(export, shorten)
    result = dltk("generate", export, "--out", tmp_path / "a")
    assert result.exit_code == 2 and "Traceback" not in result.err, result.err
    assert len(result.err_lines) == 1
    assert result.err_lines[0].startswith(f"{export}: unreadable data description in its metadata: 3 tokens in vocab")
    assert not (tmp_path / "a").exists()


def test_a_failed_generate_leaves_no_folder_it_made(language_model, dltk, tmp_path):
    out = tmp_path / "new" / "deeper" / "out"
    result = dltk("generate", language_model, "--out", out, "--num-chars", str(10**7))
    assert result.exit_code == 2, result.err
    assert list(tmp_path.iterdir()) == []
