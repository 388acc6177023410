"""`dltk new plugin`: what it writes installs, is found by `dltk`, passes its own tests and runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from runs import needs_first_party

from dltoolkit.testing import run_cli

KINDS = ("model", "dataset", "metric", "callback", "recipe")
# the example recipe file of each kind, made tiny
TINY = {
    "model": ["recipe.epochs=1", "model.hidden=16"],
    "dataset": ["recipe.epochs=1", "dataset.num_train=128", "dataset.num_test=32"],
    "metric": ["recipe.epochs=1", "model.hidden_dim=32", "metrics.0.num_samples=64"],
    "callback": ["recipe.epochs=1", "model.hidden_dim=32"],
    "recipe": ["recipe.epochs=1"],
}


def test_writes_a_distribution_with_a_light_entry_point(dltk, tmp_path):
    result = dltk("new", "plugin", "my-blocks", "--kind", "dataset", "--out", tmp_path)
    assert result.exit_code == 0, result.err
    root = tmp_path / "dltoolkit-my-blocks"
    assert result.out == (
        f"dltk: wrote {root}/; next: install it where dltk runs (pip install -e {root}, or from a "
        f"dltoolkit checkout: uv pip install -e {root}) and test it (pytest {root})\n"
    )
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == [
        "README.md",
        "dltoolkit_my_blocks/__init__.py",
        "dltoolkit_my_blocks/datasets.py",
        "dltoolkit_my_blocks/plugin.py",
        "dltoolkit_my_blocks/py.typed",
        "examples/my-blocks.toml",
        "pyproject.toml",
        "tests/conftest.py",
        "tests/test_light.py",
        "tests/test_my_blocks.py",
    ]
    pyproject = (root / "pyproject.toml").read_text()
    assert 'name = "dltoolkit-my-blocks"' in pyproject
    assert '[project.entry-points.dltoolkit]\nmy-blocks = "dltoolkit_my_blocks.plugin"' in pyproject
    plugin = (root / "dltoolkit_my_blocks" / "plugin.py").read_text()
    assert "import torch" not in plugin.split("def ")[0]  # nothing heavy at module level
    assert not list(tmp_path.glob(".tmp-*"))


def test_dltk_dash_dash_help_of_new_lists_the_kinds(dltk):
    result = dltk("new", "plugin", "--help")
    assert result.exit_code == 0
    assert "{model,dataset,metric,callback,recipe}" in result.out


def test_bad_input_is_one_line_and_writes_nothing(dltk, tmp_path):
    result = dltk("new", "plugin", "My_Plugin", "--out", tmp_path)
    assert (result.exit_code, result.err_lines) == (
        2,
        [
            "NAME: 'My_Plugin' is not a plugin name: use lowercase letters, digits and single dashes, "
            "starting with a letter (for example 'my-model')"
        ],
    )
    assert list(tmp_path.iterdir()) == []
    afile = tmp_path / "file"
    afile.write_text("x")
    result = dltk("new", "plugin", "ok", "--out", afile)
    assert (result.exit_code, result.err_lines) == (2, [f"--out: '{afile}' is a file, not a folder"])
    taken = tmp_path / "dltoolkit-taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("keep")
    result = dltk("new", "plugin", "dltoolkit-taken", "--out", tmp_path)  # the prefix is optional
    assert (result.exit_code, result.err_lines) == (
        2,
        [f"{taken}: already exists; remove it or choose another --out or NAME"],
    )
    assert sorted(p.name for p in taken.iterdir()) == ["mine.txt"]
    result = dltk("new", "plugin", "ok", "--kind", "optimizer")
    assert result.exit_code == 2 and "invalid choice: 'optimizer'" in result.err


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, Path]:
    """One plugin of each kind, installed (without dependencies) into one folder with uv."""
    out = tmp_path_factory.mktemp("generated")
    for kind in KINDS:
        result = run_cli("new", "plugin", f"gen-{kind}", "--kind", kind, "--out", out)
        assert result.exit_code == 0, result.err
    uv = shutil.which("uv")
    assert uv, "uv is needed to install the generated plugins (the README's setup installs it)"
    site = tmp_path_factory.mktemp("site")
    folders = [str(out / f"dltoolkit-gen-{kind}") for kind in KINDS]
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--no-deps", "--target", str(site), "--python", sys.executable, *folders],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return out, site


@needs_first_party("gan")
@pytest.mark.slow
def test_every_kind_installs_is_listed_passes_its_own_tests_and_runs(generated, dltk, monkeypatch, tmp_path):
    out, site = generated
    for kind in KINDS:
        assert list(site.glob(f"dltoolkit_gen_{kind}-0.1.0.dist-info")), sorted(p.name for p in site.iterdir())
    monkeypatch.syspath_prepend(str(site))  # the installed distributions, found by their entry points

    plugins = dltk("plugins").out.splitlines()
    for kind in KINDS:
        assert any(
            line.split()[:3] == [f"gen-{kind}", f"dltoolkit-gen-{kind}", "0.1.0"] and line.endswith("ok")
            for line in plugins
        ), plugins
        listing = dltk("list", kind).out.splitlines()
        names = {"recipe": ["gen-recipe"]}.get(kind, [f"gen-{kind}"])
        for name in names:
            (row,) = [line for line in listing if line.split()[:1] == [name]]
            assert row.endswith(f"[dltoolkit-gen-{kind}]")
    assert "(for: gen-recipe)" in dltk("list", "models").out  # the recipe kind's own model

    # the generated tests pass as generated, against the installed copies (one pytest for all five)
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--import-mode=importlib",
         "--rootdir", str(out), "-c", os.devnull, *[str(out / f"dltoolkit-gen-{k}" / "tests") for k in KINDS]],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout and "error" not in result.stdout

    # each example recipe file runs through the real entry points
    for kind in KINDS:
        example = out / f"dltoolkit-gen-{kind}" / "examples" / f"gen-{kind}.toml"
        run = tmp_path / f"run-{kind}"
        result = dltk("run", example, "run.device=cpu", *TINY[kind], "--run-dir", run)
        assert result.exit_code == 0, f"{kind}: {result.err}"
        assert (run / "checkpoints").is_dir() and (run / "metrics.jsonl").is_file()
