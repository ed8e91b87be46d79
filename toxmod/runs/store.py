"""The read side of the tracking store: get a run, search runs, download a run's files.

Stages (evaluate, compare, resume, and later select and report) read MLflow only through a
``RunStore``; none of them touches an MLflow client. ``tracking=none`` gives a ``NoStore``, which
answers every lookup with one line saying why it cannot.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toxmod.errors import ConfigError, ToxmodError
from toxmod.files import file_lock
from toxmod.redact import redact

FINISHED = "FINISHED"


def open_client(uri: str) -> Any:
    """An MLflow client for ``uri``, with MLflow's and its migrations' INFO lines kept out of the output.

    A SQLite store is created (or migrated) under a file lock: several runs starting at once on a
    new store would otherwise each create its tables, and all but one fail.
    """
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars in run output
    for name in ("mlflow", "alembic"):  # after the import: importing mlflow sets its logger's level
        logging.getLogger(name).setLevel(logging.WARNING)
    # it logs each database error with a traceback before raising it; the raised error is reported
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    if uri.startswith(("http://", "https://")):
        check_server(uri)
        return MlflowClient(tracking_uri=uri)
    if not uri.startswith("sqlite:///"):
        return MlflowClient(tracking_uri=uri)
    database = Path(uri.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(_lock_file(database)):
        if not database.exists() or _half_created(database):
            _create_store(database)
        client = MlflowClient(tracking_uri=uri)
        try:
            client.search_experiments(max_results=1)
        except Exception as error:  # noqa: BLE001 - MLflow and SQLAlchemy raise several kinds here
            raise ToxmodError(f"{database}: not a usable MLflow store ({_first_line(error)})") from error
    return client


def _lock_file(database: Path) -> Path:
    """The lock beside a SQLite store that its creation and its registrations hold."""
    return database.with_name(database.name + ".lock")


# A tracking server that stops answering fails a call after a few quick retries, not MLflow's
# default of 7 retries with exponential backoff (minutes of silence).
SERVER_RETRIES, SERVER_BACKOFF, SERVER_TIMEOUT_S = "2", "1", "30"


def check_server(uri: str, timeout_s: float = 5.0) -> None:
    """One line naming ``uri`` when no MLflow server answers there (before any run is started)."""
    import urllib.error
    import urllib.request

    logging.getLogger("urllib3").setLevel(logging.ERROR)  # its retry warnings: the error says it once
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", SERVER_RETRIES)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", SERVER_BACKOFF)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", SERVER_TIMEOUT_S)
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s) as answer:
            answer.read()
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise ToxmodError(
            f"tracking.uri={uri}: no MLflow tracking server answers there ({reason}); start one "
            "(docs/cluster.md) or use tracking=mlflow (a local store)"
        ) from None


def _create_store(database: Path) -> None:
    """Create a new SQLite store beside ``database`` and move it into place once its tables exist, so
    a store is either absent or complete: a full disk or a kill mid-way leaves only the ``.partial``
    file, which the next start replaces. A half-created store (``_half_created``) is moved aside."""
    from mlflow.tracking import MlflowClient

    partial = database.with_name(database.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        MlflowClient(tracking_uri=f"sqlite:///{partial}").search_experiments(max_results=1)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if database.exists():
        aside = database.with_name(f"{database.name}.half-created-{int(time.time())}")
        os.replace(database, aside)
        print(f"warning: {database} was half created and held no runs; moved aside to {aside.name}")
    os.replace(partial, database)


def _half_created(database: Path) -> bool:
    """A store whose creation stopped part-way (an older toxmod, or MLflow itself, building it in
    place when the disk filled up or the process died): no finished schema version and no runs."""
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "runs" in tables and db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]:
                return False  # it holds runs: never replaced, whatever else is wrong with it
            if "alembic_version" not in tables:
                return True
            version = db.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError:
        return database.stat().st_size == 0  # an empty file is a store that never started
    head = _schema_head()
    return version is None or (head is not None and version[0] != head)


def _schema_head() -> str | None:
    """The schema version MLflow's SQL store migrates to (its alembic head); None if MLflow's layout
    is not the one known here."""
    try:
        from alembic.script import ScriptDirectory
        from mlflow.store.db.utils import _get_alembic_config

        return str(ScriptDirectory.from_config(_get_alembic_config("sqlite://")).get_current_head())
    except (ImportError, AttributeError):
        return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


@contextlib.contextmanager
def global_tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's global tracking URI set to ``uri`` for the block (its fluent APIs, model logging and
    the registry's model lookups read it rather than the client they were called through)."""
    import mlflow
    from mlflow.tracking._tracking_service import utils

    # Restored exactly as found: MLflow writes the URI it is given into MLFLOW_TRACKING_URI, and
    # get_tracking_uri() returns its default when none was set -- restoring that would leave the
    # default in the environment, where toxmod (and MLflow users) read a URI the user chose.
    variable, chosen = os.environ.get("MLFLOW_TRACKING_URI"), getattr(utils, "_tracking_uri", None)
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        utils.set_tracking_uri(chosen)  # type: ignore[arg-type]  # None unsets it
        if variable is not None:
            os.environ["MLFLOW_TRACKING_URI"] = variable


