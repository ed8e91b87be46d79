"""Opening a finished run again: finding it (a run directory, a run id's downloaded files, a registered
model), verifying its files, and rebuilding its config, data, split, model and thresholds -- with what
only the opener chooses (``models.Opening``) and nothing the run chose."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toxmod.data import SPLIT_NAMES, LabeledDataset, build_dataset
from toxmod.data.datasets import scheme_of
from toxmod.data.schemes import LabelScheme
from toxmod.errors import ConfigError, DamagedFileError, ToxmodError
from toxmod.files import file_lock, read_json, require_keys
from toxmod.models import Opening, Scorer, load_scorer
from toxmod.paths import datasets_root, looks_like_path, project_root, user_cache_dir, user_roots
from toxmod.runs.record import EVALUATION_SPLIT, RunDir, verify_run
from toxmod.runs.store import NoStore, RunStore
from toxmod.spec import DataSpec
from toxmod.spec.fields import dotted, plain
from toxmod.splits import Split, read_split_folder
from toxmod.thresholds import Thresholds


@dataclass(frozen=True)
class LoadedRun:
    """A finished run rebuilt from its files: config, data, split, model, thresholds (notebooks too)."""

    directory: Path
    config: dict[str, Any]  # the run's saved config.yaml, as plain dicts and lists
    dataset: LabeledDataset
    split: Split
    scorer: Scorer
    thresholds: Thresholds

    def part(self, subset: str) -> LabeledDataset:
        """The rows of one split (train, valid, calib or holdout)."""
        if subset not in SPLIT_NAMES:
            raise ConfigError(f"subset={subset!r}; expected one of {list(SPLIT_NAMES)}")
        return self.split.part(self.dataset, subset)

    def recorded_metrics(self, subset: str) -> dict[str, float]:
        """What the run recorded for ``subset`` (holdout: ``holdout_eval.json``; others: ``metrics.json``)."""
        run = RunDir(self.directory)
        if subset == EVALUATION_SPLIT:
            record = read_json(run.holdout_eval)
            require_keys(run.holdout_eval, record, ("metrics",))
            return record["metrics"]
        prefix = f"{subset}/"
        everything = read_json(run.metrics)
        require_keys(run.metrics, everything, ())
        return {k.removeprefix(prefix): v for k, v in everything.items() if k.startswith(prefix)}


def locate_run(
    ref: str | Path, store: RunStore | NoStore, cache_dir: Path, checkpoint: str | int | None = None
) -> RunDir:
    """A local, finished run directory for ``ref``: a run directory, or a run id's files downloaded;
    ``checkpoint`` (``best`` | ``last`` | a step) opens one of the checkpoints the run kept."""
    return _located(ref, store, cache_dir).at_checkpoint(checkpoint)


def _located(ref: str | Path, store: RunStore | NoStore, cache_dir: Path) -> RunDir:
    candidate = Path(ref).expanduser()
    if candidate.is_dir():
        run = RunDir(candidate)
        if not run.holdout_eval.is_file():
            raise ToxmodError(
                f"run directory {candidate} has no {RunDir.HOLDOUT_EVAL}: the run did not finish"
            )
        verify_run(run)
        return run
    text = str(ref)
    if not text.startswith("models:/") and ("/" in text or text.startswith((".", "~"))):
        what = "a file, not a run directory" if candidate.exists() else "no such run directory"
        raise ConfigError(f"run={ref}: {what}")
    if isinstance(store, NoStore):
        raise ConfigError(f"run={ref}: not a run directory (and tracking=none cannot look up run ids)")
    if isinstance(store, RunStore):
        store.require(f"run={ref}")
    if str(ref).startswith("models:/"):  # a registered model version, e.g. models:/janitr@champion
        ref = store.resolve_model(str(ref))
    try:
        stored = store.get(str(ref))
    except ToxmodError:
        raise ToxmodError(f"run={ref}: neither a run directory nor a run id in {store.uri}") from None
    if not stored.finished:
        raise ToxmodError(f"MLflow run {ref} has status {stored.status}; only FINISHED runs can be opened")
    return _downloaded(store, stored.run_id, cache_dir)


def _downloaded(store: RunStore, run_id: str, cache_dir: Path) -> RunDir:
    """A finished run's files in ``cache_dir/<run id>``: an earlier copy that still checks out, else a
    fresh download (into ``.partial`` first, so a stopped download is never taken for a copy)."""
    run = RunDir(cache_dir / run_id)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(cache_dir / f"{run_id}.lock"):
        if run.path.is_dir():
            try:
                verify_run(run)
                return run
            except DamagedFileError:
                shutil.rmtree(run.path)
        partial = cache_dir / f"{run_id}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        try:
            verify_run(RunDir(store.download(run_id, partial)))
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        partial.rename(run.path)
    return run


def downloads_dir(opening: Opening, cache_dir: Path | None = None) -> Path:
    """Where runs opened by id are downloaded: ``cache_dir`` when given, else ``runs/`` of the
    opener's cache (the user cache by default)."""
    return cache_dir or (opening.cache_dir or user_cache_dir()) / "runs"


