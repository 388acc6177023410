"""Runs past one process, on ``ignite.distributed``: launching, the environment torchrun sets, and
the few collective decisions a run makes (where to stop, which checkpoint to load).

``dltk run RECIPE --nproc-per-node N`` starts N processes on this machine through
``idist.Parallel``; a run started by ``torchrun`` finds its rank in the environment and joins the
process group torchrun describes. Nothing here is imported by ``dltk --help``, ``list`` or
``check``: torch is imported inside the functions that need it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from dltoolkit._errors import DltkError, ExitCode

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
"""What ``torchrun`` (and any launcher speaking the same ``env://`` protocol) sets for each process."""

BACKENDS = ("gloo", "nccl")

PATH_ALIASES: dict[str, str] = {}
"""A rank's scratch folder -> the run directory, so the messages of ranks above 0 name the real one."""

QUIET_LOGGERS = (
    "ignite.distributed.launcher.Parallel",
    "ignite.distributed.auto.auto_model",
    "ignite.distributed.auto.auto_optim",
    "ignite.distributed.auto.auto_dataloader",
    "torch.multiprocessing.spawn",
)


def torchrun_world() -> int | None:
    """The world size a launcher such as ``torchrun`` set in the environment, or None."""
    if not all(name in os.environ for name in TORCHRUN_VARIABLES):
        return None
    try:
        return int(os.environ["WORLD_SIZE"])
    except ValueError:
        return None


def default_backend() -> str:
    """``nccl`` when CUDA devices are present, ``gloo`` otherwise."""
    import torch

    return "nccl" if torch.cuda.is_available() and torch.cuda.device_count() > 0 else "gloo"


def check_backend(backend: str, nproc: int) -> None:
    """Refuse a backend that cannot run here (one line, exit 2)."""
    import torch
    import torch.distributed as dist

    if backend not in BACKENDS:
        raise DltkError(f"--backend: unknown backend '{backend}'; choose gloo (CPU) or nccl (CUDA)")
    if not dist.is_available():
        raise DltkError("--nproc-per-node: this torch build has no torch.distributed")
    if backend == "nccl":
        if not dist.is_nccl_available() or not torch.cuda.is_available():
            raise DltkError("--backend: nccl needs CUDA devices and an NCCL build of torch; use --backend gloo")
        if torch.cuda.device_count() < nproc:
            raise DltkError(
                f"--nproc-per-node: {nproc} processes with nccl need {nproc} CUDA devices; "
                f"this machine has {torch.cuda.device_count()}"
            )
    elif not dist.is_gloo_available():
        raise DltkError("--backend: this torch build has no gloo backend")
    else:
        cores = cpu_cores()
        if nproc > cores:
            raise DltkError(
                f"--nproc-per-node: {nproc} processes on the CPU (gloo), but this machine has {cores} CPU cores; "
                f"use at most {cores} (each process is a full copy of the model, its data and torch)"
            )


def cpu_cores() -> int:
    """CPU cores this process may run on (its affinity where the OS says it, else the machine's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def free_port() -> int:
    """A TCP port free on this machine now (for the rendezvous of the processes we start)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def quiet_logs() -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def rank() -> int:
    import ignite.distributed as idist

    return int(idist.get_rank())


def world_size() -> int:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):  # one process: skip idist's bookkeeping
        return 1
    import ignite.distributed as idist

    return int(idist.get_world_size())


# -- the launcher ------------------------------------------------------------------------------


def start_method_for(backend: str) -> str:
    """How the ranks are started: ``$DLTK_START_METHOD`` if set (fork, forkserver, spawn); else fork
    with gloo (the ranks start at once with what the launcher imported; torch takes seconds to
    import) and spawn with CUDA (which cannot be used in forked processes)."""
    import multiprocessing

    chosen = os.environ.get("DLTK_START_METHOD")
    if chosen:
        if chosen not in multiprocessing.get_all_start_methods():
            raise DltkError(
                f"DLTK_START_METHOD: '{chosen}' is not a start method here; "
                f"choose {', '.join(multiprocessing.get_all_start_methods())}"
            )
        return chosen
    if backend != "gloo" or "fork" not in multiprocessing.get_all_start_methods():
        return "spawn"
    return "fork" if _fork_is_safe() else "forkserver"


