"""Components by kind, collected from the ``dltk_register_*`` hooks."""

from __future__ import annotations

import sys

import attrs

from dltoolkit._component import KINDS, Component
from dltoolkit._errors import DltkError
from dltoolkit._manager import PluginHost, _one_line, _plugin_code
from dltoolkit._suggest import did_you_mean, one_of
from dltoolkit.hookspecs import REGISTER_HOOKS

_NOTED: set[tuple[str, str]] = set()
"""Old component names already noted on stderr in this process."""


class Registry:
    """Every registered component, by kind and name, with the plugin that provides it.

    Problems found while collecting (a hook that raised, a non-Component result, a name
    registered twice) are kept in ``problems`` and reported by ``dltk plugins``; a recipe that
    needs an affected name gets an error that names the plugins involved.
    """

    def __init__(self, host: PluginHost):
        self.host = host
        self.components: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
        self.problems: list[str] = []
        self._duplicates: dict[tuple[str, str], list[str]] = {}
        self._unusable: dict[tuple[str, str], str] = {}  # (kind, name) -> why its factory cannot import
        self._failed_hooks: dict[str, list[str]] = {}  # kind -> "plugin (error)" whose registration raised
        for kind, hook_name in REGISTER_HOOKS.items():
            self._collect(kind, hook_name)

    def _describe(self, plugin_name: str) -> str:
        info = self.host.info(plugin_name)
        return info.describe() if info else f"plugin '{plugin_name}'"

    def _collect(self, kind: str, hook_name: str) -> None:
        caller = getattr(self.host.hook, hook_name)
        pm = self.host.pm
        for impl in caller.get_hookimpls():  # registration order
            plugin = impl.plugin_name
            # each plugin on its own (one that raises spoils nothing else), through pluggy's hook
            # caller so that DLTK_TRACE_PLUGINS traces registration hooks like every other hook
            others = [p for p in pm.get_plugins() if p is not impl.plugin]
            with _plugin_code() as real_interrupt:
                try:
                    results = pm.subset_hook_caller(hook_name, remove_plugins=others)()
                    result = results[0] if results else None
                    if isinstance(result, (str, bytes)) or not hasattr(result, "__iter__"):
                        if result is not None:
                            raise TypeError(f"returned {result!r}, not a list of dltoolkit.Component")
                    elif result is not None:
                        result = list(result)  # errors raised while iterating are the hook's errors
                except (Exception, SystemExit, KeyboardInterrupt) as exc:
                    if isinstance(exc, KeyboardInterrupt) and real_interrupt:
                        raise
                    self.problems.append(f"{self._describe(plugin)}: {hook_name} failed: {_one_line(exc)}")
                    self._failed_hooks.setdefault(kind, []).append(f"{self._describe(plugin)} ({_one_line(exc)})")
                    continue
            for component in result or ():
                if not isinstance(component, Component):
                    self.problems.append(
                        f"{self._describe(plugin)}: {hook_name} returned {component!r}, not a dltoolkit.Component"
                    )
                    continue
                component = attrs.evolve(component, kind=kind, plugin=plugin)
                missing = component.missing_module()
                if missing is not None:  # a factory string naming no module: refused before anything is built
                    self.problems.append(missing)
                    self._unusable[kind, component.name] = missing
                existing = self.components[kind].get(component.name)
                if existing is not None:
                    self._duplicates.setdefault((kind, component.name), [existing.plugin]).append(plugin)
                    self.problems.append(
                        f"{kind} '{component.name}' is registered by both "
                        f"{self._describe(existing.plugin)} and {self._describe(plugin)}"
                    )
                    continue
                self.components[kind][component.name] = component

    def names(self, kind: str) -> list[str]:
        """The usable names of ``kind`` (not one two plugins registered, nor one whose factory cannot import)."""
        unusable = self._duplicates.keys() | self._unusable.keys()
        return sorted(n for n in self.components[kind] if (kind, n) not in unusable)

    def current_name(self, kind: str, name: str) -> str:
        """``name``, or the name of the component that was called ``name`` before (its ``formerly``);
        an old name is noted once on stderr."""
        if name in self.components[kind]:
            return name
        renamed = [c.name for c in self.components[kind].values() if name in c.formerly]
        if len(renamed) != 1:
            return name
        if (kind, name) not in _NOTED:
            _NOTED.add((kind, name))
            print(f"dltk: {kind} '{name}' is now named '{renamed[0]}'; the old name still works", file=sys.stderr)
        return renamed[0]

    def find(self, kind: str, name: str) -> Component | None:
        name = self.current_name(kind, name)
        if (kind, name) in self._duplicates or (kind, name) in self._unusable:
            return None
        return self.components[kind].get(name)

    def problem_with(self, kind: str, name: str) -> str | None:
        """Why ``name`` cannot be used as a ``kind``, or None when it can."""
        name = self.current_name(kind, name)
        if (kind, name) in self._duplicates:
            plugins = " and ".join(self._describe(p) for p in self._duplicates[kind, name])
            return f"{kind} '{name}' is registered by both {plugins}; uninstall one of them"
        if (kind, name) in self._unusable:
            return self._unusable[kind, name]
        if name in self.components[kind]:
            return None
        if "." in name or "/" in name or ":" in name:
            hint = "a recipe file names registered components, not import paths"
            return f"unknown {kind} '{name}': {hint}; available: {one_of(self.names(kind))}"
        message = f"unknown {kind} '{name}'{did_you_mean(name, self.names(kind))}"
        message += f"; available: {one_of(self.names(kind))}"
        failed = self.host.failures
        if failed:
            names = ", ".join(f"{p.describe()} ({p.error})" for p in failed)
            message += f"; plugins that failed to load and may provide it: {names}"
        if self._failed_hooks.get(kind):
            message += f"; plugins whose dltk_register_{kind}s failed: {', '.join(self._failed_hooks[kind])}"
        return message

    def get(self, kind: str, name: str) -> Component:
        """The component, or a :class:`DltkError` saying why it is not available."""
        problem = self.problem_with(kind, name)
        if problem is not None:
            raise DltkError(problem)
        return self.components[kind][self.current_name(kind, name)]
