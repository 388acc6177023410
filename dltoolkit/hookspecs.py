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
    """Return the recipes this plugin provides: typically one per model family.

    Called: once, when the registry is built, before any recipe file is read.
    Returns: a list of :class:`~dltoolkit.Component`. A recipe factory is called as
    ``factory(config, run=run)`` with the validated ``[recipe]`` table and the
    :class:`~dltoolkit.Run`. It builds its parts with ``run.build_dataset()`` and
    ``run.build_model()``, writes an Ignite trainer whose step returns the scalars it reports,
    and hands everything to ``run.fit(trainer, loader, epochs=, state=, trained=)``, which runs
    the life cycle (logging, evaluation, callbacks, checkpoints, progress, resume, clean stops).
    The component declares, as data:

    * ``requires``: the tables a recipe file must have (``("model", "dataset")``);
    * ``needs``: what the model and the data must provide (``{"model": "vae", "dataset": "images"}``),
      checked by ``dltk check`` before anything is built;
    * ``provides``: what its finished runs can do (``"sample"``, ``"evaluate"``, ``"predict"``,
      ``"export"``), which metrics and callbacks may need;
    * ``reports``: the :class:`~dltoolkit.Scalar` values its step returns (name, meaning, lower
      or higher is better), used by the progress line, the loss plot, TensorBoard and ``best_by``;
    * ``offers``: ``offers(model, device) -> Trained`` (add ``config=`` or ``data=`` to also
      receive the run's recipe options or its DataSpec), which ``dltk generate``, ``export``, ``eval``
      and ``predict`` call to rebuild a finished run's model from its checkpoint or export.

    Result mode: collect all (every plugin's list is merged).
    """


@hookspec
def dltk_register_models() -> list[Component]:
    """Return the model components this plugin provides.

    Called: once, when the registry is built.
    Returns: a list of :class:`~dltoolkit.Component`. A model factory is called as
    ``factory(config, data=DataSpec, image_shape=(C, H, W))`` (``image_shape`` for image data
    only; a factory names the arguments it takes, the others are not passed). It returns the
    model object its recipe documents (each recipe says which attributes it reads). Declare
    ``provides`` (the tag the recipe's ``needs["model"]`` names, e.g. ``"vae"``) and ``needs``
    (``{"dataset": "images"}``) so that ``dltk check`` refuses a model with the wrong recipe or
    data, and ``dltk list`` shows which recipes it serves.
    Result mode: collect all.
    """


@hookspec
def dltk_register_datasets() -> list[Component]:
    """Return the dataset components this plugin provides.

    Called: once, when the registry is built.
    Returns: a list of :class:`~dltoolkit.Component` with ``provides`` saying what the samples are
    (``"images"``, ``"sequences"``, ``"text"``, ``"series"``, plus ``"labels"`` when each has a
    class, or can have one depending on its options: the built data is then checked against what
    the recipe and model need). A dataset factory is called as ``factory(config)`` for the training data and
    ``factory(config, split="train"|"test")`` by evaluations (so accept
    ``split: str | None = None``); the ``train`` and ``test`` splits never share a sample. It
    returns a :class:`torch.utils.data.Dataset` of ``(input, target)`` pairs with a ``spec``
    attribute, a :class:`~dltoolkit.DataSpec` (kind, shape, classes, vocabulary) from which
    models are built. Images are float tensors in [-1, 1]; :class:`~dltoolkit.InMemoryImages` is
    the fast choice for images that fit in memory. Missing or bad files are reported by raising
    :class:`~dltoolkit.DltkError`.
    Result mode: collect all.
    """


@hookspec
def dltk_register_metrics() -> list[Component]:
    """Return the metric components this plugin provides.

    Called: once, when the registry is built.
    Returns: a list of :class:`~dltoolkit.Component` declaring ``reports`` (the
    :class:`~dltoolkit.Scalar` it scores, with its direction) and ``needs`` (``{"recipe":
    "sample"}`` or ``{"recipe": "evaluate"}``). Its ``Config`` has ``every`` (epochs between
    evaluations during training). A metric factory is called as ``factory(config, run=run)``
    (``run`` is a :class:`~dltoolkit.Run`, or what ``dltk eval`` gives in its place) and returns
    an object with ``name``, ``every`` and ``needs``, one of:

    * ``needs = "samples"`` (the default): a static ``evaluate_together(run, metrics)`` scoring
      images from ``run.sampler`` against ``run.reference(split)``; metrics of one class due
      together share one call. It returns ``{name: {"value": float, ...protocol}}``.
    * ``needs = "predictions"``: ``ignite_metric()`` returning an Ignite ``Metric`` that the core
      attaches to an evaluator engine running ``run.trained.eval_step`` over the held-out
      ``split`` (attribute, default ``"test"``) in batches of ``batch_size``.

    Either way a recipe gets evaluation by asking ``run.fit`` for it, and ``dltk eval`` scores a
    finished run the same way. An optional ``summary(result) -> str`` formats the protocol.
    Result mode: collect all.
    """


@hookspec
def dltk_register_callbacks() -> list[Component]:
    """Return the callback components this plugin provides.

    Called: once, when the registry is built.
    Returns: a list of :class:`~dltoolkit.Component` (with ``needs``, e.g. ``{"recipe":
    "sample"}``, when it works only with some recipes). A callback factory is called as
    ``factory(config)`` and returns an object with ``attach(engine, run)``, which adds Ignite
    event handlers to the trainer engine (``Events.EPOCH_COMPLETED`` and so on). ``run.fit``
    attaches every ``[[callbacks]]`` table of the recipe file to the trainer.
    Result mode: collect all.
    """


@hookspec
def dltk_register_writers() -> list[Component]:
    """Return the writer components this plugin provides: where a run's records and images go.

    Called: once, when the registry is built.
    Returns: a list of :class:`~dltoolkit.Component`. A writer factory is called as
    ``factory(config)`` when a run starts, for each writer the recipe file names (``[run] writers``
    by name with default options, default ``["tensorboard", "progress"]``; ``[[writers]]`` tables
    with options); ``jsonl`` (``metrics.jsonl``) is always on. It returns an object with any of
    ``start(run, resume_from)`` (``resume_from``: the iteration a resumed run continues from, 0
    when fresh), ``record(record)`` (kind ``step``/``epoch``/``eval``, ``epoch``, ``iteration``,
    ``values`` and, for evaluations, ``protocol``), ``image(image)`` (``tag``, ``image`` tensor,
    ``iteration``, ``path`` under ``samples/`` or None) and ``end(exit_code)``, called on rank 0
    only. A writer that raises is reported once on stderr, by name, and dropped; training goes on.
    See docs/writers.md for the record schema and a worked example.
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
    "dltk_register_writers",
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
    "writer": "dltk_register_writers",
}