def end_run(client: Any, run_id: str, status: str, reason: str | None = None) -> None:
    """End a tracking run; a run that did not finish says so in its name and its ``failure_reason``.

    The MLflow UI lists runs by name, so ``FAILED tfidf_logreg-janitr-a1b2`` stands out from the
    finished runs beside it; a resumed run gets its name back (``reopened_name``).
    """
    if status != "FINISHED":
        name = client.get_run(run_id).info.run_name or ""
        client.update_run(run_id, name=f"{status} {reopened_name(name)}".strip())
        if reason:
            client.set_tag(run_id, "failure_reason", redact(reason)[:5000])
    client.set_terminated(run_id, status)


def reopened_name(name: str) -> str:
    """A run's name without the status prefix ``end_run`` gave it."""
    for status in ("FAILED ", "KILLED "):
        name = name.removeprefix(status)
    return name


@dataclass(frozen=True)
class StoredRun:
    """What the store holds about one run (a plain copy, independent of MLflow's classes)."""

    run_id: str
    status: str
    experiment_id: str
    name: str
    start_time: int
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status == FINISHED

    @property
    def split_sha256(self) -> str | None:
        return self.tags.get("split_sha256")


def _stored(run: Any) -> StoredRun:
    return StoredRun(
        run_id=run.info.run_id,
        status=run.info.status,
        experiment_id=run.info.experiment_id,
        name=run.info.run_name or "",
        start_time=int(run.info.start_time or 0),
        tags=dict(run.data.tags),
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
    )