def _fork_is_safe(timeout: float = 10.0) -> bool:
    """Whether torch works in a process forked from this one: torch refuses autograd once this
    process ran it on worker threads, and an OpenMP thread pool this process used can hang a
    forked child. A forked child runs one tiny backward and one multi-threaded operation."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            import torch

            torch.ones(1, requires_grad=True).sum().backward()
            torch.ones(1 << 22).mul(2).sum()
        except BaseException:
            code = 3
        os._exit(code)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status) == 0
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return False


FORK_REFUSED = "Unable to handle autograd's threading in combination with fork-based multiprocessing"


def _die_with_parent() -> None:
    """Linux: be killed when the launcher dies (kill -9 included), so no rank trains on alone."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if os.getppid() == 1:  # the launcher died before prctl: stop now
        os._exit(int(ExitCode.RUN_FAILED))


def _worker(local_rank: int, outcomes: Any, command: Callable[[Any], int], args: Any, environ: dict[str, str]) -> None:
    """One process started by :func:`launch`: run ``command(args)``; report its outcome to the launcher.

    Only the launcher prints a failure (the first one reported), so N ranks failing alike print
    one message.
    """
    import ignite.distributed as idist

    # the launcher's environment now (a forkserver started earlier holds an older one), ranks' own kept
    os.environ.update({k: v for k, v in environ.items() if k not in TORCHRUN_VARIABLES})
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # not the launcher's forwarding handler (fork)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.setpgrp()  # a terminal's Ctrl-C reaches the launcher only; it forwards it to every rank
    quiet_logs()
    me = idist.get_rank()
    if me > 0:  # rank 0 logs what a single process logs; the same lines from every rank say nothing more
        logging.getLogger("ignite.engine.engine.Engine").setLevel(logging.CRITICAL)
    code = int(ExitCode.RUN_FAILED)
    lines: list[str] = []
    try:
        code = int(command(args))
    except DltkError as exc:
        code, lines = int(exc.exit_code), list(exc.problems)
    except KeyboardInterrupt:
        code, lines = int(ExitCode.INTERRUPTED), ["dltk: interrupted"]
    except BaseException as exc:  # an internal error keeps its traceback, shown once by the launcher
        if isinstance(exc, SystemExit) and not exc.code:
            code = int(ExitCode.OK)
        elif FORK_REFUSED in str(exc):  # the launching process ran autograd on threads before forking
            lines = [
                "dltk: the ranks could not be forked from this process (it already ran autograd on "
                "several threads); start them fresh with DLTK_START_METHOD=forkserver or spawn"
            ]
        else:
            lines = [f"rank {me}: " + "".join(traceback.format_exception(exc)).rstrip()]
    for scratch, real in PATH_ALIASES.items():
        lines = [line.replace(scratch, real) for line in lines]
    outcomes.put((time.monotonic(), me, code, lines))
    if code in (ExitCode.INTERRUPTED, ExitCode.TERMINATED):
        # every rank stopped after the same iteration; rank 0 may still be writing the stop's
        # checkpoint, GIF and plots. A rank that exited now would make the launcher terminate the
        # others (a non-zero exit fails the group), cutting rank 0's writing short: wait for it.
        with contextlib.suppress(Exception):
            idist.barrier()
    if code != ExitCode.OK:
        sys.stderr.flush()
        os._exit(code)  # no teardown of a process group whose peers may be gone


