"""dltk sweep end to end (issue 23): 8 trials over lr and weight_decay of a tiny digits classifier
(2 epochs each) with --jobs 2, killed with SIGKILL after 3 trials and started again: exactly 8
finished or pruned trials, at least one pruned, the printed best equal to the table's best, and the
report (table, plots, compare page)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

DLTK = Path(sys.executable).parent / "dltk"

RECIPE = """
seed = 3
[run]
device = "cpu"
threads = 1
writers = []
[recipe]
name = "classify"
epochs = 2
batch_size = 32
optimizer = "adamw"
log_every = 10
[model]
name = "lenet"
channels = [4, 8]
hidden = [16, 16]
[dataset]
name = "digits"
[[metrics]]
name = "accuracy"
"""

SWEEP = """
recipe = "tiny.toml"
objective = "eval/accuracy"
trials = 8
startup_trials = 2
seed = 1
[space]
"recipe.lr" = { type = "float", low = 1e-4, high = 0.1, log = true }
"recipe.weight_decay" = { type = "float", low = 1e-6, high = 1e-2, log = true }
"""


def processes_writing(folder: Path) -> list[int]:
    """Processes whose command line names ``folder`` (trials left running)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(folder) in command and "--run-dir" in command:
            found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_sweep_killed_after_three_trials_continues_to_eight(tmp_path):
    (tmp_path / "tiny.toml").write_text(RECIPE)
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(SWEEP)
    out = tmp_path / "out"
    command = [str(DLTK), "sweep", str(sweep), "--jobs", "2", "--out", str(out)]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    first = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    ended = 0
    assert first.stderr is not None
    for line in first.stderr:
        ended += " finished: " in line or " pruned at " in line
        if ended >= 3:
            first.send_signal(signal.SIGKILL)
            break
    first.wait(timeout=60)
    assert ended == 3 and first.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while processes_writing(out) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_writing(out) == []  # the trials running then died with the sweep

    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert second.returncode == 0, second.stderr
    import optuna

    study = optuna.load_study(study_name="sweep", storage=f"sqlite:///{out / 'study.db'}")
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") + states.count("PRUNED") == 8, states
    assert states.count("PRUNED") >= 1, states
    assert states.count("RUNNING") == 0
    with (out / "trials.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(study.trials)
    best_in_table = max(float(r["eval/accuracy"]) for r in rows if r["state"] == "complete")
    assert study.best_value == best_in_table
    best = study.best_trial
    assert f"best trial {best.number}: eval/accuracy = {best.value:.6g}" in second.stdout
    assert f"its recipe file: {out / f'trial-{best.number:04d}' / 'recipe.toml'}" in second.stdout
    for row in rows:  # each trial is an ordinary run directory with the values it was given
        if row["state"] in ("complete", "pruned"):
            recipe = (Path(row["run"]) / "recipe.toml").read_text()
            assert f"lr = {float(row['recipe.lr'])!r}" in recipe
    assert (out / "history.png").stat().st_size > 0 and (out / "importance.png").stat().st_size > 0
    assert (out / "compare" / "compare.html").is_file()
