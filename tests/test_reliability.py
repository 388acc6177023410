"""Reliability: exact resume after SIGKILL (also mid-save), signals, non-finite losses, full disks,
corrupt and tampered checkpoints. Each test really does the thing, through a fault-injecting plugin
(tests/helpers/fault_plugin.py)."""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import pytest
import torch
from runs import ITERATION_CHECKPOINTS, log_lines, subprocess_run

from dltoolkit._checkpoint import MANIFEST, checkpoints_in, load_checkpoint, read_manifest, sha256_file

# the shipped recipes' end-of-run callbacks: they must not swallow the failure (exit code)
ARTEFACTS = "callbacks=[{name='samples',unit='iteration',every=10},{name='progress-gif'},{name='loss-plot'}]"


def final_state(run: Path) -> dict[str, torch.Tensor]:
    data = load_checkpoint(checkpoints_in(run / "checkpoints")[0])
    state = {}
    for name in ("generator", "discriminator"):
        state.update({f"{name}.{k}": v for k, v in data[name].items()})
    for name in ("optimizer_g", "optimizer_d"):
        for index, entry in data[name]["state"].items():
            state.update({f"{name}.{index}.{k}": v for k, v in entry.items() if isinstance(v, torch.Tensor)})
    return state


def assert_bit_identical(a: Path, b: Path) -> None:
    left, right = final_state(a), final_state(b)
    assert left.keys() == right.keys()
    different = [k for k in left if not torch.equal(left[k], right[k])]
    assert not different, f"differ: {different[:5]}"


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> tuple[Path, Path]:
    """The same tiny run, left uninterrupted: 2 epochs of 44 iterations, checkpoints every 10."""
    from toy_plugin import TINY_RECIPE

    from dltoolkit.testing import run_cli

    folder = tmp_path_factory.mktemp("straight")
    recipe = folder / "tiny.toml"
    recipe.write_text(TINY_RECIPE.format(runs=folder.as_posix()))
    result = run_cli("run", recipe, *ITERATION_CHECKPOINTS, "--run-dir", folder / "run")
    assert result.exit_code == 0, result.err
    return recipe, folder / "run"


@pytest.mark.slow
def test_sigkill_at_random_iterations_then_resume_is_bit_identical(straight, dltk, tmp_path):
    recipe, reference = straight
    for trial, kill_at in enumerate(sorted(random.Random(7).sample(range(3, 86), 3))):
        run = tmp_path / f"trial{trial}"
        killed = subprocess_run(recipe, run, *ITERATION_CHECKPOINTS, env={"DLTK_FAULT_KILL_AT": str(kill_at)})
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        last = checkpoints_in(run / "checkpoints")
        assert not last or int(last[0].stem.split("_")[1]) <= kill_at
        result = dltk("run", "--resume", run)
        assert result.exit_code == 0, result.err
        assert_bit_identical(reference, run)
        assert log_lines(run) == log_lines(reference)  # nothing logged twice, nothing lost


@pytest.mark.slow
def test_kill_during_a_save_leaves_the_previous_checkpoint(straight, dltk, tmp_path):
    recipe, reference = straight
    run = tmp_path / "run"
    killed = subprocess_run(recipe, run, *ITERATION_CHECKPOINTS, env={"DLTK_FAULT_KILL_IN_SAVE": "4"})
    assert killed.returncode == -signal.SIGKILL
    folder = run / "checkpoints"
    assert [p.name for p in checkpoints_in(folder)] == ["checkpoint_30.pt", "checkpoint_20.pt", "checkpoint_10.pt"]
    assert list(folder.glob(".tmp-*")), "the half-written temp file should be there"
    assert read_manifest(folder)["checkpoint_30.pt"] == sha256_file(folder / "checkpoint_30.pt")
    result = dltk("run", "--resume", run)
    assert result.exit_code == 0, result.err
    assert not list(folder.glob(".tmp-*"))
    assert_bit_identical(reference, run)


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "code", "name"), [("TERM", 143, "SIGTERM"), ("INT", 130, "SIGINT")])
def test_signal_stops_cleanly_and_resumes_exactly(straight, dltk, tmp_path, kind, code, name):
    recipe, reference = straight
    run = tmp_path / "run"
    stopped = subprocess_run(
        recipe,
        run,
        *ITERATION_CHECKPOINTS,
        "callbacks=[{name='samples'},{name='progress-gif'}]",
        env={"DLTK_FAULT_SIGNAL_AT": f"25:{kind}"},
    )
    assert stopped.returncode == code, stopped.stderr
    assert (
        f"{run}: stopped by {name} at iteration 25; state saved. Continue with: dltk run --resume {run}"
        in stopped.stderr
    )
    assert "Traceback" not in stopped.stderr
    assert checkpoints_in(run / "checkpoints")[0].name == "checkpoint_25.pt"
    assert (run / "samples" / "progress.gif").is_file()
    result = dltk("run", "--resume", run)
    assert result.exit_code == 0, result.err
    assert_bit_identical(reference, run)