def launch(command: Callable[[Any], int], args: Any, nproc: int, backend: str) -> tuple[int, list[str]]:
    """Run ``command(args)`` in ``nproc`` processes on this machine through ``idist.Parallel``.

    Returns ``(exit code, problem lines)``: the outcome of the first rank that failed (its
    message), or 0 when every rank succeeded. SIGINT and SIGTERM sent to this process are passed
    to every rank, which stop together at the end of an iteration.
    """
    import multiprocessing

    import ignite.distributed as idist
    from torch.multiprocessing import ProcessExitedException, ProcessRaisedException

    quiet_logs()
    start_method = start_method_for(backend)
    if start_method == "forkserver":  # one server imports torch once; each rank is forked from it
        multiprocessing.set_forkserver_preload(["torch", "ignite.distributed", "dltoolkit.cli", "dltoolkit._run"])
    outcomes = multiprocessing.get_context(start_method).SimpleQueue()

    def forward(signum: int, _frame: Any) -> None:
        for child in multiprocessing.active_children():
            if child.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    failure: BaseException | None = None
    try:
        with idist.Parallel(
            backend=backend, nproc_per_node=nproc, master_port=free_port(), start_method=start_method
        ) as parallel:
            parallel.run(_worker, outcomes, command, args, {**os.environ, "DLTK_LAUNCHER_PID": str(os.getpid())})
    except (ProcessExitedException, ProcessRaisedException) as exc:
        failure = exc
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    reports = []
    while not outcomes.empty():
        reports.append(outcomes.get())
    failed = sorted(r for r in reports if r[2] != ExitCode.OK)
    if failed:
        _when, _rank, code, lines = failed[0]
        return code, lines
    if failure is not None:
        exit_code = getattr(failure, "exit_code", None)
        how = (
            f"was killed by {signal.Signals(-exit_code).name}"
            if isinstance(exit_code, int) and exit_code < 0
            else (f"exited with {exit_code}")
        )
        return int(ExitCode.RUN_FAILED), [f"dltk: rank {getattr(failure, 'error_index', '?')} {how}; the run stopped"]
    return int(ExitCode.OK), []


def join_torchrun(command: Callable[[Any], int], args: Any, backend: str) -> int:
    """Run ``command(args)`` as one rank of a process group a launcher (torchrun) described."""
    import ignite.distributed as idist

    quiet_logs()
    result: list[int] = []
    with idist.Parallel(backend=backend) as parallel:
        parallel.run(lambda _local_rank: result.append(int(command(args))))
    return result[0] if result else int(ExitCode.RUN_FAILED)


# -- collective decisions in a run ----------------------------------------------------------------


def agree_on_stop(requested: int, device: Any) -> int:
    """The largest stop request of all ranks (0: none): every rank stops at the same iteration."""
    import ignite.distributed as idist
    import torch

    flag = torch.tensor([requested], dtype=torch.int64, device=device if idist.backend() == "nccl" else "cpu")
    return int(idist.all_reduce(flag, op="MAX").item())


def broadcast_text(text: str | None) -> str:
    """Rank 0's ``text`` on every rank."""
    import ignite.distributed as idist

    return str(idist.broadcast(text, src=0, safe_mode=True))


def shard_randn(rows: int, *shape: int, device: Any = None, dtype: Any = None) -> Any:
    """Normal noise ``(rows, *shape)`` for this rank's part of a global batch.

    Every rank draws from the same RNG stream (same seed, same draws), so each draws the noise of
    the whole global batch (``rows x world size``) and keeps its own rows: N processes with batch
    B/N see the same noise as one process with batch B. On one process it is ``torch.randn``.
    """
    import torch

    world = world_size()
    if world == 1:
        return torch.randn(rows, *shape, device=device, dtype=dtype)
    full = torch.randn(rows * world, *shape, device=device, dtype=dtype)
    return full[rank() :: world].contiguous()


def shard_randn_like(like: Any) -> Any:
    """:func:`shard_randn` shaped like ``like`` (rows first)."""
    return shard_randn(like.shape[0], *like.shape[1:], device=like.device, dtype=like.dtype)


def one_of_each(items: Sequence[Any]) -> list[Any]:
    """``items`` without repeats (by identity), in order."""
    seen: set[int] = set()
    kept = []
    for item in items:
        if id(item) not in seen:
            seen.add(id(item))
            kept.append(item)
    return kept
