"""Artefacts are written like checkpoints, exports are checked, generate/export refuse what they
cannot do in one line, and resource bombs are refused before allocating (issue 13)."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest
import torch

from dltoolkit._checkpoint import checkpoints_in

ARTEFACTS = "callbacks=[{name='samples'},{name='progress-gif'},{name='loss-plot'}]"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One tiny finished run of the toy (1 epoch) with grids, GIF and loss plot, written under umask 022."""
    from toy_plugin import TINY_RECIPE

    from dltoolkit.testing import run_cli

    folder = tmp_path_factory.mktemp("trained")
    recipe = folder / "tiny.toml"
    recipe.write_text(TINY_RECIPE.format(runs=folder.as_posix()))
    old = os.umask(0o022)
    try:
        result = run_cli("run", recipe, "recipe.epochs=1", ARTEFACTS, "--run-dir", folder / "run")
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.err
    return folder / "run"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.slow
def test_files_get_the_users_umask(trained):
    written = [
        trained / "recipe.toml",
        checkpoints_in(trained / "checkpoints")[0],
        trained / "checkpoints" / "manifest.json",
        trained / "samples" / "progress.gif",
        trained / "samples" / "losses.png",
        *sorted((trained / "samples").glob("grid_*.png"))[:1],
    ]
    assert {p.name: oct(mode(p)) for p in written} == {p.name: "0o644" for p in written}


@pytest.mark.slow
def test_artefacts_go_through_fsync_and_rename(trained, monkeypatch, tmp_path):
    """Grids, the GIF, the loss plot and exports are fsynced before their rename (like checkpoints)."""
    from toy_plugin import REPORTS

    from dltoolkit import _atomic
    from dltoolkit._images import save_png
    from dltoolkit.builtin.callbacks import plot_scalars, write_gif

    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    monkeypatch.setattr(_atomic.os, "fsync", fsync)
    save_png(torch.zeros(1, 4, 4, dtype=torch.uint8), tmp_path / "grid.png")
    assert any(".tmp-" in s for s in synced), synced  # the temp file, before its rename
    assert str(tmp_path) in synced  # and the folder, after it
    synced.clear()
    gif = write_gif(trained / "samples")
    assert gif is not None and any(".tmp-" in s and "samples" in s for s in synced)
    synced.clear()
    plot = plot_scalars(trained / "metrics.jsonl", tmp_path / "losses.png", REPORTS)
    assert plot is not None and any(".tmp-" in s for s in synced)


@pytest.mark.slow
def test_export_carries_a_sha256_checked_on_load_and_never_overwrites(trained, dltk, tmp_path):
    from safetensors import safe_open

    out = tmp_path / "g.safetensors"
    assert dltk("export", trained, "--out", out).exit_code == 0
    with safe_open(str(out), framework="pt") as handle:
        assert len(handle.metadata()["sha256"]) == 64
    assert mode(out) == 0o644 or mode(out) == 0o666 & ~_umask()
    again = dltk("export", trained, "--out", out)
    assert (again.exit_code, again.err_lines) == (
        2,
        [f"--out: '{out}' exists; pass --force to replace it"],
    )
    assert dltk("export", trained, "--out", out, "--force").exit_code == 0
    other = tmp_path / "g.txt"  # what generate, predict and eval would not read as an export (user trial)
    refused = dltk("export", trained, "--out", other)
    assert (refused.exit_code, refused.err_lines) == (
        2,
        [f"--out: '{other}' does not end in .safetensors; name the export such as model.safetensors"],
    )
    assert not other.exists()
    data = bytearray(out.read_bytes())
    data[-5] ^= 0xFF  # one weight altered
    out.write_bytes(bytes(data))
    result = dltk("generate", out, "--num", "2", "--out", tmp_path / "samples")
    assert result.exit_code == 2
    assert result.err_lines == [
        f"{out}: sha256 of its tensors and metadata does not match the one it carries: altered or truncated"
    ]


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