@pytest.mark.slow
def test_a_signal_after_the_last_iteration_finishes_the_complete_run(straight, tmp_path):
    recipe, reference = straight
    run = tmp_path / "run"
    finished = subprocess_run(recipe, run, *ITERATION_CHECKPOINTS, env={"DLTK_FAULT_SIGNAL_AT": "done:TERM"})
    assert finished.returncode == 0, finished.stderr  # nothing was cut short: the run is complete
    assert "dltk: SIGTERM received: training is complete; finishing its last files" in finished.stderr
    assert "stopping after this iteration" not in finished.stderr
    assert [p.name for p in checkpoints_in(run / "checkpoints")] == [
        p.name for p in checkpoints_in(reference / "checkpoints")
    ]


@pytest.mark.slow
def test_one_ctrl_c_delivered_twice_at_once_still_stops_cleanly(straight, tmp_path):
    """Without a terminal, `uv run` forwards a SIGINT that dltk's process group also got: the two arrive
    together and are one Ctrl-C, a clean stop with its checkpoint, not an exit at once (user trial)."""
    recipe, _ = straight
    run = tmp_path / "run"
    stopped = subprocess_run(recipe, run, *ITERATION_CHECKPOINTS, env={"DLTK_FAULT_SIGNAL_AT": "25:INTDUP"})
    assert stopped.returncode == 130, stopped.stderr
    assert "dltk: stopping now" not in stopped.stderr
    assert "state saved" in stopped.stderr
    assert checkpoints_in(run / "checkpoints")[0].name == "checkpoint_25.pt"


@pytest.mark.slow
def test_second_ctrl_c_exits_at_once(straight, tmp_path):
    recipe, _ = straight
    run = tmp_path / "run"
    stopped = subprocess_run(recipe, run, *ITERATION_CHECKPOINTS, env={"DLTK_FAULT_SIGNAL_AT": "25:INT2"})
    assert stopped.returncode == 130
    assert "dltk: stopping now" in stopped.stderr
    assert checkpoints_in(run / "checkpoints")[0].name == "checkpoint_20.pt"  # no save after the second signal


@pytest.mark.slow
def test_non_finite_loss_stops_with_exit_1_and_resumes(straight, dltk, tmp_path, monkeypatch):
    recipe, _ = straight
    run = tmp_path / "run"
    monkeypatch.setenv("DLTK_FAULT_NAN_AT", "35")
    result = dltk("run", recipe, *ITERATION_CHECKPOINTS, ARTEFACTS, "--run-dir", run, "-p", "fault_plugin")
    assert result.exit_code == 1
    assert (run / "samples" / "progress.gif").is_file() and (run / "samples" / "losses.png").is_file()
    assert result.err_lines[-1].startswith(f"{run}: non-finite loss at iteration 35 (epoch 1): loss_d = nan")
    assert "Resume from the last good checkpoint" in result.err_lines[-1]
    assert "Traceback" not in result.err
    saved = checkpoints_in(run / "checkpoints")
    assert saved[0].name == "checkpoint_30.pt"
    for path in saved:
        data = load_checkpoint(path)
        assert all(torch.isfinite(v).all() for v in data["generator"].values())
    monkeypatch.delenv("DLTK_FAULT_NAN_AT")
    result = dltk("run", "--resume", run, "recipe.lr_g=1e-4")
    assert result.exit_code == 0, result.err
    assert "lr_g = 0.0001" in (run / "recipe.toml").read_text()
    assert load_checkpoint(checkpoints_in(run / "checkpoints")[0])["optimizer_g"]["param_groups"][0]["lr"] == 1e-4


