"""The teacher's outputs for a student: calibrated logits over the transfer set, computed once.

A teacher is any finished run (any model kind: it is read through the scoring interface). Its scores
on valid fit the calibration temperatures; its scores on the transfer set (the train split, then any
unlabeled texts of ``distill.transfer``) become logits through the scheme's link and are divided by
those temperatures. For ``distill=kd_hidden`` the cache also holds the teacher's layer
representations (each layer's hidden states averaged over a text's real tokens). With cross-fitted teacher
outputs (``distill.teacher_outputs``: the teacher run's out-of-fold scores, ``crossfit/``), each train
text's logits come from a copy of the teacher that never saw it; unlabeled transfer texts are scored by
the teacher itself. The result is
stored under ``<cache_dir>/teacher/<key>/`` where the key hashes everything that determines it (the
teacher's model files, the texts, the split hash, the calibration, the layers), so a sweep of
students computes it once --
concurrent jobs wait on a file lock -- and a changed teacher or data gets a new entry. Each file's
SHA-256 is recorded in ``manifest.json`` (written last); a file that no longer matches is refused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toxmod.errors import ConfigError, DamagedFileError
from toxmod.evaluation.metrics import calibration_change
from toxmod.evaluation.scoring import score_split
from toxmod.files import file_lock, file_sha256, read_json, require_keys, verify_listed
from toxmod.models.base import HiddenTargets, Opening, Scorer, TeacherTargets
from toxmod.models.capabilities import LayerSource, Student, encoder_layers
from toxmod.models.crossfit import OutOfFold, array_sha256, texts_sha256
from toxmod.models.temperature import fit_temperatures, link_for
from toxmod.models.transformer.losses import HiddenStateLoss, layer_map_pairs
from toxmod.progress import console
from toxmod.runs.opening import LoadedRun, load_run_on_split
from toxmod.runs.record import RunDir
from toxmod.runs.store import NoStore, RunStore

LOGITS_FILE = "logits.npy"
HIDDEN_FILE = "hidden.npy"  # (texts, layers, width): each cached teacher layer's masked token mean
CALIBRATION_FILE = "calibration.json"
MANIFEST_FILE = "manifest.json"
CALIBRATIONS = ("temperature", "none")
HIDDEN_LOSSES = HiddenStateLoss.LOSSES
MIN_TEACHER_SEEDS = 3
SMALL_DATA_ROWS = 5_000


TEACHER_OUTPUTS = ("auto", "crossfit", "full")


def directory_sha256(directory: Path) -> str:
    """SHA-256 over a folder's files (relative names and contents), independent of listing order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode("utf-8") + b"\0")
        digest.update(file_sha256(path).encode("ascii"))
    return digest.hexdigest()


