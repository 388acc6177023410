"""A fresh pluggy PluginManager per invocation: built-ins, then entry points, then ``-p`` modules.

Environment switches:

* ``DLTK_LOAD_PLUGINS``: comma-separated entry-point or distribution names to load; the others
  are skipped (built-ins always load). Set it empty to load no installed plugin.
* ``DLTK_TRACE_PLUGINS``: when set (non-empty), every hook call is traced to stderr.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterable, Iterator, Mapping
from types import ModuleType
from typing import Any

import attrs
import pluggy

from dltoolkit import hookspecs
from dltoolkit._errors import DltkError, ExitCode

ENTRY_POINT_GROUP = "dltoolkit"

BUILTIN_PLUGINS: tuple[str, ...] = (
    "dltoolkit.builtin.datasets",
    "dltoolkit.builtin.callbacks",
    "dltoolkit.builtin.trained",
    "dltoolkit.builtin.writers",
    "dltoolkit.builtin.metrics",
)


@attrs.frozen
class PluginInfo:
    """One plugin as ``dltk plugins`` shows it."""

    name: str
    source: str  # "builtin", "entry point", "-p"
    distribution: str = ""
    version: str = ""
    error: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.error)

    def describe(self) -> str:
        dist = f" ({self.distribution} {self.version})" if self.distribution else ""
        return f"plugin '{self.name}'{dist}"


class PluginHost:
    """The plugin manager of one invocation and what happened while loading plugins."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[PluginInfo] = []

    @property
    def hook(self) -> Any:
        return self.pm.hook

    @property
    def failures(self) -> list[PluginInfo]:
        return [p for p in self.plugins if p.failed]

    def info(self, plugin_name: str) -> PluginInfo | None:
        for p in self.plugins:
            if p.name == plugin_name:
                return p
        return None

    def add(self, plugin: Any, info: PluginInfo) -> None:
        """Register ``plugin``; a plugin that breaks the contract is recorded as failed."""
        try:
            self.pm.register(plugin, name=info.name)
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            self.plugins.append(attrs.evolve(info, error=_one_line(exc)))
            return
        except ValueError as exc:  # already registered under that name
            self.plugins.append(attrs.evolve(info, error=_one_line(exc)))
            return
        self.plugins.append(info)

    def load_module(self, module_name: str, info: PluginInfo) -> None:
        with _plugin_code() as real_interrupt:
            try:
                module = importlib.import_module(module_name)
            except (Exception, SystemExit, KeyboardInterrupt) as exc:
                if isinstance(exc, KeyboardInterrupt) and real_interrupt:
                    raise
                self.plugins.append(attrs.evolve(info, error=_import_error(exc)))
                return
        self.add(module, info)


class _RealInterrupt:
    """Truthy once a real SIGINT arrived while plugin code ran."""

    def __init__(self) -> None:
        self.seen = False

    def __bool__(self) -> bool:
        return self.seen


@contextlib.contextmanager
def _plugin_code() -> Iterator[_RealInterrupt]:
    """Run plugin code (an import, a registration hook) telling a real Ctrl-C from a plugin that
    raises ``KeyboardInterrupt`` itself: the first is the user's and propagates, the second is the
    plugin's failure and is reported by name like any other."""
    real = _RealInterrupt()
    if threading.current_thread() is not threading.main_thread():
        yield real
        return

    def on_sigint(_signum: int, _frame: Any) -> None:
        real.seen = True
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield real
    finally:
        signal.signal(signal.SIGINT, previous)


def _one_line(exc: BaseException) -> str:
    text = " ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())
    return f"{type(exc).__name__}: {text}".rstrip(": ")