@pytest.mark.slow
def test_disk_full_keeps_previous_checkpoint(straight, dltk, tmp_path, monkeypatch):
    recipe, _ = straight
    run = tmp_path / "run"
    monkeypatch.setenv("DLTK_FAULT_ENOSPC_IN_SAVE", "3")
    result = dltk("run", recipe, *ITERATION_CHECKPOINTS, ARTEFACTS, "--run-dir", run, "-p", "fault_plugin")
    assert result.exit_code == 1
    folder = run / "checkpoints"
    assert result.err_lines[-1] == (
        f"{folder}: disk full while writing checkpoint_30.pt; the previous checkpoints are intact. "
        "Free some space, then continue with dltk run --resume on this run"
    )
    assert [p.name for p in checkpoints_in(folder)] == ["checkpoint_20.pt", "checkpoint_10.pt"]
    assert not list(folder.glob(".tmp-*"))
    assert load_checkpoint(folder / "checkpoint_20.pt")["trainer"]["iteration"] == 20


@pytest.mark.slow
def test_corrupt_newest_checkpoint_falls_back_to_previous(straight, dltk, tmp_path):
    recipe, reference = straight
    run = tmp_path / "run"
    assert dltk("run", recipe, "recipe.epochs=1", *ITERATION_CHECKPOINTS, "--run-dir", run).exit_code == 0
    newest = checkpoints_in(run / "checkpoints")[0]
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated
    result = dltk("run", "--resume", run, "recipe.epochs=2")
    assert result.exit_code == 0, result.err
    assert f"dltk: skipping {newest}: sha256 " in result.err and "truncated or altered" in result.err
    assert newest.with_name(newest.name + ".corrupt").is_file()  # set aside for inspection, out of rotation
    assert_bit_identical(reference, run)


@pytest.mark.slow
def test_no_readable_checkpoint_left_is_exit_2(straight, dltk, tmp_path):
    recipe, _ = straight
    run = tmp_path / "run"
    assert dltk("run", recipe, "recipe.epochs=1", *ITERATION_CHECKPOINTS, "--run-dir", run).exit_code == 0
    for path in checkpoints_in(run / "checkpoints"):
        path.write_bytes(b"garbage")
    (run / "checkpoints" / MANIFEST).unlink()
    result = dltk("run", "--resume", run, "recipe.epochs=2")
    assert result.exit_code == 2
    assert result.err_lines[-1] == f"{run}: no readable checkpoint left to resume from"


class _Payload:
    def __reduce__(self):
        return (Path.touch, (Path(__file__).parent / "PWNED_RESUME",))


@pytest.mark.slow
def test_pickle_payload_in_a_checkpoint_never_runs(straight, dltk, tmp_path):
    recipe, _ = straight
    run = tmp_path / "run"
    marker = Path(__file__).parent / "PWNED_RESUME"
    marker.unlink(missing_ok=True)
    assert dltk("run", recipe, "recipe.epochs=1", *ITERATION_CHECKPOINTS, "--run-dir", run).exit_code == 0
    newest = checkpoints_in(run / "checkpoints")[0]
    data = torch.load(newest, weights_only=True)
    data["meta"]["payload"] = _Payload()
    torch.save(data, newest)
    (run / "checkpoints" / MANIFEST).unlink()  # a tamperer would not leave the hash behind either
    result = dltk("run", "--resume", run, "recipe.epochs=2")
    assert result.exit_code == 0, result.err
    assert f"dltk: skipping {newest}: refused: the file holds pickled objects" in result.err
    assert not marker.exists()


