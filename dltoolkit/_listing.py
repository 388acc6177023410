"""``dltk list`` and ``dltk plugins``: what the installed plugins register, printed."""

from __future__ import annotations

import argparse
import sys

from dltoolkit._cli_args import host_and_registry
from dltoolkit._compat import serves
from dltoolkit._component import KINDS
from dltoolkit._errors import DltkError, ExitCode


def list_command(args: argparse.Namespace) -> int:
    """``dltk list [KIND] [-v]``: the registered components of each kind, what they fit and where they
    come from; plugins that failed to load and registration problems as warnings."""
    host, registry = host_and_registry(args)
    kinds = KINDS
    if args.kind:
        kind = args.kind.rstrip("s") if args.kind.rstrip("s") in KINDS else args.kind
        if kind not in KINDS:
            from dltoolkit._suggest import did_you_mean, one_of

            raise DltkError(
                f"dltk list: unknown kind '{args.kind}'{did_you_mean(args.kind, KINDS)}; choose {one_of(KINDS)}"
            )
        kinds = (kind,)
    for kind in kinds:
        print(f"{kind}s:")
        names = registry.names(kind)
        if not names:
            print("  (none)")
        width = max((len(n) for n in names), default=0)
        for name in names:
            component = registry.components[kind][name]
            info = host.info(component.plugin)
            origin = info.distribution or info.name if info else component.plugin
            recipes = serves(registry, component) if kind in ("model", "dataset") else []
            fits = f"  (for: {', '.join(recipes)})" if recipes else ""
            print(f"  {name:<{width}}  {component.summary}{fits}  [{origin}]")
            if args.verbose:
                for option, type_name, default, doc in component.options():
                    print(f"      {option} ({type_name}, default {default!r}): {doc}")
    for info in host.failures:  # a plugin that did not load lists nothing: say so
        print(f"warning: {info.describe()} failed to load: {info.error} (dltk plugins)", file=sys.stderr)
    for problem in registry.problems:
        print(f"warning: {problem}", file=sys.stderr)
    return ExitCode.OK


def plugins_command(args: argparse.Namespace) -> int:
    """``dltk plugins``: each plugin, its distribution and whether it loaded; registration problems."""
    host, registry = host_and_registry(args)
    for info in host.plugins:
        dist = f"{info.distribution} {info.version}" if info.distribution else info.source
        status = f"FAILED: {info.error}" if info.failed else "ok"
        print(f"{info.name:<28} {dist:<28} {status}")
    for problem in registry.problems:
        print(f"problem: {problem}")
    return ExitCode.OK
