"""The dltoolkit-mlflow plugin: the ``mlflow`` writer, which logs a run to an MLflow tracking store.

Registration is light: this module holds the writer's options and names its factory and its check
by ``"module:attr"`` strings, so ``dltk --help``, ``list`` and ``check`` never import MLflow (the
check opens the store with the standard library, or SQLAlchemy for a database server).
"""

from __future__ import annotations

import attrs

from dltoolkit import Component, hookimpl, option

DEFAULT_URI = "sqlite:///mlruns.db"
"""The default store: a SQLite database in the working folder (MLflow refuses a plain folder store
without an opt-in in recent versions)."""


@attrs.frozen
class MlflowConfig:
    """``[[writers]] name = "mlflow"``: where the run is logged."""

    tracking_uri: str = option(
        DEFAULT_URI,
        doc="The MLflow tracking store: sqlite:///FILE.db (relative to the working folder; "
        "sqlite:////abs/path.db for an absolute path), http(s)://HOST:PORT of an MLflow server, or a "
        "database URL (postgresql://USER:PASSWORD@HOST/DB).",
    )
    experiment: str = option(
        "", doc="The MLflow experiment the run goes in, made if missing. Default: the recipe file's name."
    )
    run_name: str = option("", doc="The MLflow run's name. Default: the run directory's name.")
    artifact_location: str = option(
        "",
        doc="Where a new experiment keeps its artefacts (a folder or URI). Default: MLflow's "
        "(./mlruns beside a database store, the server's for a server).",
    )
    log_images: bool = option(True, doc="Upload the sample grids and other images as artefacts.")


@hookimpl
def dltk_register_writers() -> list[Component]:
    return [
        Component(
            "mlflow",
            "dltoolkit_mlflow.writer:MlflowWriter",
            MlflowConfig,
            summary="Log the recipe, scalars, evaluations and images of a run to MLflow (sqlite:///mlruns.db).",
            check="dltoolkit_mlflow.store:check_store",
        )
    ]
