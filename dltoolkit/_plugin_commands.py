"""Commands that plugins add to ``dltk`` (the ``dltk_register_commands`` hook), such as ``dltk sweep``.

A plugin adds a sub-parser and names its handler with ``parser.set_defaults(handler=...)``; the
core loads the plugins for a command it does not know itself (and for ``dltk --help``), so the
built-in commands never pay for them.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

from dltoolkit._component import Ref, accepted
from dltoolkit._errors import DltkError, ExitCode

HANDLER = "handler"
"""The ``set_defaults`` name of a plugin command's handler: a callable or a ``"module:attr"`` string."""


def add_plugin_commands(host: Any, subparsers: Any, built_in: set[str]) -> list[str]:
    """Let each plugin add its commands to ``subparsers``; return the names added.

    A plugin whose hook raises (a command name already taken, a bug) is reported on stderr and
    skipped; the other commands keep working. Each added command also takes ``-p MODULE``.
    """
    added: list[str] = []
    for impl in reversed(host.pm.hook.dltk_register_commands.get_hookimpls()):  # in the order plugins loaded
        before = set(subparsers.choices)
        try:
            impl.function(**{k: v for k, v in {"subparsers": subparsers}.items() if k in impl.argnames})
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            print(f"warning: plugin '{impl.plugin_name}': dltk_register_commands: {first}", file=sys.stderr)
            continue
        for name in sorted(set(subparsers.choices) - before - built_in):
            parser = subparsers.choices[name]
            if parser.get_default(HANDLER) is None:
                print(
                    f"warning: plugin '{impl.plugin_name}': command '{name}' names no handler "
                    "(parser.set_defaults(handler='module:function'))",
                    file=sys.stderr,
                )
            with contextlib.suppress(argparse.ArgumentError):  # unless the plugin's parser has its own -p
                parser.add_argument(
                    "-p", dest="plugins", action="append", default=[], metavar="MODULE",
                    help="also load this module as a plugin (repeatable)",
                )  # fmt: skip
            added.append(name)
    return added


def run_plugin_command(args: argparse.Namespace, registry_of: Any) -> int:
    """Call the handler of a plugin's command as ``handler(args)``, adding ``registry=`` (built from
    the loaded plugins) when it takes one; a handler returning None means done (exit 0)."""
    handler = getattr(args, HANDLER, None)
    if handler is None:
        raise DltkError(f"dltk {args.command}: the plugin that adds this command names no handler")
    if isinstance(handler, str):
        handler = Ref(handler, f"command '{args.command}'").load()
    context: dict[str, Any] = {"args": args}
    wanted = accepted(handler, {"args": None, "registry": None})
    if "registry" in wanted:
        context["registry"] = registry_of(args)
    code = handler(**accepted(handler, context))
    return int(ExitCode.OK if code is None else code)
