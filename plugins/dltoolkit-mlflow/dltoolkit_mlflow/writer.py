"""The ``mlflow`` writer: a run's resolved recipe (parameters), scalars and evaluations (metrics,
with the trainer's iteration as the step), the protocol of each score (tags and a JSON artefact),
its images, loss plot and best checkpoint's path (artefacts), and its end state.

The MLflow run id is kept in the run directory (:data:`RUN_ID_FILE`), so ``dltk run --resume``
continues the same MLflow run. Records replayed after a resume (from the checkpoint on) are
logged once: a step that the MLflow run already holds for a metric is not logged again (a resume
is bit-exact, so its value is the one held).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from dltoolkit.files import METRICS_NAME, RECIPE_NAME, SAMPLES, atomic_write
from dltoolkit.writers import Image, Record, Writer, finite_number

RUN_ID_FILE = "mlflow.json"
"""The file of the run directory that holds the MLflow run id, tracking URI and experiment."""

STATUS = {0: "FINISHED", 1: "FAILED", 2: "FAILED", 130: "KILLED", 143: "KILLED"}
"""The MLflow run status for each exit code (stopped by a signal: KILLED)."""

BATCH = 100
"""Parameters and metrics per ``log_batch`` call (MLflow's limit for parameters)."""

PARAM_LENGTH = 6000
"""The longest parameter value MLflow keeps."""

TAG_LENGTH = 5000


def flatten(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """``(dotted.key, value)`` for every leaf of a resolved recipe; arrays of tables by index
    (``metrics.0.name``), other lists as JSON."""
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from flatten(value, f"{name}.")
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for index, item in enumerate(value):
                yield from flatten(item, f"{name}.{index}.")
        elif isinstance(value, (list, tuple)):
            yield name, json.dumps(list(value))
        elif isinstance(value, bool):
            yield name, "true" if value else "false"
        else:
            yield name, str(value)


def metric_key(kind: str, name: str) -> str:
    """The MLflow metric of a record's value: ``<kind>/<name>`` as TensorBoard shows it."""
    return f"{kind}/{name}"


def _quiet() -> None:
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)


class MlflowWriter(Writer):
    """Logs a run to MLflow (rank 0 only, as every writer). Options: :class:`~dltoolkit_mlflow.plugin.MlflowConfig`."""

    def __init__(self, config: Any):
        self.config = config
        self.client: Any = None
        self.run_id = ""
        self.run_path: Path | None = None
        self.held: dict[str, set[int]] = {}  # steps the MLflow run holds, per metric (after a resume)

    # -- the life cycle --------------------------------------------------------------------------

    def start(self, run: Any, resume_from: int) -> None:
        _quiet()
        from mlflow import MlflowClient

        self.run_path = Path(run.path)
        self.client = MlflowClient(tracking_uri=self.config.tracking_uri)
        kept = self._kept_run() if resume_from > 0 or (self.run_path / RUN_ID_FILE).is_file() else None
        data = dict(getattr(run.recipe_file, "data", {}) or {})
        if kept is not None:
            self.run_id = kept.info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            self.held = {key: self._steps(key) for key in kept.data.metrics}
            self._log_changed_params(kept.data.params, data)
            self.client.set_tag(self.run_id, "dltk.resumed_from", str(resume_from))
            return
        experiment_id = self._experiment(run)
        tags = {
            "dltk.run_dir": str(self.run_path.resolve()),
            "dltk.recipe": str(getattr(run.recipe_file.recipe, "name", "")),
            "dltk.recipe_file": str(getattr(run.recipe_file, "path", "")),
        }
        name = self.config.run_name or self.run_path.name
        created = self.client.create_run(experiment_id, run_name=name, tags=tags)
        self.run_id = created.info.run_id
        self._keep_id(experiment_id)
        self._log_params(dict(flatten(data)))
        recipe = self.run_path / RECIPE_NAME
        if recipe.is_file():
            self.client.log_artifact(self.run_id, str(recipe))

    def record(self, record: Record) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = []
        for name, value in record.values.items():
            if not finite_number(value):
                continue
            key = metric_key(record.kind, name)
            if record.iteration in self.held.get(key, ()):
                continue  # replayed after a resume: the run holds this step already
            metrics.append(Metric(key, float(value), now, int(record.iteration)))
        for start in range(0, len(metrics), BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[start : start + BATCH], synchronous=True)
        if record.protocol:
            self._log_protocol(record)

    def image(self, image: Image) -> None:
        if not self.config.log_images:
            return
        if image.path is not None and Path(image.path).is_file():
            self.client.log_artifact(self.run_id, str(image.path), self._artifact_folder(Path(image.path)))
            return
        from dltoolkit.images import save_png

        with tempfile.TemporaryDirectory() as folder:
            name = "".join(c if c.isalnum() or c in "-_." else "_" for c in image.tag) or "image"
            path = Path(folder) / f"{name}_{image.iteration:08d}.png"
            save_png(image.image, path, durable=False)
            self.client.log_artifact(self.run_id, str(path), "images")

    def end(self, exit_code: int) -> None:
        if self.client is None or not self.run_id:
            return
        assert self.run_path is not None
        losses = self.run_path / SAMPLES / "losses.png"
        if self.config.log_images and losses.is_file():
            self.client.log_artifact(self.run_id, str(losses), SAMPLES)
        best = sorted((self.run_path / "checkpoints").glob("best_*.pt"), key=lambda p: p.stat().st_mtime)
        if best:
            self.client.set_tag(self.run_id, "dltk.best_checkpoint", str(best[-1].resolve()))
            self.client.log_text(self.run_id, str(best[-1].resolve()) + "\n", "best_checkpoint.txt")
        metrics_file = self.run_path / METRICS_NAME
        if metrics_file.is_file():
            self.client.set_tag(self.run_id, "dltk.metrics_file", str(metrics_file.resolve()))
        self.client.set_tag(self.run_id, "dltk.exit_code", str(int(exit_code)))
        self.client.set_terminated(self.run_id, status=STATUS.get(int(exit_code), "FAILED"))

    # -- helpers ---------------------------------------------------------------------------------

    def _experiment(self, run: Any) -> str:
        name = self.config.experiment or Path(str(getattr(run.recipe_file, "path", "dltoolkit"))).stem
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                self.client.restore_experiment(found.experiment_id)
            return found.experiment_id
        return self.client.create_experiment(name, artifact_location=self.config.artifact_location or None)

    def _kept_run(self) -> Any:
        """The MLflow run this run directory logged to before (None if none, or it is gone)."""
        assert self.run_path is not None
        try:
            kept = json.loads((self.run_path / RUN_ID_FILE).read_text(encoding="utf-8"))
            found = self.client.get_run(kept["run_id"])
        except Exception:  # no file, another store, or the run was deleted: start a new MLflow run
            return None
        return found if found.info.lifecycle_stage == "active" else None

    def _keep_id(self, experiment_id: str) -> None:
        assert self.run_path is not None
        kept = {"run_id": self.run_id, "experiment_id": experiment_id, "tracking_uri": self.config.tracking_uri}
        text = json.dumps(kept, indent=1) + "\n"
        atomic_write(self.run_path / RUN_ID_FILE, lambda handle: handle.write(text.encode()))

    def _steps(self, key: str) -> set[int]:
        return {m.step for m in self.client.get_metric_history(self.run_id, key)}

    def _log_params(self, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v[:PARAM_LENGTH]) for k, v in params.items()]
        for start in range(0, len(items), BATCH):
            self.client.log_batch(self.run_id, params=items[start : start + BATCH], synchronous=True)

    def _log_changed_params(self, held: Mapping[str, str], data: Mapping[str, Any]) -> None:
        """A resume may change resumable options: new keys are logged, changed ones tagged
        ``dltk.resumed.<key>`` (MLflow parameters cannot change)."""
        params = dict(flatten(data))
        new = {k: v for k, v in params.items() if k not in held}
        if new:
            self._log_params(new)
        for key, value in params.items():
            if key in held and held[key] != value[:PARAM_LENGTH]:
                self.client.set_tag(self.run_id, f"dltk.resumed.{key}", value[:TAG_LENGTH])

    def _log_protocol(self, record: Record) -> None:
        assert record.protocol is not None
        for name, protocol in record.protocol.items():
            text = json.dumps(protocol, sort_keys=True, default=str)
            self.client.set_tag(self.run_id, f"dltk.protocol.{name}", text[:TAG_LENGTH])
        self.client.log_dict(
            self.run_id, {"epoch": record.epoch, "iteration": record.iteration, **record.protocol},
            f"protocol/eval_{record.iteration:08d}.json",
        )  # fmt: skip

    def _artifact_folder(self, path: Path) -> str:
        assert self.run_path is not None
        try:
            relative = path.resolve().parent.relative_to(self.run_path.resolve())
        except ValueError:
            return "images"
        return relative.as_posix() if str(relative) != "." else ""
