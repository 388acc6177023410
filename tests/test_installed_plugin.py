"""A real, separately installed third-party distribution: its model appears and a recipe uses it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from runs import needs_first_party

EXAMPLE = Path(__file__).resolve().parent / "example_plugin"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """Build and install tests/example_plugin into its own folder with uv (no dependencies)."""
    uv = shutil.which("uv")
    assert uv, "uv is needed to install the example plugin (the README's setup installs it)"
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            "--python",
            sys.executable,
            str(EXAMPLE),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    assert (target / "dltoolkit_example").is_dir()
    assert list(target.glob("dltoolkit_example-0.4.0.dist-info"))
    return target


def dltk(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    exe = Path(sys.executable).parent / "dltk"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


@needs_first_party("gan")
@pytest.mark.slow
def test_installed_plugin_shows_in_list_and_runs(installed, tmp_path):
    listing = dltk(installed, "list", "models", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    (row,) = [line for line in listing.stdout.splitlines() if line.split()[:1] == ["tiny-gan"]]
    assert row.endswith("(for: gan)  [dltoolkit-example]")
    recipes = dltk(installed, "list", "recipes", cwd=tmp_path)
    assert any(line.split()[:1] == ["autoencode"] for line in recipes.stdout.splitlines()), recipes.stdout
    plugins = dltk(installed, "plugins", cwd=tmp_path)
    assert any(
        line.startswith("example") and "dltoolkit-example 0.4.0" in line and line.endswith("ok")
        for line in plugins.stdout.splitlines()
    )

    recipe = tmp_path / "third.toml"
    recipe.write_text(
        '[run]\ndevice = "cpu"\n[recipe]\nname = "gan"\nepochs = 1\nbatch_size = 64\n'
        '[model]\nname = "tiny-gan"\nwidth = 8\n[dataset]\nname = "digits"\n'
    )
    result = dltk(installed, "run", str(recipe), "--run-dir", str(tmp_path / "run"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "checkpoints" / "checkpoint_22.pt").is_file()
    # the plugin's own family: a recipe and a model that dltoolkit has never heard of
    family = tmp_path / "family.toml"
    family.write_text(
        '[run]\ndevice = "cpu"\n[recipe]\nname = "autoencode"\nepochs = 1\n'
        '[model]\nname = "tiny-ae"\n[dataset]\nname = "digits"\n[[metrics]]\nname = "mse"\n'
    )
    result = dltk(installed, "run", str(family), "--run-dir", str(tmp_path / "ae"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert '"mse":' in (tmp_path / "ae" / "metrics.jsonl").read_text()
    # without the plugin on the path the same recipe names the missing model clearly
    missing = subprocess.run(
        [str(Path(sys.executable).parent / "dltk"), "check", str(recipe)], capture_output=True, text=True, cwd=tmp_path
    )
    assert missing.returncode == 2
    assert f"{recipe}: model.name: unknown model 'tiny-gan'" in missing.stderr


@needs_first_party("gan")
@pytest.mark.slow
def test_the_example_plugins_own_tests_pass(tmp_path):
    """The example plugin's tests, as docs/testing_plugins.md shows them, pass with dltoolkit.testing.

    (Its slow installed-distribution test is the one above.)
    """
    env = {**os.environ, "PYTHONPATH": str(EXAMPLE)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow", "-c", os.devnull,
         "--rootdir", str(EXAMPLE), str(EXAMPLE / "tests")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