def default_opening(cache_dir: Path | None = None) -> Opening:
    """What opening a run from Python gives it: no server or key, the user cache, this machine's
    toxmod folders (``TOXMOD_ROOT`` or the checkout, the datasets)."""
    return Opening(cache_dir=cache_dir or user_cache_dir(), roots=(project_root(), datasets_root()))


def opening_from_config(cfg: Mapping[str, Any], files: tuple[Path, ...] = ()) -> Opening:
    """The opener's side from an entry point's config: its ``model.*`` settings (``base_url``,
    ``api_key_env``, ``pretrained``), its cache folder and its folders (``paths``)."""
    given = plain(cfg.get("model") or {})
    settings = {k: v for k, v in given.items() if v is not None}
    paths = plain(cfg["paths"])
    return Opening(
        settings=settings,
        cache_dir=Path(str(paths["cache_dir"])),
        roots=user_roots(paths),
        files=tuple(files),
    )


@dataclass(frozen=True)
class OpenedModel:
    """A finished run's model side only: config, label scheme, model and thresholds (no data read)."""

    run: RunDir
    config: dict[str, Any]  # the run's saved config.yaml, as plain dicts and lists
    scheme: LabelScheme
    scorer: Scorer
    thresholds: Thresholds

    @property
    def directory(self) -> Path:
        return self.run.path


def open_model(
    ref: str | Path,
    store: RunStore | NoStore | None = None,
    cache_dir: Path | None = None,
    allow_pickle: bool = False,
    opening: Opening | None = None,
    checkpoint: str | int | None = None,
) -> OpenedModel:
    """Open a finished run's model and thresholds without reading its data (scoring other data);
    ``checkpoint``: one the run kept besides its best (``last``, a step)."""
    if store is None and not Path(ref).expanduser().is_dir():
        raise ConfigError(f"run={ref}: not a run directory (pass a store to open a run id)")
    opening = opening or default_opening()
    run = locate_run(ref, store or NoStore(), downloads_dir(opening, cache_dir), checkpoint)
    cfg = run.saved_config()
    if cfg is None:
        raise DamagedFileError(f"{run.config}: missing")
    scheme = scheme_of(DataSpec.of(cfg.get("data")))
    scorer, thresholds = open_scorer(run.model, run.thresholds, allow_pickle, opening, scheme)
    return OpenedModel(run, cfg, scheme, scorer, thresholds)


def open_scorer(
    model: Path,
    thresholds: Path,
    allow_pickle: bool = False,
    opening: Opening | None = None,
    scheme: LabelScheme | None = None,
) -> tuple[Scorer, Thresholds]:
    """A saved model and the thresholds it is applied at, as every opener reads them (a run, a
    ``Predictor``, the MLflow pyfunc model); ``scheme``: the decisions the thresholds must name
    (default: the model's own)."""
    scorer = load_scorer(model, allow_pickle, opening)
    return scorer, Thresholds.load(thresholds, scheme or scorer.label_scheme)