@dataclass
class TeacherCache:
    """One cache entry: where it lives, what it was computed from, and whether this run built it."""

    directory: Path
    key: str
    inputs: dict[str, Any]
    built: bool = False
    info: dict[str, float] = field(default_factory=dict)

    @property
    def manifest(self) -> Path:
        return self.directory / MANIFEST_FILE

    def read(self) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
        """The cached logits and hidden states (None if not cached), each file checked against the
        manifest's hash first."""
        manifest = read_json(self.manifest)
        require_keys(self.manifest, manifest, ("files",))
        try:
            verify_listed(self.directory, manifest["files"], self.manifest, skip=(MANIFEST_FILE,))
        except DamagedFileError as error:
            raise DamagedFileError(f"{error} (delete {self.directory} to rebuild it)") from None
        for required in (LOGITS_FILE, CALIBRATION_FILE):
            if required not in manifest["files"]:
                raise DamagedFileError(f"{self.manifest}: {required} is not listed")
        logits = self._array(LOGITS_FILE)
        hidden = self._array(HIDDEN_FILE) if HIDDEN_FILE in manifest["files"] else None
        return logits, hidden, manifest

    def _array(self, name: str) -> np.ndarray:
        path = self.directory / name
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, OSError) as error:
            raise DamagedFileError(f"{path}: not a readable array ({error})") from None

    def write(
        self, logits: np.ndarray, calibration: dict[str, Any], hidden: np.ndarray | None = None
    ) -> None:
        """Write the entry through a temporary folder, so a killed build leaves no half entry."""
        staging = self.directory.with_name(self.directory.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            self._stage(staging, logits, calibration, hidden)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)  # a full disk or a kill leaves nothing behind
            raise
        shutil.rmtree(self.directory, ignore_errors=True)
        staging.rename(self.directory)

    def _stage(
        self, staging: Path, logits: np.ndarray, calibration: dict[str, Any], hidden: np.ndarray | None
    ) -> None:
        np.save(staging / LOGITS_FILE, np.asarray(logits, dtype=np.float32), allow_pickle=False)
        names = [LOGITS_FILE, CALIBRATION_FILE]
        if hidden is not None:
            np.save(staging / HIDDEN_FILE, np.asarray(hidden, dtype=np.float32), allow_pickle=False)
            names.append(HIDDEN_FILE)
        (staging / CALIBRATION_FILE).write_text(json.dumps(calibration, indent=2) + "\n")
        files = {name: file_sha256(staging / name) for name in names}
        manifest = {"key": self.key, "inputs": self.inputs, "shape": list(logits.shape), "files": files}
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")


def teacher_targets(
    settings: Any,
    ref: str,
    train_texts: Sequence[str],
    split_sha256: str,
    store: RunStore | NoStore,
    cache_dir: Path,
    extra_texts: Sequence[str] = (),
    opening: Opening | None = None,
) -> tuple[TeacherTargets, TeacherCache]:
    """The teacher's calibrated logits (and, for ``distill=kd_hidden``, its layer representations)
    for the transfer set -- ``train_texts`` then ``extra_texts`` -- cached, with the KD settings
    (``distill.*``) of the teacher run ``ref`` (``teacher.run``)."""
    calibration = str(settings.get("calibration", "temperature"))
    teacher = load_run_on_split(ref, store, cache_dir / "runs", split_sha256, "teacher.run", opening)
    check_seeds(ref, teacher.scorer.neural_models, len(train_texts), bool(settings.get("allow_single_seed")))
    layers = teacher_layers(settings, teacher.scorer, ref)
    out_of_fold = teacher_out_of_fold(settings, teacher, ref, train_texts)
    transfer = [*train_texts, *extra_texts]
    inputs: dict[str, Any] = {
        "teacher_model_sha256": directory_sha256(teacher.directory / "model"),
        "texts_sha256": texts_sha256(transfer),
        "n_texts": len(transfer),
        "n_extra_texts": len(extra_texts),
        "split_sha256": split_sha256,
        "calibration": calibration,
        "scheme": teacher.dataset.scheme.describe(),
        "hidden_layers": list(layers),
    }
    if out_of_fold is not None:  # the folds and their scores decide the train rows' logits
        inputs["out_of_fold"] = {
            "folds": out_of_fold.k,
            "seed": out_of_fold.seed,
            "folds_sha256": out_of_fold.folds_sha256,
            "scores_sha256": array_sha256(out_of_fold.scores),
        }
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode("utf-8")).hexdigest()
    entry = TeacherCache(cache_dir / "teacher" / key[:24], key, {**inputs, "teacher": ref})
    entry.directory.parent.mkdir(parents=True, exist_ok=True)
    waited = time.perf_counter()
    with file_lock(entry.directory.with_name(entry.directory.name + ".lock")):
        waited = time.perf_counter() - waited
        if not entry.manifest.is_file():
            started = time.perf_counter()
            _build(entry, teacher, transfer, calibration, layers, out_of_fold)
            build_seconds = time.perf_counter() - started
    logits, hidden, _ = entry.read()
    for name, rows in ((LOGITS_FILE, logits), (HIDDEN_FILE, hidden)):
        if rows is not None and rows.shape[0] != len(transfer):
            counts = f"{rows.shape[0]} rows for {len(transfer)} texts"
            raise DamagedFileError(f"{entry.directory / name}: {counts}")
    calibration_record = read_json(entry.directory / CALIBRATION_FILE)
    entry.info = {k: float(v) for k, v in calibration_record.items() if isinstance(v, (int, float))}
    entry.info["transfer_texts"] = float(len(transfer))
    entry.info["cache_lock_wait_seconds"] = waited
    if entry.built:
        entry.info["cache_build_seconds"] = build_seconds
    entry.info["out_of_fold_folds"] = float(out_of_fold.k if out_of_fold is not None else 0)
    how = f"out-of-fold ({out_of_fold.k} folds) for the train rows" if out_of_fold else "its own scores"
    console.print(
        f"teacher {ref}: {'computed' if entry.built else 'read'} its outputs for {len(transfer)} texts "
        f"({len(train_texts)} train + {len(extra_texts)} unlabeled; {how}; {entry.directory})"
    )
    hidden_targets = None
    if hidden is not None:
        hidden_targets = HiddenTargets(
            hidden,
            tuple(layers),
            settings.get("layer_map"),
            str(settings.get("hidden_loss", "mse")),
            float(settings.get("hidden_weight", 1.0)),
        )
    targets = TeacherTargets(
        logits, float(settings.temperature), float(settings.alpha), hidden_targets, tuple(extra_texts)
    )
    return targets, entry