@pytest.mark.slow
def test_tampered_export_shapes_are_refused_before_allocating(trained, dltk, tmp_path):
    from safetensors.torch import load_file, safe_open, save_file

    out = tmp_path / "g.safetensors"
    assert dltk("export", trained, "--out", out).exit_code == 0
    with safe_open(str(out), framework="pt") as handle:
        meta = dict(handle.metadata())
    options = json.loads(meta["model_options"])
    options["hidden_dim"] = 4_000_000_000
    meta["model_options"] = json.dumps(options)
    meta.pop("sha256")  # a tamperer would not leave a hash that gives them away
    tampered = tmp_path / "t.safetensors"
    save_file(load_file(str(out)), str(tampered), metadata=meta)
    result = dltk("generate", tampered, "--num", "2", "--out", tmp_path / "samples")
    assert result.exit_code == 2, result.err
    assert "Traceback" not in result.err
    assert result.err_lines[0].startswith(f"{tampered}: model: 'toy-mlp' with these options needs ")


@pytest.mark.slow
def test_generate_and_export_refuse_an_altered_newest_checkpoint(trained, dltk, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    newest = checkpoints_in(run / "checkpoints")[0]
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    export = tmp_path / "e.safetensors"
    for args in (["generate", run, "--num", "2", "--out", tmp_path / "s"], ["export", run, "--out", export]):
        result = dltk(*args)
        assert result.exit_code == 2, result.err
        assert len(result.err_lines) == 1
        assert result.err_lines[0].startswith(f"{newest}: sha256 ") and "truncated or altered" in result.err_lines[0]


@pytest.mark.slow
def test_generate_two_billion_is_refused_or_streamed(trained, dltk, tmp_path):
    out = tmp_path / "many"
    result = dltk("generate", trained, "--num", "2000000000", "--out", out)
    assert result.exit_code == 2, result.err
    assert len(result.err_lines) == 1 and result.err_lines[0].startswith("--num: 2000000000 files need about ")
    assert not out.exists()


def test_sampling_batches_holds_one_block_of_noise():
    from dltoolkit.sampling import ImageSampler

    sampler = ImageSampler(torch.nn.Linear(8, 4), 8, "cpu")
    first = next(iter(sampler.batches(10**11, seed=0, batch_size=4)))  # 3.2 TB of noise if drawn at once
    assert first.shape == (4, 4)
    small = torch.cat(list(sampler.batches(10, seed=3, batch_size=4)))
    assert torch.equal(small, sampler.generate(sampler.noise(10, 3)))  # unchanged for ordinary sizes


@pytest.mark.parametrize("command", ["generate", "export"])
@pytest.mark.slow
def test_out_under_a_file_or_a_read_only_folder_is_one_line(trained, dltk, tmp_path, command):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    outs = [blocker / "sub" / "x.safetensors"]
    if os.geteuid() != 0:  # root writes into read-only folders: there only the file case can be shown
        outs.append(locked / "sub" / "x.safetensors")
    try:
        for out in outs:
            args = ["--num", "2"] if command == "generate" else []
            result = dltk(command, trained, *args, "--out", out)
            assert result.exit_code == 2, result.err
            assert "Traceback" not in result.err and len(result.err_lines) == 1, result.err
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("command", ["generate", "export"])
@pytest.mark.slow
def test_disk_full_during_generate_or_export_is_one_line(trained, dltk, tmp_path, monkeypatch, command):
    """ENOSPC injected into the writes (no small tmpfs is available to the test suite)."""
    from dltoolkit import _atomic

    real = _atomic.os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_atomic.os, "fsync", full)
    out = tmp_path / ("s" if command == "generate" else "g.safetensors")
    args = ["--num", "2", "--grid"] if command == "generate" else []
    result = dltk(command, trained, *args, "--out", out)
    monkeypatch.setattr(_atomic.os, "fsync", real)
    assert result.exit_code == 2, result.err
    assert len(result.err_lines) == 1, result.err
    assert result.err_lines[0].endswith("disk full (No space left on device); free some space and try again")
    assert not list(tmp_path.rglob(".tmp-*"))


@pytest.mark.slow
def test_generate_does_not_replace_samples_without_force(trained, dltk, tmp_path):
    out = tmp_path / "samples"
    assert dltk("generate", trained, "--num", "3", "--out", out).exit_code == 0
    before = (out / "0000.png").read_bytes()
    again = dltk("generate", trained, "--num", "3", "--seed", "9", "--out", out)
    assert (again.exit_code, again.err_lines) == (
        2,
        [f"--out: '{out}' already holds samples (" + again.err_lines[0].split("(", 1)[1]],
    )
    assert again.err_lines[0].endswith("pass --force to replace them")
    assert (out / "0000.png").read_bytes() == before
    assert dltk("generate", trained, "--num", "3", "--seed", "9", "--out", out, "--force").exit_code == 0
    assert (out / "0000.png").read_bytes() != before
