"""A plugin for the distributed tests (``dltk -p launcher_fault_plugin``).

``DLTK_FAULT_KILL_LAUNCHER_AT=k``: when iteration k completes, rank 0 sends SIGKILL to the
process that started the ranks (``dltk run --nproc-per-node``), as a power cut or an OOM kill of
the launcher would. The ranks must die with it (no rank may train on alone).

``DLTK_FAULT_RANK0_SLOW_STOP=s``: rank 0 spends ``s`` seconds stopping before its stop checkpoint.
"""

from __future__ import annotations

import os
import signal
import time

from ignite.engine import Events

from dltoolkit import hookimpl


@hookimpl
def dltk_engine_created(run, engine, role) -> None:
    slow = os.environ.get("DLTK_FAULT_RANK0_SLOW_STOP")
    if slow and role == "trainer" and run.rank == 0:
        # once stopping, rank 0 takes a while to write each checkpoint, as a large model's does:
        # the other ranks, which write nothing, must not end the group meanwhile
        from dltoolkit import _checkpoint

        original = _checkpoint.atomic_write
        stopping: list[bool] = []
        engine.add_event_handler(Events.TERMINATE, lambda _engine: stopping.append(True))

        def slow_atomic_write(path, write):
            if stopping:
                time.sleep(float(slow))
            return original(path, write)

        _checkpoint.atomic_write = slow_atomic_write
    at = os.environ.get("DLTK_FAULT_KILL_LAUNCHER_AT")
    if role != "trainer" or not at or run.rank != 0:
        return

    @engine.on(Events.ITERATION_COMPLETED(once=int(at)))
    def _kill(_engine) -> None:
        os.kill(int(os.environ["DLTK_LAUNCHER_PID"]), signal.SIGKILL)
        time.sleep(60)  # the launcher's death kills this rank first (PR_SET_PDEATHSIG)
        os._exit(99)


@hookimpl
def dltk_configure(run) -> None:
    """``DLTK_FAULT_RANK1=k:TERM`` (rank 1 sends itself SIGTERM at iteration k) or ``k:RAISE``
    (rank 1 fails with an internal error at iteration k)."""
    spec = os.environ.get("DLTK_FAULT_RANK1")
    if not spec or run.rank != 1:
        return
    at, what = spec.split(":")
    original = run.engine_created

    def engine_created(engine, role):
        original(engine, role)
        if role != "trainer":
            return

        @engine.on(Events.ITERATION_COMPLETED(once=int(at)))
        def _fault(_engine) -> None:
            if what == "TERM":
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                raise RuntimeError("injected failure on rank 1")

    run.engine_created = engine_created