class RunStore:
    """An MLflow tracking store (SQLite file or server), read only."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._opened: Any = None

    def exists(self) -> bool:
        """Whether there is a store to read (a SQLite file that exists; a server or other URI is
        asked when first used): a command that only reads never creates an empty store."""
        return not self.uri.startswith("sqlite:///") or Path(self.uri.removeprefix("sqlite:///")).is_file()

    def require(self, what: str) -> None:
        """One line when there is no store to read ``what`` from (set tracking.uri or MLFLOW_TRACKING_URI)."""
        if not self.exists():
            raise ConfigError(
                f"{what}: there is no MLflow store at {self.uri} (set tracking.uri=..., or "
                "MLFLOW_TRACKING_URI, to the store your runs are in)"
            )

    @property
    def _client(self) -> Any:
        if self._opened is None:  # opened on first use: building a store object reads nothing
            self._opened = open_client(self.uri)
        return self._opened

    def get(self, run_id: str) -> StoredRun:
        """The run with this id: a one-line ToxmodError when the store has none; other errors propagate."""
        from mlflow.exceptions import MlflowException

        try:
            return _stored(self._client.get_run(run_id))
        except MlflowException as error:
            if error.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise ToxmodError(f"run={run_id!r}: no such run in {self.uri}") from None
            raise

    def has_run(self, run_id: str) -> bool:
        """Whether the store knows ``run_id`` (database errors propagate)."""
        try:
            self.get(run_id)
        except ToxmodError:
            return False
        return True

    def experiment_ids(self, names: Sequence[str] | None = None) -> list[str]:
        """Ids of the named experiments (all when None); unknown names are a one-line error."""
        if not names:
            return [e.experiment_id for e in self._client.search_experiments()]
        found = {name: self._client.get_experiment_by_name(name) for name in names}
        missing = [name for name, experiment in found.items() if experiment is None]
        if missing:
            raise ToxmodError(f"experiments={missing} not found in the tracking store {self.uri}")
        return [experiment.experiment_id for experiment in found.values()]

    def search(
        self,
        experiments: Sequence[str] | None = None,
        status: str | None = FINISHED,
        tags: Mapping[str, str] | None = None,
        max_results: int = 50,
    ) -> list[StoredRun]:
        """Runs newest first, filtered by status and exact tag values (e.g. ``split_sha256``)."""
        conditions = [f"attributes.status = '{status}'"] if status else []
        conditions += [f"tags.`{key}` = '{_quoted(value)}'" for key, value in (tags or {}).items()]
        ids = self.experiment_ids(experiments)
        if not ids:
            return []
        runs = self._client.search_runs(
            ids,
            filter_string=" and ".join(conditions),
            order_by=["attributes.start_time DESC"],
            max_results=max_results,
        )
        return [_stored(run) for run in runs]

    def mark_failed(self, run_id: str, reason: str) -> None:
        """End a run FAILED and say why (tag ``failure_reason``)."""
        end_run(self._client, run_id, "FAILED", reason)

    def download(self, run_id: str, destination: Path) -> Path:
        """Every artifact of the run into ``destination`` (no progress bars); returns it."""
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        destination.mkdir(parents=True, exist_ok=True)
        self._client.download_artifacts(run_id, "", str(destination))
        return destination

    def experiment_name(self, experiment_id: str) -> str:
        return str(self._client.get_experiment(experiment_id).name)

    def has_artifact(self, run_id: str, path: str) -> bool:
        """Whether the run logged ``path`` (e.g. ``holdout_eval.json``, written only by finished runs)."""
        folder, _, name = path.rpartition("/")
        return any(item.path == path for item in self._client.list_artifacts(run_id, folder or None))

    # -- the model registry (needs a database store: SQLite or a server) ---------------------------

    def register(self, name: str, model_uri: str, run_id: str, alias: str) -> tuple[str, bool]:
        """Point ``alias`` of registered model ``name`` at a version of ``model_uri`` (``run_id``'s
        pyfunc model). A version of that run already registered is reused, so re-running creates
        none; returns ``(version, created)``."""
        with global_tracking_uri(self.uri), self._registry_lock():
            return self._register(name, model_uri, run_id, alias)

    @contextlib.contextmanager
    def _registry_lock(self) -> Iterator[None]:
        """Registrations into one SQLite store, one at a time (a server serialises its own writes;
        ``_register`` also settles a race there)."""
        if not self.uri.startswith("sqlite:///"):
            yield
            return
        with file_lock(_lock_file(Path(self.uri.removeprefix("sqlite:///")))):
            yield

    def _versions_of(self, name: str, run_id: str) -> list[Any]:
        found = self._client.search_model_versions(f"name = '{_quoted(name)}'")
        return sorted((v for v in found if v.run_id == run_id), key=lambda v: int(v.version))

    def _register(self, name: str, model_uri: str, run_id: str, alias: str) -> tuple[str, bool]:
        from mlflow.exceptions import MlflowException

        client = self._client
        try:
            client.get_registered_model(name)
        except MlflowException:
            try:
                client.create_registered_model(name)
            except MlflowException as error:  # another process created it first
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
        existing = self._versions_of(name, run_id)
        created = not existing
        if created:
            # a logged model (models:/m-<id>) is named by id too: a tracking server checks the source
            model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
            mine = client.create_model_version(name, model_uri, run_id=run_id, model_id=model_id)
            existing = self._versions_of(name, run_id)
            if str(existing[0].version) != str(mine.version):  # another process registered it too
                client.delete_model_version(name, mine.version)
                created = False
        version = str(existing[0].version)
        client.set_registered_model_alias(name, alias, version)
        return version, created

    def resolve_model(self, uri: str) -> str:
        """The run behind ``models:/<name>@<alias>`` or ``models:/<name>/<version>``."""
        from mlflow.exceptions import MlflowException

        reference = uri.removeprefix("models:/")
        name, at, alias = reference.partition("@")
        try:
            if at:
                version = self._client.get_model_version_by_alias(name, alias)
            else:
                name, _, number = reference.rpartition("/")
                version = self._client.get_model_version(name, number)
        except MlflowException:
            raise ToxmodError(f"run={uri}: no such registered model version in {self.uri}") from None
        if not version.run_id:
            raise ToxmodError(f"run={uri}: that model version is not from a toxmod run")
        return str(version.run_id)

    def download_artifact(self, run_id: str, path: str, destination: Path) -> Path:
        """One artifact (a file or folder) of the run into ``destination``; returns its local path."""
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        destination.mkdir(parents=True, exist_ok=True)
        return Path(self._client.download_artifacts(run_id, path, str(destination)))


def _quoted(value: str) -> str:
    return str(value).replace("'", "\\'")


class NoStore:
    """``tracking=none``: nothing recorded, so nothing to look up."""

    uri = "none"

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise ConfigError("tracking=none keeps no run store: pass a run directory, or tracking=mlflow")

    get = search = download = download_artifact = has_artifact = experiment_ids = mark_failed = _refuse
    register = resolve_model = experiment_name = _refuse

    def has_run(self, run_id: str) -> bool:
        return False
