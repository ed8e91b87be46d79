"""The write side of run tracking: MLflow (a local SQLite store by default) or nothing (tracking=none)."""

from __future__ import annotations

import contextlib
import json
import math
import re
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from toxmod.errors import ConfigError, DiskFullError, StoppedEarly, ToxmodError, disk_full, is_interrupt
from toxmod.files import file_lock
from toxmod.runs.store import (
    NoStore,
    RunStore,
    end_run,
    global_tracking_uri,
    open_client,
    reopened_name,
)

PARAM_VALUE_LIMIT = 6000
BATCH_LIMIT = 100

# Tags toxmod writes itself: what readers act on (``run_dir`` is where gc and compare write) or
# trust (hashes, kinds, provenance). A config's ``tags`` may add others, never set these.
OWN_TAGS = frozenset(
    {
        "split_sha256",
        "data_sha256",
        "corpus_sha256",
        "git_sha",
        "dataset",
        "model",
        "model_kind",
        "scheme",
        "primary_label",
        "split_source",
        "run_dir",
        "run_token",
        "job_key",
        "allow_leakage",
        "leakage_found",
        "warnings",
        "calib_too_small",
        "chance_warnings",
        "sweep_id",
        "failure_reason",
        "pyfunc_model_uri",
        "source_run_id",
        "source_run_dir",
        "source_checkpoint",
        "study_storage",
        "best_trial",
        "best_run_id",
        "pareto_trials",
    }
)
OWN_TAG_PREFIXES = (
    "toxmod.",
    "mlflow.",
    "process.",
    "env.",
    "hardware.",
    "export.",
    "checkpoint.",
    "teacher.",
    "distill.",
)


def check_user_tags(tags: Any, source: str = "tags") -> dict[str, str]:
    """A config's extra tags as strings; one naming a tag toxmod writes itself (``OWN_TAGS``, or
    starting with one of ``OWN_TAG_PREFIXES``) is a one-line error: a run may not point ``run_dir``
    elsewhere or pass for another kind of run."""
    given = {str(k): str(v) for k, v in (tags or {}).items()}
    for key in given:
        if key in OWN_TAGS or key.startswith(OWN_TAG_PREFIXES):
            raise ConfigError(f"{source}.{key}: a tag toxmod writes itself; a config may not set it")
    return given


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

    def study_parent(self, study: str, folder: Path, tags: Mapping[str, str] | None = None) -> None:
        return None

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...

    def set_tags(self, tags: Mapping[str, Any]) -> None: ...

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...

    def log_artifacts(self, directory: str | Path, artifact_path: str | None = None) -> None: ...

    def log_pyfunc_model(self, python_model: Any, artifacts: Mapping[str, str], **options: Any) -> None:
        return None

    def link_model_evidence(self, *args: Any, **kwargs: Any) -> None: ...

    def link_metrics(self, *args: Any, **kwargs: Any) -> None: ...

    def describe(self, card: str) -> None: ...


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
# What a run is, for filtering in the MLflow UI (`tags."toxmod.kind" = 'model'`) and in the stages:
# model (a trained model), export (an exported model), report, sweep (a sweep's parent run).
KIND_TAG = "toxmod.kind"
STUDY_TAG = "toxmod.study"  # a search's study: on its parent run (kind study) and on every trial's run
EVIDENCE_SPLITS = ("valid", "holdout")  # the datasets a logged model's metrics are linked to
DATASET_DIGEST_LENGTH = 36  # MLflow's limit on a dataset digest: the split hash's first 36 hex digits


def logged_model_name(name: str) -> str:
    """A LoggedModel's name (``tfidf_xgboost-janitr``): letters, digits, ``.``, ``_`` and ``-``; never
    ``model``, which MLflow 3 would resolve ``runs:/<id>/model`` to instead of the run's model folder."""
    cleaned = re.sub(r"[^\w.-]+", "-", name).strip("-")
    return cleaned if cleaned and cleaned != "model" else PYFUNC_MODEL_NAME


class TrackingServerLost(ToxmodError):
    """The tracking server stopped answering during a run (exit 1: the command was right)."""

    exit_code = 1


def server_lost(uri: str, error: BaseException, run_dir: str) -> TrackingServerLost | None:
    """``error`` as one line when it is a tracking server at ``uri`` that no longer answers: the run
    is FAILED in its folder (checkpoints kept) and continues with ``resume=`` once the server is back."""
    if not uri.startswith(("http://", "https://")):
        return None
    if "Max retries exceeded" not in str(error) and "Connection refused" not in str(error):
        return None
    return TrackingServerLost(
        f"tracking.uri={uri} stopped answering during the run; it is FAILED in {run_dir} (checkpoints "
        f"kept): once the server answers, continue it with python -m toxmod.train resume={run_dir} "
        f"tracking.uri={uri}"
    )


