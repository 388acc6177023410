import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DISTRIBUTION = Path(__file__).resolve().parents[1]  # the folder holding pyproject.toml


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """Build this distribution and install it, without dependencies, into a folder of its own."""
    uv = shutil.which("uv")
    assert uv, "uv is needed to build and install the plugin"
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
            str(DISTRIBUTION),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return target


def dltk(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The real `dltk` console script of this environment, with `site` on PYTHONPATH."""
    exe = Path(sys.executable).parent / "dltk"
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


@pytest.mark.slow
def test_installed_plugin_is_discovered_and_runs(site, tmp_path):
    plugins = dltk(site, "plugins", cwd=tmp_path).stdout.splitlines()
    assert any(
        line.startswith("example ") and "dltoolkit-example 0.4.0" in line and line.endswith("ok") for line in plugins
    )
    listing = dltk(site, "list", "models", cwd=tmp_path).stdout.splitlines()
    (row,) = [line for line in listing if line.split()[:1] == ["tiny-gan"]]
    assert row.endswith("(for: gan)  [dltoolkit-example]")

    recipe = tmp_path / "tiny.toml"
    recipe.write_text(
        '[run]\ndevice = "cpu"\n[recipe]\nname = "gan"\nepochs = 1\n'
        'batch_size = 64\n[model]\nname = "tiny-gan"\n[dataset]\nname = "digits"\n'
    )
    result = dltk(site, "run", str(recipe), "--run-dir", str(tmp_path / "run"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "checkpoints" / "checkpoint_22.pt").is_file()
