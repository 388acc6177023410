"""Reliability, round three (issue 25): ``dltk compare`` treats run directories as untrusted input.

Run directories are written by hand here (no training): a recipe.toml, a metrics.jsonl, a run.json
and a sample grid, then garbled the ways a crash or another person would.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

RECIPE = '[recipe]\nname = "{name}"\nepochs = 2\n[model]\nname = "toy-mlp"\n[dataset]\nname = "digits"\n'


def make_run(folder: Path, lines: list[str] | None = None, *, name: str = "toy", summary: object = None) -> Path:
    """A run directory of two epochs of 10 iterations with ``loss`` and an ``fid`` score."""
    folder.mkdir(parents=True)
    (folder / "recipe.toml").write_text(RECIPE.format(name=name), encoding="utf-8")
    if lines is None:
        lines = [
            json.dumps({"kind": "step", "epoch": 1, "iteration": 5, "loss": 1.0}),
            json.dumps({"kind": "epoch", "epoch": 1, "iteration": 10, "loss": 0.9}),
            json.dumps({"kind": "eval", "epoch": 1, "iteration": 10, "fid": 30.0}),
            json.dumps({"kind": "step", "epoch": 2, "iteration": 15, "loss": 0.8}),
            json.dumps({"kind": "epoch", "epoch": 2, "iteration": 20, "loss": 0.7}),
            json.dumps({"kind": "eval", "epoch": 2, "iteration": 20, "fid": 20.0}),
        ]
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = {"parameters": {"generator": 100}, "trained_modules": ["generator"], "train_seconds": 3.0} | (
        summary if isinstance(summary, dict) else {}
    )
    (folder / "run.json").write_text(json.dumps(summary), encoding="utf-8")
    (folder / "samples").mkdir()
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(folder / "samples" / "grid_00000020.png")
    return folder


def good_lines() -> list[str]:
    return [
        json.dumps({"kind": "epoch", "epoch": 1, "iteration": 10, "loss": 0.9}),
        json.dumps({"kind": "epoch", "epoch": 2, "iteration": 20, "loss": 0.7}),
    ]


GARBLED_LINES = {
    "epoch a string": '{"kind": "epoch", "epoch": "2", "iteration": 20, "loss": 0.5}',
    "epoch null": '{"kind": "epoch", "epoch": null, "iteration": 20, "loss": 0.5}',
    "epoch 1e400": '{"kind": "epoch", "epoch": 1e400, "iteration": 20, "loss": 0.5}',
    "iteration a string": '{"kind": "step", "epoch": 1, "iteration": "x", "loss": 0.5}',
    "iteration 1e400": '{"kind": "eval", "epoch": 1, "iteration": 1e400, "fid": 3.0}',
    "deeply nested": '{"kind": "step", "epoch": 1, "iteration": 3, "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "nested table": '{"kind": "eval", "epoch": 1, "iteration": 3, "protocol": ' + '{"a":' * 50 + "1" + "}" * 50 + "}",
    "not an object": "[1, 2, 3]",
    "not JSON": "{this is not json",
}


@pytest.mark.parametrize("case", list(GARBLED_LINES))
def test_a_garbled_metrics_line_is_skipped_with_one_warning_and_the_page_is_made(case, dltk, tmp_path):
    lines = [*good_lines()[:1], GARBLED_LINES[case], *good_lines()[1:]]
    run = make_run(tmp_path / "run", lines)
    result = dltk("compare", run, "--out", tmp_path / "cmp")
    assert result.exit_code == 0, result.err
    assert "Traceback" not in result.err
    assert len(result.err_lines) == 1 and result.err_lines[0].startswith(
        f"warning: {run / 'metrics.jsonl'}: line 2: skipped: "
    ), result.err
    assert (tmp_path / "cmp" / "compare.html").is_file()
    assert "| run | toy | toy-mlp | digits | 2/2 |" in result.out


GARBLED_SUMMARIES = {
    "train_seconds infinite": ({"train_seconds": float("inf")}, "train_seconds"),
    "train_seconds NaN": ({"train_seconds": float("nan")}, "train_seconds"),
    "parameters not numbers": ({"parameters": {"generator": "many"}}, "parameters"),
    "parameters a list": ({"parameters": [1, 2]}, "parameters"),
    "trained_modules an integer": ({"trained_modules": 3}, "trained_modules"),
}


@pytest.mark.parametrize("case", list(GARBLED_SUMMARIES))
def test_impossible_values_in_run_json_are_skipped_with_one_warning(case, dltk, tmp_path):
    summary, key = GARBLED_SUMMARIES[case]
    run = make_run(tmp_path / "run", summary=summary)
    result = dltk("compare", run, "--out", tmp_path / "cmp")
    assert result.exit_code == 0 and "Traceback" not in result.err, result.err
    assert result.err_lines == [result.err_lines[0]]
    assert result.err_lines[0].startswith(f"warning: {run / 'run.json'}: {key}: skipped: ")
    assert (tmp_path / "cmp" / "compare.html").is_file()


def test_a_deeply_nested_run_json_is_skipped_with_one_warning(dltk, tmp_path):
    run = make_run(tmp_path / "run")
    (run / "run.json").write_text("[" * 100_000 + "]" * 100_000)
    result = dltk("compare", run, "--out", tmp_path / "cmp")
    assert result.exit_code == 0 and "Traceback" not in result.err, result.err
    assert result.err_lines == [f"warning: {run / 'run.json'}: skipped: nested too deeply"]


def test_a_scalar_name_holding_mathtext_is_drawn_as_written(dltk, tmp_path):
    lines = [
        json.dumps({"kind": "epoch", "epoch": 1, "iteration": 10, r"$\frac$": 0.9, "a$b$c": 1.0}),
        json.dumps({"kind": "epoch", "epoch": 2, "iteration": 20, r"$\frac$": 0.7, "a$b$c": 1.0}),
    ]
    run = make_run(tmp_path / "run", lines)
    result = dltk("compare", run, "--out", tmp_path / "cmp")
    assert result.exit_code == 0 and "Traceback" not in result.err, result.err
    assert len(list((tmp_path / "cmp").glob("train_*.png"))) == 2


def test_scalars_whose_names_differ_in_punctuation_get_distinct_bounded_file_names(dltk, tmp_path):
    long = "x" * 300
    lines = [
        json.dumps({"kind": "epoch", "epoch": e, "iteration": 10 * e, "a.b": 1.0, "a_b": 2.0, "a b": 3.0, long: 4.0})
        for e in (1, 2)
    ]
    run = make_run(tmp_path / "run", lines)
    result = dltk("compare", run, "--out", tmp_path / "cmp")
    assert result.exit_code == 0 and "Traceback" not in result.err, result.err
    figures = sorted(p.name for p in (tmp_path / "cmp").glob("train_*.png"))
    assert len(figures) == 4 and "train_a_b.png" in figures
    assert all(len(name) <= 100 for name in figures)
    page = (tmp_path / "cmp" / "compare.html").read_text()
    assert all(f"src='{name}'" in page for name in figures)


def test_a_sample_grid_linked_out_of_the_run_directory_is_not_copied(dltk, tmp_path):
    secret = tmp_path / "secret.png"
    Image.fromarray(np.full((8, 8), 99, dtype=np.uint8)).save(secret)
    run = make_run(tmp_path / "run")
    os.symlink(secret, run / "samples" / "grid_00000030.png")  # newer than the real grid
    result = dltk("compare", run, "--out", tmp_path / "cmp")
    assert result.exit_code == 0, result.err
    assert result.err_lines == [
        f"warning: {run / 'samples' / 'grid_00000030.png'}: skipped: a link out of the run directory"
    ]
    copied = list((tmp_path / "cmp").glob("grid_*.png"))
    assert len(copied) == 1 and copied[0].read_bytes() == (run / "samples" / "grid_00000020.png").read_bytes()


def test_a_metrics_file_linked_out_of_the_run_directory_is_not_read(dltk, tmp_path):
    run = make_run(tmp_path / "run")
    (tmp_path / "elsewhere.jsonl").write_text((run / "metrics.jsonl").read_text())
    (run / "metrics.jsonl").unlink()
    os.symlink(tmp_path / "elsewhere.jsonl", run / "metrics.jsonl")
    result = dltk("compare", run, "--out", tmp_path / "cmp")
    assert (result.exit_code, result.err_lines) == (
        2,
        [f"{run}: metrics.jsonl is a link out of the run directory; not read"],
    )
    assert not (tmp_path / "cmp").exists()


def test_control_characters_in_names_are_printed_escaped(dltk, tmp_path):
    run = make_run(tmp_path / "run", name="evil\\u001b[2J\\u0007")  # TOML escapes
    result = dltk("compare", run, "--out", tmp_path / "cmp")
    assert result.exit_code == 0, result.err
    assert "\x1b" not in result.out and "\x07" not in result.out
    assert "| evil\\x1b[2J\\x07 |" in result.out


def test_a_failure_while_writing_leaves_no_half_made_output_folder(tmp_path, monkeypatch):
    import dltoolkit._compare as compare_module

    run = make_run(tmp_path / "run")

    def broken(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(compare_module, "write_page", broken)
    with pytest.raises(OSError):
        compare_module.compare([run], tmp_path / "new" / "cmp", warn=lambda _line: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # neither cmp, its parent nor a staging folder
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "mine.txt").write_text("kept")
    with pytest.raises(OSError):
        compare_module.compare([run], existing, warn=lambda _line: None)
    assert sorted(p.name for p in existing.iterdir()) == ["mine.txt"]