def _import_error(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return _one_line(exc) + where


def _selected(env: Mapping[str, str]) -> set[str] | None:
    raw = env.get("DLTK_LOAD_PLUGINS")
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _entry_points() -> Iterable[tuple[importlib.metadata.EntryPoint, str, str]]:
    seen: set[tuple[str, str]] = set()
    for dist in importlib.metadata.distributions():
        dist_name = dist.metadata["Name"] or ""
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP or (dist_name, ep.name) in seen:
                continue
            seen.add((dist_name, ep.name))
            yield ep, dist_name, dist.version or ""


def make_plugin_host(
    extra_modules: Iterable[str | ModuleType] = (),
    env: Mapping[str, str] | None = None,
) -> PluginHost:
    """Build the plugin manager of one invocation.

    ``extra_modules`` are module names (``dltk -p``) or module objects registered last.
    """
    env = os.environ if env is None else env
    host = PluginHost()
    for module_name in BUILTIN_PLUGINS:
        host.load_module(module_name, PluginInfo(module_name, "builtin"))

    selected = _selected(env)
    for ep, dist_name, version in _entry_points():
        if selected is not None and ep.name not in selected and dist_name not in selected:
            continue
        info = PluginInfo(ep.name, "entry point", dist_name, version)
        if host.pm.is_blocked(ep.name):
            continue
        if host.pm.get_plugin(ep.name) is not None:
            first = host.info(ep.name)
            taken = first.describe() if first else f"plugin '{ep.name}'"
            host.plugins.append(attrs.evolve(info, error=f"entry-point name '{ep.name}' is already taken by {taken}"))
            continue
        with _plugin_code() as real_interrupt:
            try:
                plugin = ep.load()
            except (Exception, SystemExit, KeyboardInterrupt) as exc:
                if isinstance(exc, KeyboardInterrupt) and real_interrupt:
                    raise
                host.plugins.append(attrs.evolve(info, error=_import_error(exc)))
                continue
        host.add(plugin, info)

    for extra in extra_modules:
        if isinstance(extra, ModuleType):
            host.add(extra, PluginInfo(extra.__name__, "-p"))
        else:
            host.load_module(extra, PluginInfo(extra, "-p"))

    if env.get("DLTK_TRACE_PLUGINS"):
        host.pm.trace.root.setwriter(sys.stderr.write)
        host.pm.enable_tracing()
    return host


def call_run_hook(hook: Any, hook_name: str, **kwargs: Any) -> None:
    """Call the run hook ``hook_name`` (``dltk_configure``, ``dltk_engine_created``) of the relay
    ``hook`` with ``kwargs``. A plugin that raises is reported in one line naming the plugin and the
    hook: a :class:`DltkError` with exit code 2 before training started, 1 once the run's trainer has
    run an iteration (its own :class:`DltkError` passes unchanged). With ``DLTK_TRACE_PLUGINS`` set,
    the plugin's traceback is printed to stderr as well, for its author."""
    caller = getattr(hook, hook_name)
    try:
        caller(**kwargs)
    except DltkError:
        raise
    except Exception as exc:
        if os.environ.get("DLTK_TRACE_PLUGINS"):
            traceback.print_exception(exc, file=sys.stderr)
        state = getattr(getattr(kwargs.get("run"), "trainer", None), "state", None)
        during = int(getattr(state, "iteration", 0) or 0) > 0
        code = ExitCode.RUN_FAILED if during else ExitCode.BAD_INPUT
        plugin = _raising_plugin(caller, exc)
        where = f"plugin '{plugin}'" if plugin else "a plugin"
        raise DltkError(f"{where}: {hook_name} failed: {_one_line(exc)}", code) from None


def _raising_plugin(caller: Any, exc: BaseException) -> str | None:
    """The plugin whose implementation of ``caller``'s hook is deepest in ``exc``'s traceback."""
    codes = {}
    for impl in caller.get_hookimpls():
        code = getattr(impl.function, "__code__", None)
        if code is not None:
            codes[code] = impl.plugin_name
    found = None
    tb = exc.__traceback__
    while tb is not None:
        found = codes.get(tb.tb_frame.f_code, found)
        tb = tb.tb_next
    return found
