"""Options that plugins add to ``dltk generate``, ``predict`` and ``eval`` (the ``dltk_add_options`` hook).

The command line is read once its parser holds every installed plugin's options, so ``--help``
lists them under each plugin's name. Their values go by name to the run's ``Trained.generate``
or ``Trained.predict`` (or to the named metrics, for ``eval``); one that goes nowhere is refused.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dltoolkit._errors import DltkError
from dltoolkit.hookspecs import OPTION_COMMANDS

PLUGIN_OPTIONS = "plugin_options"
"""Attribute of the parsed arguments: ``{dest: flag}`` of the options plugins added to the command."""


def command_and_plugins(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """The command of a ``dltk`` command line and every ``-p MODULE`` in it, before it is parsed."""
    command: str | None = None
    plugins: list[str] = []
    tokens = list(argv)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "-p" and i + 1 < len(tokens):
            plugins.append(tokens[i + 1])
            i += 2
            continue
        if token.startswith("-p") and not token.startswith("--") and len(token) > 2:
            plugins.append(token[2:])
        elif command is None and not token.startswith("-"):
            command = token
        i += 1
    return command, plugins


def add_plugin_options(host: Any, command: str, parser: argparse.ArgumentParser) -> dict[str, str]:
    """Let each plugin add its options for ``command`` to ``parser``, in a group of its own.

    Returns ``{dest: flag}`` of what was added. A plugin whose hook raises (two plugins adding one
    flag, say) is reported on stderr and skipped; the command goes on without its options.
    """
    if command not in OPTION_COMMANDS:
        return {}
    added: dict[str, str] = {}
    for impl in reversed(host.pm.hook.dltk_add_options.get_hookimpls()):  # in the order plugins loaded
        group = parser.add_argument_group(f"options of plugin {impl.plugin_name}")
        context = {"command": command, "parser": group}
        try:
            impl.function(**{k: v for k, v in context.items() if k in impl.argnames})
        except Exception as exc:  # a plugin's bug or a flag clash: the others keep working
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            print(f"warning: plugin '{impl.plugin_name}': dltk_add_options: {first}", file=sys.stderr)
            continue
        for action in group._group_actions:
            longest = max(action.option_strings, key=len) if action.option_strings else action.dest
            added[action.dest] = longest
    return added


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The plugin options given on this command line (``None`` and ``False``: not given)."""
    flags: Mapping[str, str] = getattr(args, PLUGIN_OPTIONS, None) or {}
    values = {dest: getattr(args, dest, None) for dest in flags}
    return {dest: value for dest, value in values.items() if value is not None and value is not False}


def flag_of(dest: str, flags: Mapping[str, str] | None = None) -> str:
    """How an option is spelled on the command line (``top_k`` -> ``--top-k``)."""
    return (flags or {}).get(dest) or f"--{dest.replace('_', '-')}"


def not_taken(function: Callable[..., Any], names: Sequence[str]) -> list[str]:
    """Those of ``names`` that ``function`` takes no keyword argument for (none if it takes ``**kwargs``)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return []
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return []
    taken = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return [name for name in names if name not in taken]


def refuse_foreign(
    options: Mapping[str, Any], function: Callable[..., Any], what: str, flags: Mapping[str, str] | None = None
) -> None:
    """One line naming every given option that ``function`` does not take, then exit code 2.

    ``what`` says whose function it is, as the plural subject of "do not take it" (``"the
    'gan' recipe's runs"``).
    """
    foreign = not_taken(function, list(options))
    if foreign:
        shown = ", ".join(flag_of(name, flags) for name in foreign)
        raise DltkError(f"{shown}: {what} do not take {'it' if len(foreign) == 1 else 'them'}")
