"""Exit codes and the one exception type for user errors."""

from __future__ import annotations

import enum
from collections.abc import Iterable


class ExitCode(enum.IntEnum):
    """What ``dltk`` returns to the shell."""

    OK = 0
    RUN_FAILED = 1
    BAD_INPUT = 2
    INTERRUPTED = 130
    TERMINATED = 143


class DltkError(Exception):
    """A problem with what the user gave us: a recipe file, an argument, a file on disk.

    It carries one or more problems, each a line of the form ``FILE: key.path: what is wrong``.
    The command line prints them all (no traceback) and exits with ``exit_code``.
    """

    def __init__(self, problems: str | Iterable[str], exit_code: ExitCode = ExitCode.BAD_INPUT):
        self.problems: tuple[str, ...] = (problems,) if isinstance(problems, str) else tuple(problems)
        self.exit_code = exit_code
        super().__init__("\n".join(self.problems))


class RunFailed(DltkError):
    """The run itself went wrong (for instance a non-finite loss): exit code 1."""

    def __init__(self, problems: str | Iterable[str]):
        super().__init__(problems, ExitCode.RUN_FAILED)


class Interrupted(DltkError):
    """The run was stopped by SIGINT (exit 130) or SIGTERM (exit 143) after saving its state."""

    def __init__(self, problems: str | Iterable[str], exit_code: ExitCode):
        super().__init__(problems, exit_code)