def load_run(
    ref: str | Path,
    store: RunStore | NoStore | None = None,
    cache_dir: Path | None = None,
    allow_pickle: bool = False,
    opening: Opening | None = None,
    data_path: str | Path | None = None,
    keep_columns: Sequence[tuple[str, str]] = (),
    checkpoint: str | int | None = None,
) -> LoadedRun:
    """Open a finished run (a run directory, or a run id with ``store``); split hashes are verified.

    Opening never runs code from the run: its config may name only toxmod's classes, its model is
    read from arrays, JSON and safetensors (``allow_pickle``: an older pickle-format model too),
    and its thresholds are matched to the scheme's decisions by name. Nor does the run choose what is
    read or sent elsewhere: its data file must lie in the opener's folders (``opening``) unless the
    opener names it (``data_path``), and a server, key variable or weights folder comes from ``opening``.
    ``keep_columns``: other data columns to keep for evaluation (``build_dataset``).
    """
    opened = open_model(ref, store, cache_dir, allow_pickle, opening, checkpoint)
    return load_data(opened, opening or default_opening(), data_path, keep_columns)


def load_data(
    opened: OpenedModel,
    opening: Opening,
    data_path: str | Path | None = None,
    keep_columns: Sequence[tuple[str, str]] = (),
) -> LoadedRun:
    """An opened run's own data and frozen split (hashes verified) beside its model."""
    cfg = _with_opened_data(opened.config, opened.run, opening, data_path)
    dataset = build_dataset(DataSpec.of(cfg.get("data")), keep_columns)
    split, _ = read_split_folder(opened.run.split, dataset)
    thresholds = Thresholds.load(opened.run.thresholds, dataset.scheme)
    return LoadedRun(opened.directory, cfg, dataset, split, opened.scorer, thresholds)


# Keys of a saved config that name files or folders (a run id or hub name is not a path).
PATH_KEYS = (
    "data.path",
    "split.dir",
    "teacher.run",
    "model.members",
    "model.init_from",
    "model.pretrained",
)


def refuse_outside_paths(
    cfg: Mapping[str, Any],
    run: RunDir,
    opening: Opening,
    given: Sequence[str] = (),
    keys: Sequence[str] = PATH_KEYS,
    remedy: str = "pass {key}=... yourself to use it",
) -> None:
    """A saved config may name files and folders (``keys``) inside its run or the opener's folders
    only; a key the opener set (``given``) is the opener's choice. Else one line naming the key and
    the ``remedy``."""
    for key in keys:
        if any(key == g or key.startswith(f"{g}.") for g in given):
            continue
        value = dotted(cfg, key)
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if item is None or not looks_like_path(str(item)):
                continue
            if not opening.allows(str(item), (run.path,)):
                roots = ", ".join(str(r) for r in opening.roots) or "none"
                raise ConfigError(
                    f"{run.config}: {key}={item} lies outside this run and your toxmod folders "
                    f"({roots}); {remedy.format(key=key)}"
                )


def _with_opened_data(
    cfg: dict[str, Any], run: RunDir, opening: Opening, data_path: str | Path | None
) -> dict[str, Any]:
    """The run's config reading the data file the opener named, or its own one when that lies in
    the opener's folders; else one line saying how to name it."""
    cfg = copy.deepcopy(cfg)
    if data_path:
        cfg.setdefault("data", {})["path"] = str(Path(data_path).expanduser())
    else:
        remedy = "pass data_path=<the data file> to read it"
        refuse_outside_paths(cfg, run, opening, keys=("data.path",), remedy=remedy)
    return cfg


def load_run_on_split(
    ref: str,
    store: RunStore | NoStore,
    cache_dir: Path,
    split_sha256: str,
    role: str,
    opening: Opening | None = None,
    checkpoint: str | None = None,
) -> LoadedRun:
    """A finished run another run builds on (``role``: ``teacher.run``, ``model.members``), which
    must have been evaluated on the same split: its valid/calib/holdout must be unseen by both."""
    loaded = load_run(
        ref, store, cache_dir, opening=opening, checkpoint=checkpoint
    )  # NoStore: a run dir only
    recorded = read_json(loaded.directory / RunDir.HOLDOUT_EVAL).get("split_sha256")
    if recorded != split_sha256:
        raise ConfigError(
            f"{role}={ref}: that run was trained on split {str(recorded)[:12]}, this run uses split "
            f"{split_sha256[:12]}; runs built on other runs must share their split"
        )
    return loaded
