"""Several processes on ignite.distributed (gloo, CPU): the same weights as one process with the
same global batch, exact resume after the launcher is killed, one run directory, one message."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
from pathlib import Path

import pytest
import torch

from dltoolkit._checkpoint import checkpoints_in, load_checkpoint
from dltoolkit.testing import run_cli

HELPERS = Path(__file__).resolve().parent / "helpers"

# Tolerance of "the same weights": 2 x B/2 and 1 x B sum the same per-sample gradients in another
# order (float32), and Adam divides by sqrt(v), which amplifies the last bits early on.
RTOL, ATOL = 1e-4, 1e-5

TOY = """
seed = 3
[run]
dir = "{runs}"
device = "cpu"
threads = 1
[recipe]
name = "toy"
epochs = 3
batch_size = 64
lr_g = 1e-3
lr_d = 1e-3
log_every = 5
[model]
name = "toy-mlp"
latent_dim = 16
hidden_dim = 64
depth = 2
dropout = 0.0
[dataset]
name = "digits"
image_size = 8
[checkpoint]
every = 1
keep = 3
"""


def weights(run: Path, *names: str) -> dict[str, torch.Tensor]:
    data = load_checkpoint(checkpoints_in(run / "checkpoints")[0])
    return {f"{n}.{k}": v for n in names for k, v in data[n].items()}


def log(run: Path, kind: str) -> list[str]:
    return [line for line in (run / "metrics.jsonl").read_text().splitlines() if f'"kind": "{kind}"' in line]


def assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=RTOL, atol=ATOL, msg=lambda m, k=key: f"{k}: {m}")


@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory) -> tuple[Path, Path, Path]:
    """The toy with 1 process x 64 and with 2 processes x 32 (3 epochs of 22 iterations)."""
    folder = tmp_path_factory.mktemp("toy")
    recipe = folder / "toy.toml"
    recipe.write_text(TOY.format(runs=folder.as_posix()))
    one = run_cli("run", recipe, "--run-dir", folder / "one")
    assert one.exit_code == 0, one.err
    two = run_cli("run", recipe, "--run-dir", folder / "two", "--nproc-per-node", "2")
    assert two.exit_code == 0, two.err
    return recipe, folder / "one", folder / "two"


@pytest.mark.slow
def test_two_processes_train_the_toy_as_one_with_the_global_batch(toy_runs):
    _recipe, one, two = toy_runs
    names = ("generator", "discriminator")
    assert_close(weights(one, *names), weights(two, *names))
    assert load_checkpoint(checkpoints_in(two / "checkpoints")[0])["trainer"]["iteration"] == 66
    # one run directory, written by rank 0 alone; the logged means are over the global batch
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    for a, b in zip(log(one, "epoch"), log(two, "epoch"), strict=True):
        assert a.split('"loss_d": ')[1][:5] == b.split('"loss_d": ')[1][:5]


def _launch(argv: list[str]) -> None:
    from dltoolkit.cli import main

    sys.exit(main(argv))


@pytest.mark.slow
def test_launcher_killed_mid_run_resumes_exactly_as_an_uninterrupted_run(toy_runs, tmp_path, monkeypatch):
    recipe, _one, two = toy_runs
    monkeypatch.syspath_prepend(str(HELPERS))
    monkeypatch.setenv("DLTK_FAULT_KILL_LAUNCHER_AT", "30")  # epoch 2; the last checkpoint is iteration 22
    run = tmp_path / "killed"
    argv = ["run", str(recipe), "--run-dir", str(run), "--nproc-per-node", "2", "-p", "launcher_fault_plugin"]
    launcher = multiprocessing.get_context("fork").Process(target=_launch, args=(argv,))  # a launcher to kill
    launcher.start()
    launcher.join(timeout=240)
    assert launcher.exitcode == -signal.SIGKILL
    assert [p.name for p in checkpoints_in(run / "checkpoints")] == ["checkpoint_22.pt"]
    monkeypatch.delenv("DLTK_FAULT_KILL_LAUNCHER_AT")
    resumed = run_cli("run", "--resume", run, "--nproc-per-node", "2")
    assert resumed.exit_code == 0, resumed.err
    names = ("generator", "discriminator", "optimizer_g", "optimizer_d")
    left, right = (
        load_checkpoint(checkpoints_in(two / "checkpoints")[0]),
        load_checkpoint(checkpoints_in(run / "checkpoints")[0]),
    )
    for name in names[:2]:
        for key, value in left[name].items():
            assert torch.equal(value, right[name][key]), f"{name}.{key}"
    for name in names[2:]:
        for index, entry in left[name]["state"].items():
            for key, value in entry.items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(right[name]["state"][index][key]))
    assert log(run, "step") == log(two, "step")  # nothing lost, nothing logged twice
    assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _is_orphan_rank(p, run)]


def _is_orphan_rank(proc: Path, run: Path) -> bool:
    try:
        return str(run) in (proc / "cmdline").read_text() and int(proc.name) != os.getpid()
    except OSError:
        return False


def test_batch_size_must_divide_among_processes(tmp_path):
    recipe = tmp_path / "toy.toml"
    recipe.write_text(TOY.format(runs=tmp_path.as_posix()))
    result = run_cli("run", recipe, "recipe.batch_size=63", "--nproc-per-node", "2")
    assert result.exit_code == 2
    assert result.err.strip() == (
        f"{recipe}: recipe.batch_size: 63 does not divide among 2 processes (each takes batch_size / 2); "
        "use a multiple of 2"
    )
    assert not any(p.is_dir() for p in tmp_path.iterdir())


def test_nproc_and_backend_refused_in_one_line(tmp_path):
    recipe = tmp_path / "toy.toml"
    recipe.write_text(TOY.format(runs=tmp_path.as_posix()))
    result = run_cli("run", recipe, "--nproc-per-node", "0")
    assert (result.exit_code, result.err.strip()) == (2, "--nproc-per-node: must be at least 1, got 0")
    if not torch.cuda.is_available():
        result = run_cli("run", recipe, "--nproc-per-node", "2", "--backend", "nccl")
        assert result.exit_code == 2
        assert result.err.strip() == (
            "--backend: nccl needs CUDA devices and an NCCL build of torch; use --backend gloo"
        )


@pytest.mark.slow
def test_a_signal_on_one_rank_stops_every_rank_at_the_same_iteration(toy_runs, tmp_path, monkeypatch):
    recipe, _one, two = toy_runs
    monkeypatch.syspath_prepend(str(HELPERS))
    monkeypatch.setenv("DLTK_FAULT_RANK1", "30:TERM")
    monkeypatch.setenv("DLTK_FAULT_RANK0_SLOW_STOP", "3")  # rank 1 is done long before rank 0 has saved
    run = tmp_path / "stopped"
    result = run_cli("run", recipe, "--run-dir", run, "--nproc-per-node", "2", "-p", "launcher_fault_plugin")
    assert result.exit_code == 143
    assert result.err.strip() == (
        f"{run}: stopped by SIGTERM at iteration 30; state saved. Continue with: dltk run --resume {run}"
    )
    assert [p.name for p in checkpoints_in(run / "checkpoints")] == ["checkpoint_30.pt", "checkpoint_22.pt"]
    monkeypatch.delenv("DLTK_FAULT_RANK1")
    monkeypatch.delenv("DLTK_FAULT_RANK0_SLOW_STOP")
    resumed = run_cli("run", "--resume", run, "--nproc-per-node", "2")
    assert resumed.exit_code == 0, resumed.err
    final = [load_checkpoint(checkpoints_in(r / "checkpoints")[0])["generator"] for r in (two, run)]
    assert all(torch.equal(final[0][k], final[1][k]) for k in final[0])


@pytest.mark.slow
def test_a_failure_on_one_rank_stops_the_run_with_one_message(toy_runs, tmp_path, monkeypatch):
    recipe, _one, _two = toy_runs
    monkeypatch.syspath_prepend(str(HELPERS))
    monkeypatch.setenv("DLTK_FAULT_RANK1", "5:RAISE")
    run = tmp_path / "failed"
    result = run_cli("run", recipe, "--run-dir", run, "--nproc-per-node", "2", "-p", "launcher_fault_plugin")
    assert result.exit_code == 1
    assert result.err.startswith("rank 1: Traceback (most recent call last)")
    assert result.err.strip().endswith("RuntimeError: injected failure on rank 1")
    assert result.err.count("Traceback") == 1


@pytest.mark.slow
def test_sync_batchnorm_converts_the_models_batchnorm_and_is_refused_on_cpu(tmp_path):
    import attrs
    from torch import nn

    from dltoolkit._run import sync_batchnorm

    @attrs.define
    class Pair:
        generator: nn.Module
        discriminator: nn.Module
        latent_dim: int = 4

    pair = sync_batchnorm(Pair(nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)), nn.BatchNorm2d(3)))
    assert isinstance(pair.generator[1], nn.SyncBatchNorm) and isinstance(pair.discriminator, nn.SyncBatchNorm)
    assert isinstance(sync_batchnorm(nn.BatchNorm2d(2)), nn.SyncBatchNorm)

    recipe = tmp_path / "toy.toml"
    recipe.write_text(TOY.format(runs=tmp_path.as_posix()))
    result = run_cli("run", recipe, "recipe.sync_batchnorm=true", "--nproc-per-node", "2", "--run-dir", tmp_path / "r")
    assert result.exit_code == 2
    assert result.err.strip() == (
        f"{recipe}: recipe.sync_batchnorm: SyncBatchNorm runs on CUDA devices only; this run trains on cpu "
        "(set it to false)"
    )


@pytest.mark.slow
def test_compile_unavailable_is_one_warning_and_the_run_goes_on(tmp_path, monkeypatch):
    def no_compiler(*_args, **_kwargs):
        raise RuntimeError("Compiler: cc is not found\nmore details")

    monkeypatch.setattr(torch, "compile", no_compiler)
    recipe = tmp_path / "toy.toml"
    recipe.write_text(TOY.format(runs=tmp_path.as_posix()))
    result = run_cli("run", recipe, "recipe.compile=true", "recipe.epochs=1", "--run-dir", tmp_path / "r")
    assert result.exit_code == 0, result.err
    warnings = [line for line in result.err.splitlines() if "torch.compile" in line]
    assert warnings == [
        "dltk: recipe.compile: torch.compile is not available here (Compiler: cc is not found); training uncompiled"
    ]


def test_compile_must_be_true_or_false(tmp_path):
    recipe = tmp_path / "toy.toml"
    recipe.write_text(TOY.format(runs=tmp_path.as_posix()))
    result = run_cli("check", recipe, "recipe.compile=1")
    assert (result.exit_code, result.err.strip()) == (2, f"{recipe}: recipe.compile: expected true or false, got 1")


@pytest.mark.slow
def test_a_compiled_run_resumes_uncompiled_and_the_other_way_round(tmp_path):
    """Checkpoints of compiled and uncompiled runs are the same format (no ``_orig_mod.`` keys)."""
    recipe = tmp_path / "toy.toml"
    recipe.write_text(TOY.format(runs=tmp_path.as_posix()))
    run = tmp_path / "run"
    first = run_cli("run", recipe, "recipe.compile=true", "recipe.epochs=1", "--run-dir", run)
    assert first.exit_code == 0, first.err
    assert "not available" not in first.err
    keys = load_checkpoint(checkpoints_in(run / "checkpoints")[0])["generator"].keys()
    plain = run_cli("run", recipe, "recipe.epochs=1", "--run-dir", tmp_path / "plain")
    assert keys == load_checkpoint(checkpoints_in(tmp_path / "plain" / "checkpoints")[0])["generator"].keys()
    assert not any("_orig_mod" in k for k in keys) and plain.exit_code == 0
    uncompiled = run_cli("run", "--resume", run, "recipe.compile=false", "recipe.epochs=2")
    assert uncompiled.exit_code == 0, uncompiled.err
    compiled = run_cli("run", "--resume", run, "recipe.compile=true", "recipe.epochs=3")
    assert compiled.exit_code == 0, compiled.err
    assert load_checkpoint(checkpoints_in(run / "checkpoints")[0])["trainer"]["iteration"] == 66


@pytest.mark.slow
def test_off_the_cpu_finiteness_is_read_at_logging_points_and_still_names_the_iteration(tmp_path, monkeypatch):
    """On an accelerator the step scalars are not read every iteration (that waits for the
    device): the first bad iteration is kept on the device and read at the next logging point
    or checkpoint. Forced here on the CPU."""
    from toy_plugin import TINY_RECIPE

    from dltoolkit._run import Run

    monkeypatch.setattr(Run, "check_every_step", False)
    monkeypatch.syspath_prepend(str(HELPERS))
    monkeypatch.setenv("DLTK_FAULT_NAN_AT", "33")  # detected at iteration 35 (log_every = 5)
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY_RECIPE.format(runs=tmp_path.as_posix()))
    run = tmp_path / "run"
    checkpoints = ["checkpoint.unit=iteration", "checkpoint.every=4", "checkpoint.keep=20"]
    result = run_cli("run", recipe, *checkpoints, "--run-dir", run, "-p", "fault_plugin")
    assert result.exit_code == 1
    assert (
        result.err.strip()
        .splitlines()[-1]
        .startswith(f"{run}: non-finite loss at iteration 33 (epoch 1): loss_d = nan")
    )
    assert checkpoints_in(run / "checkpoints")[0].name == "checkpoint_32.pt"  # not 36
    logged = [json.loads(line)["iteration"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(logged) == 30  # the window holding iteration 33 was never logged
