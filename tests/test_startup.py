"""dltk --help, list, plugins and check import no torch: registration stays light, for every plugin here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import sys
from dltoolkit.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:  # --help
    code = exc.code
heavy = sorted(m for m in ("torch", "ignite", "torchvision", "torch_fidelity", "sklearn") if m in sys.modules)
print("EXIT", code, "HEAVY", ",".join(heavy) or "-")
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["run", "--help"],
        ["compare", "--help"],
        ["new", "--help"],
        ["new", "plugin", "--help"],
        ["list"],
        ["list", "-v"],
        ["plugins"],
        ["check", str(ROOT / "recipes" / "dcgan_cifar10.toml")],
        ["check", str(ROOT / "recipes" / "quickstart.toml"), "recipe.epochs=2"],
    ],
    ids=lambda a: " ".join(a[:2]).replace(str(ROOT) + "/", ""),
)
def test_commands_that_build_nothing_import_no_torch(args, tmp_path):
    """In a fresh interpreter (this test process has torch loaded already), with every installed plugin."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("EXIT 0 "), result.stdout + result.stderr
    assert last.endswith("HEAVY -"), f"{args}: imported {last.split('HEAVY ')[1]}"
