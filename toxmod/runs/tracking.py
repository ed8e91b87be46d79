"""The write side of run tracking: MLflow (a local SQLite store by default) or nothing (tracking=none)."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from toxmod.errors import is_interrupt
from toxmod.runs.store import NoStore, RunStore, end_run, file_lock, open_client, reopened_name

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
            return found.experiment_id
        location = None
        if self.artifact_root:
            location = (Path(self.artifact_root).expanduser().resolve() / self.experiment_name).as_uri()
        try:
            return self.client.create_experiment(self.experiment_name, artifact_location=location)
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


Tracker = MlflowTracker | NullTracker

__all__ = ["MlflowTracker", "NullTracker", "Tracker", "flatten"]
