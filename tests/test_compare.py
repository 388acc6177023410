"""`dltk compare`: two tiny runs of different recipes (a GAN and a VAE on digits) side by side."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from dltoolkit._compare import count_text
from dltoolkit._runrecords import protocol_key
from dltoolkit.testing import run_cli

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["recipe.epochs=2", "model.hidden_dim=32", "run.device=cpu"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """gan: the unconditional digits GAN (gan_digits.toml); vae: the digits VAE (elbo every epoch);
    vae8: the VAE on 8x8 digits, whose elbo is measured on other images (another protocol)."""
    import importlib.util

    missing = [f"dltoolkit-{n}" for n in ("gan", "vae") if importlib.util.find_spec(f"dltoolkit_{n}") is None]
    if missing:  # these compare a GAN run with VAE runs: the first-party plugins' runs
        pytest.skip(f"runs the first-party plugins {missing}, not installed here")
    base = tmp_path_factory.mktemp("runs")
    made = {
        "gan": [ROOT / "recipes" / "gan_digits.toml", *SMALL, "recipe.ema_decay=0"],  # one generator kept
        "vae": [ROOT / "recipes" / "vae_digits.toml", *SMALL, "metrics.0.every=1", "dataset.image_size=16"],
        "vae8": [ROOT / "recipes" / "vae_digits.toml", *SMALL, "dataset.image_size=8"],
    }
    for name, args in made.items():
        result = run_cli("run", *args, "--run-dir", base / name)
        assert result.exit_code == 0, result.err
    return {name: base / name for name in made}


@pytest.mark.slow
def test_two_recipes_three_runs_on_one_page(runs, dltk, tmp_path):
    out = tmp_path / "cmp"
    result = dltk("compare", runs["gan"], runs["vae"], runs["vae8"], "--out", out)
    assert result.exit_code == 0, result.err
    lines = result.out.splitlines()
    assert lines[:2] == [
        "| run | recipe | model | dataset | epochs | parameters | wall time |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    summary = json.loads((runs["gan"] / "run.json").read_text())
    g, d = summary["parameters"]["generator"], summary["parameters"]["discriminator"]
    assert re.fullmatch(
        rf"\| gan \| gan \| mlp-gan \| digits \| 2/2 \| generator {count_text(g)}, discriminator {count_text(d)} "
        r"\(kept for inference: generator\) \| 0m\d\ds \|",
        lines[2],
    ), lines[2]
    vae_row = r"\| vae \| vae \| mlp-vae \| digits \| 2/2 \| encoder [\d.]+k?, decoder [\d.]+k? \| 0m\d\ds \|"
    assert re.fullmatch(vae_row, lines[3]), lines[3]
    assert lines[4].startswith("| vae8 | vae | mlp-vae | digits | 2/2 | ")

    # elbo under two protocols (16x16 and 8x8 reference images): two columns, and why
    evals = [json.loads(x) for x in (runs["vae"] / "metrics.jsonl").read_text().splitlines() if '"eval"' in x]
    best = min(evals, key=lambda r: r["negative-elbo"])
    assert lines[6:9] == [
        "| run | eval/negative-elbo [1] best / last | eval/negative-elbo [2] best / last |",
        "| --- | --- | --- |",
        "| gan | - | - |",
    ]
    assert (
        lines[9]
        == f"| vae | {best['negative-elbo']:.4g} (epoch {best['epoch']}) / {evals[-1]['negative-elbo']:.4g} | - |"
    )
    assert re.fullmatch(r"\| vae8 \| - \| [\d.]+ \(epoch 2\) / [\d.]+ \|", lines[10])
    why = (
        "eval/negative-elbo [1] and eval/negative-elbo [2] were measured under different protocols, so they are "
        "not one column and their values are not comparable: reference.image_size (16 vs 8)"
    )
    assert why in lines
    assert lines[-1] == f"dltk: wrote {out / 'compare.html'} (open it in a browser)"

    page = (out / "compare.html").read_text()
    assert why in page
    # the scalars two runs share, one figure each; the GAN's own are not drawn against nothing
    figures = sorted(p.name for p in out.glob("train_*.png"))
    assert figures == ["train_beta.png", "train_kl.png", "train_loss.png", "train_reconstruction.png"]
    assert not list(out.glob("eval_*.png"))  # no elbo column holds two runs
    assert "Logged by one run only: gan: train/d_g_z, train/d_x, train/loss_d, train/loss_g." in page
    for i, name in enumerate(["gan", "vae", "vae8"], 1):
        grid = out / f"grid_{i}_{name}.png"
        assert f"<img src='grid_{i}_{name}.png' alt='{name}'>" in page
        assert grid.read_bytes() == sorted((runs[name] / "samples").glob("grid_*.png"))[-1].read_bytes()
    for figure in figures:
        assert f"src='{figure}'" in page
        with Image.open(out / figure) as image:
            assert image.format == "PNG" and image.width > 300
    assert not list(out.glob(".tmp-*"))


@pytest.mark.slow
def test_same_protocol_one_column_and_one_figure(runs, dltk, tmp_path):
    twin = tmp_path / "vae-again"
    shutil.copytree(runs["vae"], twin)
    records = [json.loads(x) for x in (twin / "metrics.jsonl").read_text().splitlines()]
    for record in records:
        if record["kind"] == "eval":
            record["negative-elbo"] += 5.0
            record["protocol"]["negative-elbo"]["seconds"] = 99.0  # how long it took is not the protocol
    (twin / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    result = dltk("compare", runs["vae"], twin, "--out", tmp_path / "cmp")
    assert result.exit_code == 0, result.err
    assert "| run | eval/negative-elbo best / last |" in result.out.splitlines()
    assert "not comparable" not in result.out
    assert (tmp_path / "cmp" / "eval_negative-elbo.png").is_file()


def test_protocol_key_ignores_timings_seeds_and_companion_values():
    a = {"num_samples": 100, "generated_seconds": 1.0, "seed": 0, "isc_std": 0.1, "reference_cached": False}
    b = {"num_samples": 100, "generated_seconds": 9.0, "seed": 3, "isc_std": 0.4, "reference_cached": True}
    assert protocol_key("isc", a) == protocol_key("isc", b)
    assert protocol_key("isc", a) != protocol_key("isc", {**a, "num_samples": 1000})


@pytest.mark.slow
def test_default_out_folder_beside_the_first_run(runs, dltk, tmp_path):
    other = tmp_path / "one" / "gan"
    shutil.copytree(runs["gan"], other)
    result = dltk("compare", other)
    assert result.exit_code == 0, result.err
    (page,) = (tmp_path / "one").glob("compare-*/compare.html")
    assert result.out.splitlines()[-1] == f"dltk: wrote {page} (open it in a browser)"


@pytest.mark.slow
def test_bad_input_one_line_each_nothing_written(runs, dltk, tmp_path):
    not_run = tmp_path / "plain"
    not_run.mkdir()
    empty = tmp_path / "empty-run"
    empty.mkdir()
    (empty / "recipe.toml").write_text('[recipe]\nname = "gan"\n')
    a_file = tmp_path / "page.html"
    a_file.write_text("x")
    result = dltk("compare", runs["gan"], not_run, empty, tmp_path / "nope", a_file, runs["gan"], "--out", a_file)
    assert result.exit_code == 2
    assert result.err_lines == [
        f"{not_run}: not a run directory (no recipe.toml)",
        f"{empty}: no metrics.jsonl (the run logged nothing yet): nothing to compare",
        f"{tmp_path / 'nope'}: no such run directory",
        f"{a_file}: not a run directory (a file; give the folder dltk run wrote)",
        f"{runs['gan']}: given twice",
        f"--out: '{a_file}' is a file; give a folder for compare.html and its figures",
    ]
    assert result.out == ""
    result = dltk("compare", runs["gan"], "--out", tmp_path / "new")
    assert result.exit_code == 0
    result = dltk("compare", not_run, "--out", tmp_path / "never")
    assert result.exit_code == 2 and not (tmp_path / "never").exists()