def teacher_out_of_fold(
    settings: Any, teacher: LoadedRun, ref: str, train_texts: Sequence[str]
) -> OutOfFold | None:
    """The teacher run's out-of-fold train scores when ``distill.teacher_outputs`` takes them (None:
    the teacher scores its train texts itself)."""
    wanted = str(settings.get("teacher_outputs", "auto"))
    if wanted == "full":
        return None
    record = OutOfFold.read(teacher.directory / RunDir.CROSSFIT)
    if record is None:
        if wanted == "crossfit":
            raise ConfigError(
                f"distill.teacher_outputs=crossfit: the teacher {ref} has no out-of-fold scores; train it "
                "with crossfit.folds=5 (an ensemble: its members), or use teacher_outputs=full"
            )
        return None
    if record.texts_sha256 != texts_sha256(train_texts):
        raise ConfigError(
            f"teacher.run={ref}: its out-of-fold scores cover other train texts than this run's "
            "(another data file or split)"
        )
    return record


def hidden_distillation(settings: Any) -> bool:
    """Whether the distillation config matches hidden states (``distill=kd_hidden``)."""
    return float(settings.get("hidden_weight") or 0.0) > 0.0


def teacher_layers(settings: Any, scorer: Scorer, ref: str) -> list[int]:
    """The teacher layers to cache: those ``distill.layer_map`` names, else every encoder layer (the
    student's uniform map is chosen from them once its depth is known); none without ``kd_hidden``."""
    if not hidden_distillation(settings):
        return []
    depth = encoder_layers(scorer)
    if not depth:
        raise ConfigError(
            f"distill=kd_hidden: the teacher {ref} (a {scorer.kind} model) has no encoder layers to match; "
            "use distill=kd or a transformer teacher"
        )
    layer_map = settings.get("layer_map")
    if not layer_map:
        return list(range(1, depth + 1))
    wanted = sorted({teacher for _, teacher in layer_map_pairs(layer_map)})
    beyond = [layer for layer in wanted if not 0 <= layer <= depth]
    if beyond:
        raise ConfigError(
            f"distill.layer_map: teacher layer {beyond[0]} does not exist (the teacher has {depth} layers; "
            "0 = embeddings)"
        )
    return wanted


