"""The Optuna study of a sweep and the workers that run its trials.

The study lives in a database (SQLite by default, any RDB URL Optuna takes), so a sweep stopped at
any moment and started again continues: trials left running by a process of this machine that is
gone are marked failed, and workers ask for new trials until ``trials`` are finished or pruned.
With ``jobs`` > 1, that many workers (threads, each running its trial as a process of its own)
share the study; a lock makes the count and the next ``ask`` one step, so no worker overshoots.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from dltoolkit import DltkError, ExitCode
from dltoolkit_optuna.spec import Param, Sweep

MAX_FAILURES = 3
"""Trials that fail one after another (not pruned: exit code 1, a crash) before the sweep gives up."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def suggest(trial: Any, param: Param) -> Any:
    """The trial's value of one dimension."""
    if param.type == "categorical":
        return trial.suggest_categorical(param.key, list(param.choices))
    if param.type == "int":
        return trial.suggest_int(param.key, int(param.low), int(param.high), step=int(param.step or 1), log=param.log)
    return trial.suggest_float(param.key, float(param.low), float(param.high), step=param.step, log=param.log)


class Study:
    """A sweep's study: ``run(jobs)`` works until the asked number of trials is reached."""

    def __init__(self, sweep: Sweep, folder: Path, storage: str, plugins: list[str] | None = None):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna = optuna
        self.sweep, self.folder, self.storage_url = sweep, folder, storage
        self.plugins = list(plugins or [])
        engine_kwargs = {"connect_args": {"timeout": 60}} if storage.startswith("sqlite") else {}
        storage_object = optuna.storages.RDBStorage(storage, engine_kwargs=engine_kwargs)
        direction = "maximize" if sweep.higher else "minimize"
        try:
            self.study = optuna.create_study(
                study_name=sweep.name, storage=storage_object, direction=direction,
                pruner=self._pruner(), load_if_exists=True,
            )  # fmt: skip
        except Exception as exc:
            raise DltkError(f"--storage: cannot open the study ({type(exc).__name__}: {exc})") from None
        if self.study.direction.name.lower() != direction:
            raise DltkError(
                f"{sweep.path}: objective: the study '{sweep.name}' in {storage} was made to "
                f"{self.study.direction.name.lower()}; this objective asks to {direction} (give the sweep another name)"
            )
        self.study.sampler = self._sampler(len(self.study.trials))
        self.target = sweep.trials
        if sweep.sampler == "grid":
            size = 1
            for param in sweep.space:
                size *= len(param.values())
            self.target = min(self.target, size)
        self.lock = threading.Lock()
        self.failures = 0
        self.stopping = False
        self.error: DltkError | None = None
        self.fail_dead_trials()

    def _sampler(self, done: int) -> Any:
        samplers = self.optuna.samplers
        seed = self.sweep.seed + done  # a restarted sweep does not draw its first values again
        if self.sweep.sampler == "random":
            return samplers.RandomSampler(seed=seed)
        if self.sweep.sampler == "grid":
            return samplers.GridSampler({p.key: p.values() for p in self.sweep.space}, seed=seed)
        return samplers.TPESampler(seed=seed)

    def _pruner(self) -> Any:
        pruners = self.optuna.pruners
        if self.sweep.pruner == "none":
            return pruners.NopPruner()
        return pruners.MedianPruner(n_startup_trials=self.sweep.startup_trials, n_warmup_steps=self.sweep.warmup_epochs)

    def fail_dead_trials(self) -> None:
        """Trials left running by a process of this machine that is gone (a killed sweep) are failed."""
        state = self.optuna.trial.TrialState
        for trial in self.study.get_trials(deepcopy=False, states=(state.RUNNING,)):
            owner = trial.user_attrs.get("owner") or {}
            if owner.get("host") == socket.gethostname() and not _alive(int(owner.get("pid", 0))):
                self.study.tell(trial.number, state=state.FAIL)
                say(f"trial {trial.number} was left running by a sweep that is gone: marked failed")

    def counted(self) -> int:
        """Trials finished, pruned, or running now (which will be one or the other)."""
        state = self.optuna.trial.TrialState
        return len(self.study.get_trials(deepcopy=False, states=(state.COMPLETE, state.PRUNED, state.RUNNING)))

    def run(self, jobs: int) -> None:
        """Run trials in ``jobs`` workers until the study holds ``target`` finished or pruned trials."""
        workers = [threading.Thread(target=self._work, name=f"sweep-worker-{i}", daemon=True) for i in range(jobs)]
        for worker in workers:
            worker.start()
        try:
            for worker in workers:
                while worker.is_alive():
                    worker.join(0.5)
        except KeyboardInterrupt:
            self.stopping = True  # the trials got the Ctrl-C too and stop cleanly
            for worker in workers:
                worker.join()
            raise
        if self.error is not None:
            raise self.error
        if self.failures >= MAX_FAILURES:
            say(f"{MAX_FAILURES} trials failed one after another; stopping (their logs: {self.folder / 'logs'})")

    def _work(self) -> None:
        from dltoolkit_optuna.command import owner, trial_command
        from dltoolkit_optuna.trial import run_trial

        state = self.optuna.trial.TrialState
        while not self.stopping:
            with self.lock:
                if self.counted() >= self.target or self.failures >= MAX_FAILURES:
                    return
                trial = self.study.ask()
                trial.set_user_attr("owner", owner())
                params = {p.key: suggest(trial, p) for p in self.sweep.space}
                run_dir = self.folder / f"trial-{trial.number:04d}"
                trial.set_user_attr("run_dir", str(run_dir))
            logs = self.folder / "logs"
            logs.mkdir(exist_ok=True)
            command = trial_command(self.sweep, params, run_dir, self.plugins)
            shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
            say(f"trial {trial.number} started ({shown})")
            code, values, pruned = run_trial(
                command, run_dir, logs / f"trial-{trial.number:04d}.log", self.sweep.objective,
                trial.report, trial.should_prune,
            )  # fmt: skip
            objective = self.sweep.objective
            if pruned:
                epoch, value = values[-1]
                self.study.tell(trial, state=state.PRUNED)
                say(f"trial {trial.number} pruned at epoch {epoch} ({objective} {value:.4g})")
                self.failures = 0
            elif code == ExitCode.OK and values:
                self.study.tell(trial, values[-1][1])
                say(f"trial {trial.number} finished: {objective} {values[-1][1]:.4g}")
                self.failures = 0
            else:
                self.study.tell(trial, state=state.FAIL)
                last = _last_line(logs / f"trial-{trial.number:04d}.log")
                say(f"trial {trial.number} failed (exit {code}): {last}")
                if code == ExitCode.BAD_INPUT:
                    self.error = DltkError(f"{self.sweep.path}: trial {trial.number}: {last}")
                    self.stopping = True
                elif code in (ExitCode.INTERRUPTED, ExitCode.TERMINATED):
                    self.stopping = True
                else:
                    self.failures += 1


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(no output)"


def say(text: str) -> None:
    print(f"dltk sweep: {text}", file=sys.stderr, flush=True)