class MlflowTracker:
    """One MLflow run per training run; FAILED when the body raises, KILLED on Ctrl-C, else FINISHED."""

    enabled = True

    def __init__(self, uri: str, artifact_root: str | None = None, experiment: str = "toxmod") -> None:
        self.uri = uri
        self.artifact_root = artifact_root
        self.experiment_name = experiment
        self._client: Any = None
        self.run_id: str | None = None
        self._linked_models: set[str | None] = set()  # a model is this run's input once

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
            tags = {**(tags or {}), "sweep_id": sweep_id, "sweep": "parent", KIND_TAG: "sweep"}
            run = self.client.create_run(self._experiment_id(), run_name=f"sweep {sweep_id}", tags=tags)
            record.write_text(json.dumps({"run_id": run.info.run_id, "uri": self.uri}) + "\n")
            return run.info.run_id

    def study_parent(self, study: str, folder: Path, tags: Mapping[str, str] | None = None) -> str:
        """The MLflow run of a search's study (found by its ``toxmod.study`` tag, RUNNING again, or made),
        recorded in this sweep's folder so the trials' jobs nest under it as under a sweep's parent."""
        folder.mkdir(parents=True, exist_ok=True)
        found = self.client.search_runs(
            [self._experiment_id()],
            filter_string=f"tags.`{STUDY_TAG}` = '{study}' and tags.`{KIND_TAG}` = 'study'",
            max_results=1,
        )
        if found:
            run_id = found[0].info.run_id
            self.client.update_run(run_id, status="RUNNING", name=f"search {study}")
        else:
            tags = {**(tags or {}), STUDY_TAG: study, "sweep": "parent", KIND_TAG: "study"}
            run_id = self.client.create_run(
                self._experiment_id(), run_name=f"search {study}", tags=tags
            ).info.run_id
        record = folder / f"{PARENT_RUN_PREFIX}{self.experiment_name}.json"
        record.write_text(json.dumps({"run_id": run_id, "uri": self.uri}) + "\n")
        return str(run_id)

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
        run_dir = str(tags.get("run_dir", "<its run dir>"))
        try:
            yield self
        except BaseException as error:
            status = "KILLED" if is_interrupt(error) or isinstance(error, StoppedEarly) else "FAILED"
            if isinstance(error, StoppedEarly):
                self.set_tags(error.tags)
            try:
                end_run(self.client, self.run_id, status, f"{type(error).__name__}: {error}".splitlines()[0])
            except Exception as ending:  # noqa: BLE001 - the store itself failed (a full disk): keep the cause
                full = disk_full(ending) or disk_full(error) or server_lost(self.uri, ending, run_dir)
                if full is None:
                    raise
                raise full from error  # the run stays RUNNING until `toxmod.runs gc` marks it FAILED
            full = disk_full(error)
            if full is not None and not isinstance(error, DiskFullError):
                raise full from error
            raise
        try:
            self.client.set_terminated(self.run_id, "FINISHED")
        except Exception as ending:  # noqa: BLE001 - only a lost server is turned into one line
            lost = server_lost(self.uri, ending, run_dir)
            if lost is None:
                raise
            raise lost from ending

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

    def log_pyfunc_model(
        self,
        python_model: Any,
        artifacts: Mapping[str, str],
        name: str = "",
        the_runs_model: bool = True,
        **options: Any,
    ) -> str:
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
                name=logged_model_name(name), python_model=python_model, artifacts=dict(artifacts), **options
            )
        if the_runs_model:  # not a kept checkpoint's: select registers the run's own model
            self.set_tags({"pyfunc_model_uri": info.model_uri})
        else:  # logged mid-run (a kept checkpoint): leaving the fluent run ended it; it goes on
            self.client.update_run(self.run_id, status="RUNNING")
        return str(info.model_uri)

    def link_model_evidence(
        self, model_uri: str, data_name: str, data_path: str, split_sha256: str, metrics: Mapping[str, float]
    ) -> None:
        """The logged model's valid and holdout metrics, linked to it and to the datasets they were
        measured on (``<data>.valid`` / ``<data>.holdout``, digest = the split hash, logged as the run's
        inputs with context valid / holdout): MLflow 3's Models view and ``search_logged_models``
        compare models by holdout metrics on the same dataset."""
        for split in EVIDENCE_SPLITS:
            source = {"uri": data_path, "split_sha256": split_sha256, "split": split}
            measured = {k: v for k, v in metrics.items() if k.startswith(f"{split}/")}
            self.link_metrics(model_uri, f"{data_name}.{split}", split_sha256, source, split, measured)

    def link_metrics(
        self,
        model_uri: str | None,
        dataset: str,
        digest: str,
        source: Mapping[str, Any],
        context: str,
        metrics: Mapping[str, float],
    ) -> None:
        """``metrics`` measured on ``dataset`` (name + digest, logged as this run's input), linked to
        the logged model ``model_uri`` (``models:/<model id>``) when there is one: the Models view then
        shows one model's metrics on several datasets side by side (an evaluation run links another
        run's model)."""
        import time

        from mlflow.entities import Dataset, DatasetInput, InputTag, LoggedModelInput, Metric

        model_id = model_uri.rstrip("/").rsplit("/", 1)[-1] if model_uri else None
        digest = digest[:DATASET_DIGEST_LENGTH]
        now = int(time.time() * 1000)
        data = Dataset(name=dataset, digest=digest, source_type="local", source=json.dumps(dict(source)))
        inputs = [DatasetInput(data, tags=[InputTag("mlflow.data.context", context)])]
        models = [LoggedModelInput(model_id)] if model_id and model_id not in self._linked_models else None
        self.client.log_inputs(self.run_id, datasets=inputs, models=models)
        self._linked_models.add(model_id)
        linked = [
            Metric(key, float(value), now, 0, model_id=model_id, dataset_name=dataset, dataset_digest=digest)
            for key, value in metrics.items()
            if value is not None and math.isfinite(float(value))
        ]
        for start in range(0, len(linked), BATCH_LIMIT):
            self.client.log_batch(self.run_id, metrics=linked[start : start + BATCH_LIMIT])

    def describe(self, card: str) -> None:
        """The run's description in the MLflow UI (``mlflow.note.content``, markdown)."""
        self.set_tags({"mlflow.note.content": card})


Tracker = MlflowTracker | NullTracker

__all__ = ["MlflowTracker", "NullTracker", "Tracker", "flatten"]