def _build(
    entry: TeacherCache,
    teacher: LoadedRun,
    texts: Sequence[str],
    calibration: str,
    layers: Sequence[int],
    out_of_fold: OutOfFold | None,
) -> None:
    scheme = teacher.dataset.scheme
    valid = teacher.part("valid")
    record: dict[str, Any] = {"method": calibration}
    temperatures = None
    if calibration == "temperature":
        if not len(valid):
            raise ConfigError("distill.calibration=temperature needs a valid split (or calibration=none)")
        valid_scores = score_split(teacher.scorer, valid).scores
        temperatures = fit_temperatures(scheme, valid_scores, valid.targets)
        record.update(temperatures.to_json())
        calibrated = temperatures.apply(scheme, valid_scores)
        for when, ece in calibration_change(scheme, valid_scores, calibrated, valid.targets).items():
            record[f"valid_ece_{when}_calibration"] = ece
    if out_of_fold is None:
        scores = teacher.scorer.predict_scores(list(texts))
    else:  # the train rows come first in the transfer set; the rest are scored by the teacher itself
        rest = list(texts[len(out_of_fold.scores) :])
        scores = np.vstack([out_of_fold.scores, *([teacher.scorer.predict_scores(rest)] if rest else [])])
        record["outputs"] = "crossfit"
    logits = link_for(scheme).to_logits(scores)
    if temperatures is not None:
        logits = temperatures.apply_to_logits(logits)
    source = teacher.scorer
    hidden = (
        source.layer_representations(list(texts), layers)
        if layers and isinstance(source, LayerSource)
        else None
    )
    entry.write(logits, record, hidden)
    entry.built = True


def check_seeds(ref: str, networks: int, train_rows: int, allowed: bool) -> None:
    """On small data a neural teacher from one or two seeds is refused unless allowed: single-seed
    MiniLM runs on janitr (2,531 train rows) differ by 0.05 in holdout recall (docs/benchmark_notes.md)."""
    if 0 < networks < MIN_TEACHER_SEEDS and train_rows <= SMALL_DATA_ROWS and not allowed:
        raise ConfigError(
            f"teacher.run={ref}: a neural teacher from {networks} seed(s) on {train_rows} train rows "
            f"(<= {SMALL_DATA_ROWS:,}) varies too much from seed to seed; ensemble {MIN_TEACHER_SEEDS} seeds "
            "(model=ensemble model.members=[...]) or pass distill.allow_single_seed=true"
        )


def check_distillation(settings: Any, scorer: Scorer) -> None:
    """Refuse distillation settings from config alone, before any data or teacher is read."""
    if not isinstance(scorer, Student):
        raise ConfigError(
            f"teacher.run is set, but a {scorer.kind} model cannot learn from a teacher; "
            "use a neural student (model=student, model=minilm)"
        )
    alpha, temperature = float(settings.alpha), float(settings.temperature)
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"distill.alpha={alpha}: expected a weight in [0, 1] (1 = labels only)")
    if temperature <= 0:
        raise ConfigError(f"distill.temperature={temperature}: expected a temperature > 0")
    outputs = str(settings.get("teacher_outputs", "auto"))
    if outputs not in TEACHER_OUTPUTS:
        raise ConfigError(f"distill.teacher_outputs={outputs}: expected one of {list(TEACHER_OUTPUTS)}")
    calibration = str(settings.get("calibration", "temperature"))
    if calibration not in CALIBRATIONS:
        raise ConfigError(f"distill.calibration={calibration}: expected one of {list(CALIBRATIONS)}")
    weight = float(settings.get("hidden_weight") or 0.0)
    if weight < 0:
        raise ConfigError(f"distill.hidden_weight={weight}: expected a weight >= 0")
    loss = str(settings.get("hidden_loss", "mse"))
    if weight and loss not in HIDDEN_LOSSES:
        raise ConfigError(f"distill.hidden_loss={loss}: expected one of {list(HIDDEN_LOSSES)}")
