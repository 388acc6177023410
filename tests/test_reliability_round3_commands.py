"""Reliability, round three (issue 25): bounds on what the command line accepts, and failed commands
leave nothing behind."""

from __future__ import annotations

RECIPE = """
[run]
device = "cpu"
[recipe]
name = "toy"
epochs = 1
[model]
name = "toy-mlp"
[dataset]
name = "digits"
"""


def test_nproc_per_node_is_bounded_by_the_cpu_cores(dltk, tmp_path):
    from dltoolkit._distributed import cpu_cores

    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE)
    result = dltk("run", recipe, "--nproc-per-node", "1000", "--backend", "gloo", "--run-dir", tmp_path / "run")
    cores = cpu_cores()
    assert (result.exit_code, result.err_lines) == (
        2,
        [
            f"--nproc-per-node: 1000 processes on the CPU (gloo), but this machine has {cores} CPU cores; use at "
            f"most {cores} (each process is a full copy of the model, its data and torch)"
        ],
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.toml"]


def test_eval_of_a_folder_that_is_not_a_run_says_so(dltk, tmp_path):
    """Not '--metrics: name at least one metric', as it said before (user trial)."""
    folder = tmp_path / "notarun"
    folder.mkdir()
    result = dltk("eval", folder)
    assert (result.exit_code, result.err_lines) == (
        2,
        [f"{folder}: not a run directory (no recipe.toml; give the folder dltk run wrote)"],
    )
