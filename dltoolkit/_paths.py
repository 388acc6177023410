"""Paths users give: what is wrong with one, in one line, before anything opens it.

``Path.exists()`` hides a symlink loop and a dangling link behind "no such file", raises on a
name longer than the file system allows and on a NUL byte, and ``open()`` on a named pipe blocks
until a writer comes. These helpers say which it is instead.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

_CONTROL = {i: f"\\x{i:02x}" for i in (*range(0x20), 0x7F)}
_CONTROL.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


def one_line(text: str) -> str:
    """``text`` with control characters (newlines, terminal escape codes, NUL) shown escaped, so a
    message about a strange name stays on one line and cannot restyle the terminal."""
    return text.translate(_CONTROL)


def problem_with_file(path: Path, what: str = "file") -> str | None:
    """Why ``path`` cannot be read as a regular file (None if it can), in a few words."""
    text = os.fspath(path)
    if "\x00" in text:
        return "a path may not contain a NUL byte"
    try:
        info = os.stat(text)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop"
        if exc.errno == errno.ENOENT and os.path.islink(text):
            return f"dangling symlink to {os.readlink(text)}"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return "no such file"
        return exc.strerror or str(exc)
    if stat.S_ISDIR(info.st_mode):
        return f"is a directory, not a {what}"
    if stat.S_ISFIFO(info.st_mode):
        return f"not a regular file (a named pipe?); give a {what}"
    if not stat.S_ISREG(info.st_mode):
        return f"not a regular file; give a {what}"
    return None


def dltk_command() -> str:
    """How to type dltk in a hint: ``uv run dltk`` in a process ``uv run`` started (``dltk`` is then
    not on the PATH of the shell the user types in), else ``dltk``."""
    return "uv run dltk" if os.environ.get("UV_RUN_RECURSION_DEPTH") else "dltk"
