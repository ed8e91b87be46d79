"""The write side of run tracking: MLflow (a local SQLite store by default) or nothing (tracking=none)."""

from __future__ import annotations

import contextlib
import json
import math
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from toxmod.errors import is_interrupt
from toxmod.runs.store import (
    NoStore,
    RunStore,
    end_run,
    file_lock,
    global_tracking_uri,
    open_client,
    reopened_name,
)

PARAM_VALUE_LIMIT = 6000
BATCH_LIMIT = 100


def flatten(
    config: Mapping[str, Any], prefix: str = "", limit: int | None = PARAM_VALUE_LIMIT
) -> dict[str, str]:
    """Nested mapping -> ``{"model.max_depth": "4", ...}`` (lists kept as their string form).

    Values are cut to ``limit`` characters (MLflow's parameter limit; ``None``: whole).
    """
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}.", limit))
        else:
            flat[name] = str(value)[:limit]
    return flat


class NullTracker:
    """Tracks nothing; the run directory is still written."""

    run_id: str | None = None
    enabled = False

    def store(self) -> NoStore:
        """Nothing recorded, so nothing to read back."""
        return NoStore()

    @contextlib.contextmanager
    def run(
        self,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        resume_run_id: str | None = None,
        parent_run_id: str | None = None,
    ) -> Iterator[NullTracker]:
        yield self

    def sweep_parent(self, sweep_id: str, folder: Path, tags: Mapping[str, str] | None = None) -> None:
        return None

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...

    def set_tags(self, tags: Mapping[str, Any]) -> None: ...

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...

    def log_artifacts(self, directory: str | Path, artifact_path: str | None = None) -> None: ...

    def log_pyfunc_model(self, python_model: Any, artifacts: Mapping[str, str], **options: Any) -> None:
        return None


class CurveRecorder:
    """Passes a model's per-step curves on to the tracker and keeps them for the run's plots."""

    enabled = True

    def __init__(self, tracker: Any) -> None:
        self.tracker = tracker
        self.points: dict[str, list[tuple[int, float]]] = {}

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if self.tracker.enabled:
            self.tracker.log_metrics(metrics, step)
        if step is not None:
            for name, value in metrics.items():
                self.points.setdefault(name, []).append((int(step), float(value)))


# MLflow 3's UI opens an experiment without this tag in its GenAI workspace ("Evaluation runs");
# model training experiments open on the runs table with the training views.
PYFUNC_MODEL_NAME = "pyfunc"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
PARENT_RUN_PREFIX = "mlflow-parent-"  # + experiment name + .json, in a sweep's folder


