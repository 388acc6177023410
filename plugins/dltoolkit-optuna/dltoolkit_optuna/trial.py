"""One trial: an ordinary ``dltk run`` of the recipe file with the trial's values, in a process of its
own, whose evaluations (read from its metrics.jsonl as they are written) are reported to Optuna;
a trial the pruner stops is sent SIGTERM, so it ends cleanly (state saved, exit 143)."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dltoolkit.files import METRICS_NAME

POLL = 0.5
"""Seconds between reads of a running trial's metrics.jsonl."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the trial gets SIGKILL when the thread that started it dies (a killed sweep leaves no
    trial running on)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class MetricsTail:
    """The records appended to a metrics.jsonl since the last read (whole lines only)."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0

    def new_records(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        self.offset += end
        records = []
        for line in data[:end].splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records


def objective_value(record: dict[str, Any], objective: str) -> float | None:
    """The objective's value in a metrics.jsonl record (``eval/x``: eval records; ``train/x``: epoch records)."""
    space, name = objective.split("/", 1)
    kind = "eval" if space == "eval" else "epoch"
    value = record.get(name) if record.get("kind") == kind else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def run_trial(
    command: list[str], run_dir: Path, log: Path, objective: str, report: Any, should_prune: Any
) -> tuple[int, list[tuple[int, float]], bool]:
    """Run ``command`` (a ``dltk run`` writing ``run_dir``), reporting each objective value as
    ``report(value, epoch)`` and stopping the run once ``should_prune()``; return its exit code, the
    values by epoch, and whether it was pruned."""
    values: list[tuple[int, float]] = []
    tail = MetricsTail(run_dir / METRICS_NAME)
    pruned = False
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )  # fmt: skip
        try:
            while True:
                finished = process.poll() is not None
                for record in tail.new_records():
                    value = objective_value(record, objective)
                    if value is None or pruned:
                        continue
                    epoch = int(record.get("epoch", len(values) + 1))
                    values.append((epoch, value))
                    report(value, epoch)
                    if should_prune():
                        pruned = True
                        if process.poll() is None:
                            process.send_signal(signal.SIGTERM)  # ends cleanly: state saved, exit 143
                if finished:
                    break
                time.sleep(POLL)
        except BaseException:
            if process.poll() is None:
                process.kill()
            raise
    return process.returncode, values, pruned
