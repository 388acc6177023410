"""A dltoolkit plugin that injects faults for the reliability tests (``dltk -p fault_plugin``).

Controlled by environment variables, each an iteration or save number:

* ``DLTK_FAULT_KILL_AT=k``: SIGKILL this process when iteration k completes.
* ``DLTK_FAULT_SIGNAL_AT=k:TERM`` (or ``INT``, ``INT2`` for two Ctrl-C half a second apart, ``INTDUP`` for one
  Ctrl-C delivered twice at once, as ``uv run`` does without a terminal): send signals at iteration k
  (``done:TERM``: once training completed, while the run writes its last files).
* ``DLTK_FAULT_KILL_IN_SAVE=n``: during the n-th checkpoint save, write half the file slowly, then SIGKILL.
* ``DLTK_FAULT_ENOSPC_IN_SAVE=n``: the n-th checkpoint save fails with ENOSPC half-way.
* ``DLTK_FAULT_NAN_AT=k``: before iteration k, fill the generator's first weight with NaN.
"""

from __future__ import annotations

import errno
import os
import signal
import time

from ignite.engine import Events

import dltoolkit._checkpoint as checkpoint_module
from dltoolkit import hookimpl

_saves = {"count": 0}


def _int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None


@hookimpl
def dltk_configure(run) -> None:
    kill_in_save, enospc_in_save = _int("DLTK_FAULT_KILL_IN_SAVE"), _int("DLTK_FAULT_ENOSPC_IN_SAVE")
    if kill_in_save is None and enospc_in_save is None:
        return
    original = checkpoint_module.atomic_write

    def faulty_atomic_write(path, write):
        if not path.name.startswith(("checkpoint_", "best_")):
            return original(path, write)
        _saves["count"] += 1
        if _saves["count"] not in (kill_in_save, enospc_in_save):
            return original(path, write)

        def half_then_fail(handle):
            import io

            buffer = io.BytesIO()
            write(buffer)
            data = buffer.getvalue()
            handle.write(data[: len(data) // 2])
            handle.flush()
            if _saves["count"] == kill_in_save:
                time.sleep(0.2)  # a slow writer, caught in the middle
                os.kill(os.getpid(), signal.SIGKILL)
            raise OSError(errno.ENOSPC, "No space left on device")

        return original(path, half_then_fail)

    checkpoint_module.atomic_write = faulty_atomic_write
    run._fault_restore = lambda: setattr(checkpoint_module, "atomic_write", original)


@hookimpl
def dltk_run_finished(run) -> None:
    restore = getattr(run, "_fault_restore", None)
    if restore is not None:
        restore()
    _saves["count"] = 0


@hookimpl
def dltk_engine_created(run, engine, role) -> None:
    if role != "trainer":
        return
    kill_at, nan_at = _int("DLTK_FAULT_KILL_AT"), _int("DLTK_FAULT_NAN_AT")
    if kill_at is not None:
        engine.add_event_handler(
            Events.ITERATION_COMPLETED(once=kill_at), lambda _: os.kill(os.getpid(), signal.SIGKILL)
        )
    if nan_at is not None:

        def poison(_engine) -> None:
            first = next(run.sampler.module.parameters())
            first.data.fill_(float("nan"))

        engine.add_event_handler(Events.ITERATION_STARTED(once=nan_at), poison)
    spec = os.environ.get("DLTK_FAULT_SIGNAL_AT")
    if spec:
        at, kind = spec.split(":")
        signals = {
            "TERM": [signal.SIGTERM],
            "INT": [signal.SIGINT],
            "INT2": [signal.SIGINT, signal.SIGINT],
            "INTDUP": [signal.SIGINT, signal.SIGINT],
        }[kind]

        def send(_engine) -> None:
            for i, signum in enumerate(signals):
                if i and kind == "INT2":
                    time.sleep(0.5)  # a person pressing Ctrl-C again
                os.kill(os.getpid(), signum)

        event = Events.COMPLETED if at == "done" else Events.ITERATION_COMPLETED(once=int(at))
        engine.add_event_handler(event, send)


@hookimpl(specname="dltk_engine_created")
def break_the_run_directory(run, engine, role) -> None:
    """``DLTK_FAULT_RMTREE_AT=k`` deletes the run directory, ``DLTK_FAULT_READONLY_AT=k`` makes it
    read-only, when iteration k completes."""
    import shutil
    from pathlib import Path

    if role != "trainer":
        return
    remove_at, read_only_at = _int("DLTK_FAULT_RMTREE_AT"), _int("DLTK_FAULT_READONLY_AT")

    def read_only(path: Path) -> None:
        for sub in (path, *[p for p in path.rglob("*") if p.is_dir()]):
            sub.chmod(0o500)

    if remove_at is not None:
        engine.add_event_handler(Events.ITERATION_COMPLETED(once=remove_at), lambda _: shutil.rmtree(run.path))
    if read_only_at is not None:
        engine.add_event_handler(Events.ITERATION_COMPLETED(once=read_only_at), lambda _: read_only(run.path))