class MlflowTracker:
    """One MLflow run per training run; FAILED when the body raises, KILLED on Ctrl-C, else FINISHED."""

    enabled = True

    def __init__(self, uri: str, artifact_root: str | None = None, experiment: str = "toxmod") -> None:
        self.uri = uri
        self.artifact_root = artifact_root
        self.experiment_name = experiment
        self._client: Any = None
        self.run_id: str | None = None

    @property
    def client(self) -> Any:
        """The MLflow client, opened on first use: a run that fails on its config touches no store."""
        if self._client is None:
            self._client = open_client(self.uri)
        return self._client

    def store(self) -> RunStore:
        """The read side of the same tracking store."""
        return RunStore(self.uri)

    def _experiment_id(self) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(self.experiment_name)
        if found is not None:
            if EXPERIMENT_KIND_TAG not in found.tags:  # made by an older toxmod, or by MLflow itself
                self.client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
            return found.experiment_id
        location = None
        if self.artifact_root:
            location = (Path(self.artifact_root).expanduser().resolve() / self.experiment_name).as_uri()
        try:
            return self.client.create_experiment(
                self.experiment_name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
            )
        except MlflowException:  # another run created it a moment ago
            found = self.client.get_experiment_by_name(self.experiment_name)
            if found is None:
                raise
            return found.experiment_id

    def __getstate__(self) -> dict[str, Any]:
        # The client holds a database engine; worker processes (DDP spawn) open their own.
        return {**self.__dict__, "_client": None}

    def sweep_parent(self, sweep_id: str, folder: Path, tags: Mapping[str, str] | None = None) -> str:
        """The MLflow run that groups a sweep's jobs (created by the first job, under a file lock, and
        recorded in the sweep folder so every job, in any process, nests under the same one)."""
        folder.mkdir(parents=True, exist_ok=True)
        record = folder / f"{PARENT_RUN_PREFIX}{self.experiment_name}.json"
        with file_lock(folder / ".parent.lock"):
            if record.is_file():
                return str(json.loads(record.read_text())["run_id"])
            tags = {**(tags or {}), "sweep_id": sweep_id, "sweep": "parent"}
            run = self.client.create_run(self._experiment_id(), run_name=f"sweep {sweep_id}", tags=tags)
            record.write_text(json.dumps({"run_id": run.info.run_id, "uri": self.uri}) + "\n")
            return run.info.run_id

    @contextlib.contextmanager
    def run(
        self,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        resume_run_id: str | None = None,
        parent_run_id: str | None = None,
    ) -> Iterator[MlflowTracker]:
        """A new run (nested under ``parent_run_id``: a sweep), or ``resume_run_id`` reopened (RUNNING
        again) to continue a chunked/killed run."""
        tags = {**(tags or {}), **({"mlflow.parentRunId": parent_run_id} if parent_run_id else {})}
        if resume_run_id:
            name = self.client.get_run(resume_run_id).info.run_name or ""
            self.client.update_run(resume_run_id, status="RUNNING", name=reopened_name(name))
            self.run_id = resume_run_id
            self.set_tags(dict(tags or {}))
        else:
            run = self.client.create_run(self._experiment_id(), run_name=run_name, tags=dict(tags or {}))
            self.run_id = run.info.run_id
        try:
            yield self
        except BaseException as error:
            status = "KILLED" if is_interrupt(error) else "FAILED"
            end_run(self.client, self.run_id, status, f"{type(error).__name__}: {error}".splitlines()[0])
            raise
        self.client.set_terminated(self.run_id, "FINISHED")

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:PARAM_VALUE_LIMIT]) for k, v in params.items()]
        for start in range(0, len(items), BATCH_LIMIT):
            self.client.log_batch(self.run_id, params=items[start : start + BATCH_LIMIT])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(k, float(v), now, step or 0)
            for k, v in metrics.items()
            if v is not None and not math.isnan(float(v))
        ]
        for start in range(0, len(items), BATCH_LIMIT):
            self.client.log_batch(self.run_id, metrics=items[start : start + BATCH_LIMIT])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_artifacts(self, directory: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, str(directory), artifact_path)

    def log_pyfunc_model(self, python_model: Any, artifacts: Mapping[str, str], **options: Any) -> str:
        """Log an MLflow pyfunc model from this run (a LoggedModel in MLflow 3, shown under "Logged
        models"); returns its ``models:/<model_id>`` URI, also kept as the run's ``pyfunc_model_uri`` tag.

        Model logging is MLflow's fluent API, which works on the globally active run: this run is made
        active (under this tracker's URI) for the call only. Leaving it sets the run FINISHED, so this
        is the last thing a run records.
        """
        import mlflow

        with global_tracking_uri(self.uri), mlflow.start_run(run_id=self.run_id), warnings.catch_warnings():
            # the signature is given; MLflow still suggests an input example (it would load and
            # run the model once more at logging time)
            warnings.filterwarnings("ignore", message=".*input example.*", category=UserWarning)
            warnings.filterwarnings("ignore", message=".*type hint.*", category=UserWarning)
            # named "pyfunc", not "model": MLflow 3 resolves runs:/<id>/<name> paths to a logged
            # model of that name first, which would hide the run's own model/ folder
            info = mlflow.pyfunc.log_model(
                name=PYFUNC_MODEL_NAME, python_model=python_model, artifacts=dict(artifacts), **options
            )
        self.set_tags({"pyfunc_model_uri": info.model_uri})
        return str(info.model_uri)


Tracker = MlflowTracker | NullTracker

__all__ = ["MlflowTracker", "NullTracker", "Tracker", "flatten"]
