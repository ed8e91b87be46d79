"""Run tracking: MLflow against a local SQLite store by default, or nothing (``tracking=none``)."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from toxmod.errors import is_interrupt

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

    @contextlib.contextmanager
    def run(
        self,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        resume_run_id: str | None = None,
    ) -> Iterator[NullTracker]:
        yield self

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...

    def set_tags(self, tags: Mapping[str, Any]) -> None: ...

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...

    def log_artifacts(self, directory: str | Path, artifact_path: str | None = None) -> None: ...


class MlflowTracker:
    """One MLflow run per training run; FAILED when the body raises, KILLED on Ctrl-C, else FINISHED."""

    enabled = True

    def __init__(self, uri: str, artifact_root: str | None = None, experiment: str = "toxmod") -> None:
        from mlflow.tracking import MlflowClient

        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)

        self.uri = uri
        self.artifact_root = artifact_root
        self.experiment_name = experiment
        self.client = MlflowClient(tracking_uri=uri)
        self.run_id: str | None = None

    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment_name)
        if found is not None:
            return found.experiment_id
        location = None
        if self.artifact_root:
            location = (Path(self.artifact_root).expanduser().resolve() / self.experiment_name).as_uri()
        return self.client.create_experiment(self.experiment_name, artifact_location=location)

    def __getstate__(self) -> dict[str, Any]:
        # The client holds a database engine; worker processes (DDP spawn) open their own.
        return {k: v for k, v in self.__dict__.items() if k != "client"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        from mlflow.tracking import MlflowClient

        self.__dict__.update(state)
        self.client = MlflowClient(tracking_uri=self.uri)

    @contextlib.contextmanager
    def run(
        self,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        resume_run_id: str | None = None,
    ) -> Iterator[MlflowTracker]:
        """A new run, or ``resume_run_id`` reopened (RUNNING again) to continue a chunked/killed run."""
        if resume_run_id:
            self.client.update_run(resume_run_id, status="RUNNING")
            self.run_id = resume_run_id
            self.set_tags(dict(tags or {}))
        else:
            run = self.client.create_run(self._experiment_id(), run_name=run_name, tags=dict(tags or {}))
            self.run_id = run.info.run_id
        try:
            yield self
        except BaseException as error:
            self.client.set_terminated(self.run_id, "KILLED" if is_interrupt(error) else "FAILED")
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
