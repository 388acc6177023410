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
    import argparse

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

    Called: once per ``dltk`` invocation, when the registry is built, before any recipe file is read.

    Returns: a list of :class:`~dltoolkit.Component`. A recipe factory is called as
    ``factory(config, run=run)`` with the validated ``[recipe]`` table and the
    :class:`~dltoolkit.Run`. It builds its parts with ``run.build_dataset()`` and
    ``run.build_model()``, writes an Ignite trainer whose step returns the scalars it reports
    (``{name: 0-d tensor}``, or a 1-D tensor in declared order, detached and left on the device),
    and hands everything to ``run.fit(trainer, loader, epochs=, state=, trained=)``, which runs
    the life cycle (logging, evaluation, callbacks, checkpoints, progress, resume, clean stops;
    docs/writing_plugins.md gives the order). The component declares, as data:

    * ``requires``: the tables a recipe file must have (``("model", "dataset")``); a missing one is
      ``FILE: dataset: the 'vae' recipe needs a [dataset] table``;
    * ``needs``: what the model and the data must provide (``{"model": "vae", "dataset": "images"}``),
      checked by ``dltk check`` before anything is built;
    * ``provides``: what its finished runs can do (``"sample"``, ``"evaluate"``, ``"predict"``,
      ``"export"``) and any tag of its own that says what its ``eval_step`` gives (the ``vae``
      recipe's ``"elbo"``), which metrics and callbacks may need;
    * ``reports``: the :class:`~dltoolkit.Scalar` values its step returns (name, meaning, lower
      or higher is better), used by the progress line, the loss plot, TensorBoard and ``best_by``;
    * ``offers``: ``offers(model, device) -> Trained`` (add ``config=`` or ``data=`` to also
      receive the run's recipe options or its DataSpec), which ``dltk generate``, ``export``, ``eval``
      and ``predict`` call to rebuild a finished run's model from its checkpoint or export. It is
      called twice: by the recipe with its running model (for ``run.fit``), and by those commands
      with a model rebuilt from the recorded options, whose saved weights they then load into
      ``Trained.modules``; so the sampler, ``eval_step`` and ``predict`` must use those very module
      objects. Without ``offers`` (or with a ``Trained`` part left None) the commands refuse the
      recipe's runs in one line naming what they offer;
    * ``export_formats``: older export formats the recipe still reads, ``{format: module name}``.

    Document the model object the recipe reads (its attributes, call signatures and shapes) and the
    tag its models provide: docs/model_contracts.md does so for the first-party recipes.

    Result mode: collect all (every plugin's list is merged).
    """


@hookspec
def dltk_register_models() -> list[Component]:
    """Return the model components this plugin provides.

    Called: once per ``dltk`` invocation, when the registry is built.

    Returns: a list of :class:`~dltoolkit.Component`. A model factory is called as
    ``factory(config, data=DataSpec, image_shape=(C, H, W))``: ``data`` is the description of the
    training data (or the one recorded in a checkpoint or export, when ``dltk generate``,
    ``export``, ``eval`` or ``predict`` rebuild the model without any data); ``image_shape`` is
    passed for image data only; the factory receives only the arguments it names (all of them
    with ``**kwargs``). It returns the model object its recipe documents
    (docs/model_contracts.md), so any object with those attributes will do. Declare ``provides``
    (the tag the recipe's ``needs["model"]`` names, e.g. ``"vae"``) and ``needs``
    (``{"dataset": "images"}``) so that ``dltk check`` refuses a model with the wrong recipe or
    data, and ``dltk list`` shows which recipes it serves.

    Each build is preceded by a dry one under ``torch.device("meta")`` that counts the parameters
    and refuses sizes that would not fit in memory, so a factory must be free of side effects (no
    files written, no downloads). A configuration it cannot build for that data is a
    :class:`~dltoolkit.DltkError` keyed ``model`` or ``model.<option>``.

    Result mode: collect all.
    """


@hookspec
def dltk_register_datasets() -> list[Component]:
    """Return the dataset components this plugin provides.

    Called: once per ``dltk`` invocation, when the registry is built.

    Returns: a list of :class:`~dltoolkit.Component` with ``provides`` saying what the samples are
    (``"images"``, ``"sequences"``, ``"text"``, ``"series"``, plus ``"labels"`` when each has a
    class, or can have one depending on its options: the built data is then checked against what
    the recipe and model need). A dataset factory is called as ``factory(config)`` for the training
    data and ``factory(config, split="train"|"test")`` by evaluations, ``dltk eval`` and ``dltk
    predict`` (so accept ``split: str | None = None``); the ``train`` and ``test`` splits never
    share a sample. It returns a :class:`torch.utils.data.Dataset` of ``(input, target)`` pairs
    with a ``spec`` attribute, a :class:`~dltoolkit.DataSpec` (kind, shape, classes, vocabulary)
    from which models are built and which every checkpoint and export records. Images are float
    tensors in [-1, 1]; :class:`~dltoolkit.data.InMemoryImages` is the fast choice for images that fit
    in memory and sets ``spec`` itself. A dataset without ``spec`` but with an ``image_shape``
    attribute is taken as images of that shape.

    A dataset registered without ``provides`` passes ``dltk check``; when the run builds it, its
    ``spec`` is checked against the recipe's and the model's ``needs["dataset"]``. Missing or bad
    files are reported by raising :class:`~dltoolkit.DltkError` naming the key and what to put
    where (``dataset.root: ...``).

    Result mode: collect all.
    """


@hookspec
def dltk_register_metrics() -> list[Component]:
    """Return the metric components this plugin provides.

    Called: once per ``dltk`` invocation, when the registry is built.

    Returns: a list of :class:`~dltoolkit.Component` declaring ``reports`` (the
    :class:`~dltoolkit.Scalar` it scores, with its direction) and ``needs`` (``{"recipe":
    "sample"}`` or ``{"recipe": "evaluate"}``, plus the tag of what the recipe's ``eval_step``
    gives). A metric factory is called as ``factory(config, run=run)`` (``run`` is a
    :class:`~dltoolkit.Run`, or what ``dltk eval`` gives in its place; a factory may leave ``run``
    out) and returns one of two things:

    * **a held-out metric**: a plain Ignite ``Metric`` (``Accuracy()``, ``Loss(...)``, your own
      subclass) reading the output of ``run.trained.eval_step``. Its ``config`` is
      :class:`~dltoolkit.MetricConfig` or a subclass adding the metric's own options; the core owns
      its options ``every`` (epochs between evaluations), ``split`` (``"test"`` or ``"train"``)
      and ``batch_size``, calls the factory again for a fresh ``Metric`` at each evaluation, and
      attaches those due on one split to one evaluator engine (role ``"evaluator"``) over
      ``run.reference(split)``. The score is logged under the component's name.
    * **a sample metric**: an object following :class:`~dltoolkit.SampleMetric` (``name``,
      ``every`` and a static ``evaluate_together(run, metrics)``) that scores images drawn from
      ``run.sampler`` against ``run.reference(split)``; metrics of one class due together share
      one call, which returns ``{name: {"value": float, ...protocol}}``. An optional static
      ``summary(result) -> str`` gives the protocol in one line for ``dltk eval``.

    A factory returning anything else is refused naming the component. Either way a recipe gets
    evaluation by asking ``run.fit`` for it, and ``dltk eval`` scores a finished run the same way.
    During training ``run.fit`` evaluates the ``[[metrics]]`` every ``every`` epochs and after the
    last and records the scores as an ``eval`` record of metrics.jsonl (docs/run_directory.md),
    TensorBoard ``eval/<name>`` and the best checkpoint when one is its ``best_by``.

    Result mode: collect all.
    """


@hookspec
def dltk_register_callbacks() -> list[Component]:
    """Return the callback components this plugin provides.

    Called: once per ``dltk`` invocation, when the registry is built.

    Returns: a list of :class:`~dltoolkit.Component` (with ``needs`` when it works only with some
    recipes or data: ``{"recipe": "sample"}`` for sample grids, ``{"dataset": "images"}``). A
    callback factory is called as ``factory(config)`` and returns an object with
    ``attach(engine, run)``, which adds Ignite event handlers to the trainer engine
    (``Events.EPOCH_COMPLETED`` and so on). ``run.fit`` builds every ``[[callbacks]]`` table of the
    recipe file and attaches each to the trainer, in file order, after recording the recipe's
    ``Trained`` (so ``run.sampler`` is set) and before the checkpoint handlers. For work to do
    however the run ends, attach to ``Events.COMPLETED`` and also pass the function to
    ``run.add_finalizer(fn)``; never attach to ``Events.EXCEPTION_RAISED`` (an Ignite handler
    there swallows the exception, and a failed run would exit 0). Callbacks are built again on
    ``--resume``, so state kept only in the object starts over.

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

    Called: once per run, after validation and before the recipe starts, before the run directory
    exists (also for ``--resume``).

    Args: ``run``, the :class:`~dltoolkit.Run` (``run.recipe_file``, ``run.registry``,
    ``run.device``; nothing is built).

    Returns: nothing. Raise :class:`~dltoolkit.DltkError` to refuse the run: the user gets its
    lines and exit code 2, and nothing is written.

    Result mode: collect all.
    """


@hookspec
def dltk_engine_created(run: Run, engine: Engine, role: str) -> None:
    """A recipe built an Ignite engine; attach handlers to it here.

    Called: once per engine, before it runs, with ``role`` ``"trainer"`` (from ``run.fit``, after
    the recipe file's callbacks are attached) or ``"evaluator"`` (the engine that runs the metrics
    that score predictions during training; ``dltk eval`` does not call it).

    Args: the :class:`~dltoolkit.Run`, the :class:`ignite.engine.Engine` and its role.

    Returns: nothing. Attach handlers here (``engine.add_event_handler(Events.EPOCH_COMPLETED,
    ...)``); Ignite's handlers (``Timer``, ``EarlyStopping``, loggers) work as usual. This is for
    handlers of any run (a tracker, a timer): a recipe's own handlers on the evaluators of its runs
    go in its ``Trained.evaluator_handlers``, which a built-in implementation of this hook calls, so
    a recipe need not filter other plugins' runs here.

    Result mode: collect all.
    """


@hookspec
def dltk_run_finished(run: Run, exit_code: ExitCode) -> None:
    """The run ended, however it ended.

    Called: exactly once per run that started, after success, a user error, a failed run
    (non-finite loss) or an interrupt. (A second Ctrl-C exits the process at once, and then no
    hook runs.)

    Args: the :class:`~dltoolkit.Run` and the :class:`~dltoolkit.ExitCode` the command will return.

    Returns: nothing. An exception raised here is printed, not raised, so it cannot hide the
    run's outcome.

    Result mode: collect all.
    """


OPTION_COMMANDS: tuple[str, ...] = ("generate", "predict", "eval")
"""The commands to which :func:`dltk_add_options` may add options."""


@hookspec
def dltk_add_options(command: str, parser: argparse._ArgumentGroup) -> None:
    """Add the command-line options that this plugin's capabilities take to ``dltk generate``,
    ``predict`` or ``eval``; ``dltk COMMAND --help`` lists them under the plugin's name.

    Called: when ``dltk generate``, ``predict`` or ``eval`` builds its parser (before the command
    line is read, so also for ``--help``), once per plugin, for that one command. Keep the module
    light: it is imported to build the parser, so import no torch here.
    Args: ``command``, one of :data:`OPTION_COMMANDS`; ``parser``, an argparse argument group of
    its own: call ``parser.add_argument("--top-k", type=int, help=...)`` for each
    option, with no default (an option not given is ``None`` and is not passed on).
    Where the values go, by the option's ``dest`` (``--top-k`` is ``top_k``):

    * ``generate``: to the run's ``Trained.generate(out, num=, seed=, top_k=...)``;
    * ``predict``: to the run's ``Trained.predict(path, dataset, top_k=...)``;
    * ``eval``: to every named metric whose ``Config`` has an option of that name.

    A given option that the run's recipe (its ``generate`` or ``predict`` signature) or the named
    metrics do not take is refused in one line, exit code 2: flags are never ignored silently.
    Two plugins adding the same flag: the second is reported (``dltk plugins``) and skipped.
    Returns: nothing. Result mode: each implementation is called on its own group.
    """


@hookspec
def dltk_register_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add commands to ``dltk`` (``dltk sweep`` of the dltoolkit-optuna plugin is one).

    Called: when ``dltk`` builds its parser for a command it does not have itself, and for
    ``dltk --help`` (which lists them); never for the built-in commands, so they do not load
    plugins for it. Keep the module light: it is imported to build the parser (no torch, no
    heavy libraries; import those in the handler).
    Args: ``subparsers``, the ``dltk`` sub-parsers: call ``parser =
    subparsers.add_parser("sweep", help=..., description=...)``, add its arguments, and name its
    handler with ``parser.set_defaults(handler="module:function")`` (or the function itself).
    The core adds ``-p MODULE`` to each added command.
    The handler is called as ``handler(args)``, plus ``registry=`` when it takes that argument:
    the registry of components of the loaded plugins, which :meth:`dltoolkit.RecipeFile.from_toml`
    takes. It returns an :class:`~dltoolkit.ExitCode` (None: 0); a
    :class:`~dltoolkit.DltkError` it raises is one line per problem and its exit code, as for
    every command. A name already taken (a built-in command or another plugin's) is reported on
    stderr naming the plugin, and that plugin's commands are skipped.
    Returns: nothing. Result mode: each implementation is called once, in plugin load order.
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
    "dltk_add_options",
    "dltk_register_commands",
)

REGISTER_HOOKS: dict[str, str] = {
    "recipe": "dltk_register_recipes",
    "model": "dltk_register_models",
    "dataset": "dltk_register_datasets",
    "metric": "dltk_register_metrics",
    "callback": "dltk_register_callbacks",
    "writer": "dltk_register_writers",
}