@pytest.mark.parametrize("where", ["logs", "grids", "tensorboard"])
@pytest.mark.slow
def test_disk_full_outside_checkpoints_is_reported_not_a_traceback(straight, dltk, tmp_path, monkeypatch, where):
    """ENOSPC in metrics.jsonl, in a sample grid, or in TensorBoard's events: exit 1 naming the file."""
    import errno

    from torch.utils.tensorboard import SummaryWriter

    from dltoolkit import _images
    from dltoolkit._run import Run

    recipe, _ = straight
    run = tmp_path / "run"
    calls: list[object] = []
    target = {
        "logs": (Run, "log", run / "metrics.jsonl", 4),
        "grids": (_images, "atomic_write", run / "samples" / "grid_0000000020.png", 2),
        "tensorboard": (SummaryWriter, "add_scalar", run / "tb" / "events", 13),
    }[where]
    owner, name, path, nth = target
    original = getattr(owner, name)

    def full(*args, **kwargs):
        calls.append(args)
        if len(calls) == nth:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, full)
    result = dltk("run", recipe, *ITERATION_CHECKPOINTS, "callbacks=[{name='samples',unit='iteration',every=10}]",
                  "--run-dir", run)  # fmt: skip
    assert result.exit_code == 1, result.err
    assert len(calls) == nth  # the fault was injected where it was meant to be
    assert result.err_lines[-1].startswith(f"{path}: disk full at iteration ")
    assert result.err_lines[-1].endswith(
        f"; the checkpoints already written are intact. Free some space, then continue with: dltk run --resume {run}"
    )
    assert "Traceback" not in result.err
    assert checkpoints_in(run / "checkpoints")  # and they are


@pytest.mark.slow
def test_a_run_directory_has_one_owner(dltk, tiny_recipe, tmp_path):
    """A second writer (run into the same --run-dir, or a second --resume) is refused by pid and removes nothing."""
    import fcntl

    run = tmp_path / "owned"
    assert dltk("run", tiny_recipe(), "recipe.epochs=1", "--run-dir", run).exit_code == 0
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    with open(run / ".lock", "r+") as held:  # what a running dltk holds
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242\n")
        held.flush()
        result = dltk("run", "--resume", run, "recipe.epochs=2")
        assert (result.exit_code, result.err_lines) == (
            2,
            [f"{run}: in use by another dltk run (pid 4242); wait for it to end or stop it first"],
        )
        fresh = tmp_path / "fresh"
        fresh.mkdir()
        with open(fresh / ".lock", "w") as other:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            other.write(f"{os.getpid()}\n")
            other.flush()
            result = dltk("run", tiny_recipe(), "--run-dir", fresh)
            assert result.exit_code == 2
            assert result.err_lines == [
                f"{fresh}: in use by another dltk run (pid {os.getpid()}); wait for it to end or stop it first"
            ]
            assert sorted(p.name for p in fresh.iterdir()) == [".lock"]  # the loser removed nothing
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before
    # released when its holder ends (here: the file closed; a killed process releases it too)
    assert dltk("run", "--resume", run, "recipe.epochs=2").exit_code == 0


@pytest.mark.slow
def test_resume_before_the_first_checkpoint_starts_again_in_place(dltk, tiny_recipe, tmp_path):
    """Killed before its first checkpoint, a run is not a dead end: --resume starts it again and says so."""
    import shutil

    run = tmp_path / "early"
    assert dltk("run", tiny_recipe(), "recipe.epochs=1", "--run-dir", run).exit_code == 0
    reference = load_checkpoint(checkpoints_in(run / "checkpoints")[0])
    shutil.rmtree(run / "checkpoints")  # what a kill before the first save leaves: no checkpoint
    result = dltk("run", "--resume", run)
    assert result.exit_code == 0, result.err
    assert (
        f"dltk: {run} has no checkpoint yet (it stopped before the first one): "
        "starting it again from the beginning in the same directory"
    ) in result.err_lines
    again = load_checkpoint(checkpoints_in(run / "checkpoints")[0])
    assert all(torch.equal(again["generator"][k], v) for k, v in reference["generator"].items())
    assert [r["epoch"] for r in log_lines(run) if r["kind"] == "epoch"] == [1]  # logged once, not twice


def test_gif_timings_beyond_what_gif_stores_are_refused_at_check(dltk, tiny_recipe):
    path = tiny_recipe('\n[[callbacks]]\nname = "progress-gif"\nframe_ms = 10000000\nloop = 70000\n')
    result = dltk("check", path)
    assert result.exit_code == 2
    assert result.err_lines == [
        f"{path}: callbacks.1.frame_ms: must be <= 655350, got 10000000",
        f"{path}: callbacks.1.loop: must be <= 65535, got 70000",
    ]
