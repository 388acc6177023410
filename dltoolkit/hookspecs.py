"""The plugin contract: every hook dltoolkit calls, when it calls it and what it expects back.

A plugin is a module (or object) with functions decorated by :data:`dltoolkit.hookimpl` whose
names are hooks below. dltoolkit discovers plugins in this order: its built-ins
(``dltoolkit.builtin.*``), then the ``dltoolkit`` entry-point group of installed distributions,
then modules given with ``dltk -p MODULE``. Hooks are called with keyword arguments; an
implementation may accept fewer arguments than the specification lists.

Registry hooks (``dltk_register_*``) return data: a list of :class:`dltoolkit.Component`. The
host checks it: two plugins registering the same name for the same kind is an error naming both.
They are called once per ``dltk`` invocation, each implementation on its own, so a plugin whose
hook raises is reported by name and the others keep working.

Inside a training loop the extension point is Ignite's ``Events`` (attach handlers in
:func:`dltk_engine_created`), not pluggy: there is no per-batch hook dispatch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from ignite.engine import Engine

    from dltoolkit._component import Component
    from dltoolkit._errors import ExitCode
    from dltoolkit._run import Run

PROJECT_NAME = "dltoolkit"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def dltk_register_recipes() -> list[Component]:
    """Return the recipes this plugin provides.

    Called: once, when the registry is built, before any recipe file is read.
    Returns: a list of :class:`~dltoolkit.Component`. A recipe factory is called as
    ``factory(config, run=run)`` with the validated ``[recipe]`` table and the
    :class:`~dltoolkit.Run`; it builds the other components through ``run``, builds Ignite
    engines, announces each with ``run.engine_created(engine, role)`` and runs them.
    Result mode: collect all (every plugin's list is merged).
    """


@hookspec
def dltk_register_models() -> list[Component]:
    """Return the model components this plugin provides.

    Called: once, when the registry is built.
    Returns: a list of :class:`~dltoolkit.Component`. A model factory is called as
    ``factory(config, image_shape=(C, H, W))`` by generative recipes; it returns the model
    object the recipe documents (the ``gan`` recipe expects ``dltoolkit_gan.GanModel``).
    Result mode: collect all.
    """


@hookspec
def dltk_register_datasets() -> list[Component]:
    """Return the dataset components this plugin provides.

    Called: once, when the registry is built.
    Returns: a list of :class:`~dltoolkit.Component`. A dataset factory is called as
    ``factory(config)`` by training recipes and ``factory(config, split="train"|"test")`` by
    evaluations (so accept ``split: str | None = None``), and returns a :class:`torch.utils.data.Dataset` of
    ``(image, label)`` with images as float tensors in [-1, 1] and an ``image_shape`` attribute
    ``(C, H, W)``. :class:`~dltoolkit.InMemoryImages` is the fast choice for data that fits in
    memory. Missing files are reported by raising :class:`~dltoolkit.DltkError`.
    Result mode: collect all.
    """


@hookspec
def dltk_register_metrics() -> list[Component]:
    """Return the metric components this plugin provides.

    Called: once, when the registry is built.
    Returns: a list of :class:`~dltoolkit.Component` whose ``Config`` has at least ``every``
    (epochs between evaluations) and ``num_samples``. A metric factory is called as
    ``factory(config, run=run)`` and returns an object with ``name``, ``every``,
    ``higher_is_better`` and a static ``evaluate_together(run, metrics)`` returning
    ``{name: {"value": float, ...protocol}}``; metrics of one class due in the same epoch are
    evaluated together (see ``Run.attach_evaluation``).
    Result mode: collect all.
    """


@hookspec
def dltk_register_callbacks() -> list[Component]:
    """Return the callback components this plugin provides.

    Called: once, when the registry is built.
    Returns: a list of :class:`~dltoolkit.Component`. A callback factory is called as
    ``factory(config)`` and returns an object with ``attach(engine, run)``, which adds Ignite
    event handlers to the trainer engine (``Events.EPOCH_COMPLETED`` and so on). Recipes attach
    every ``[[callbacks]]`` table of the recipe file to their trainer.
    Result mode: collect all.
    """


@hookspec
def dltk_configure(run: Run) -> None:
    """The recipe file is validated and the registries are built; nothing is built yet.

    Called: once per run, after validation and before the recipe starts (also for ``--resume``).
    Args: ``run``, the :class:`~dltoolkit.Run` (``run.recipe_file``, ``run.registry``; its
    directory is not created yet). Raise :class:`~dltoolkit.DltkError` to refuse the run.
    Returns: nothing. Result mode: collect all.
    """


@hookspec
def dltk_engine_created(run: Run, engine: Engine, role: str) -> None:
    """A recipe built an Ignite engine; attach handlers to it here.

    Called: once per engine, before it runs, with ``role`` ``"trainer"`` or ``"evaluator"``.
    Args: the :class:`~dltoolkit.Run`, the :class:`ignite.engine.Engine` and its role.
    Returns: nothing. Result mode: collect all.
    """


@hookspec
def dltk_run_finished(run: Run, exit_code: ExitCode) -> None:
    """The run ended, however it ended.

    Called: exactly once per run that started, also after an error, a non-finite loss or an
    interrupt, with the :class:`~dltoolkit.ExitCode` the command will return.
    Args: the :class:`~dltoolkit.Run` and the exit code.
    Returns: nothing. Result mode: collect all; an exception here is reported, not raised.
    """


HOOK_NAMES: tuple[str, ...] = (
    "dltk_register_recipes",
    "dltk_register_models",
    "dltk_register_datasets",
    "dltk_register_metrics",
    "dltk_register_callbacks",
    "dltk_configure",
    "dltk_engine_created",
    "dltk_run_finished",
)

REGISTER_HOOKS: dict[str, str] = {
    "recipe": "dltk_register_recipes",
    "model": "dltk_register_models",
    "dataset": "dltk_register_datasets",
    "metric": "dltk_register_metrics",
    "callback": "dltk_register_callbacks",
}
