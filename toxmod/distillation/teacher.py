"""The teacher's outputs for a student: calibrated logits over the transfer set, computed once.

A teacher is any finished run (any model kind: it is read through the scoring interface). Its scores
on valid fit the calibration temperatures; its scores on the transfer set (the train split) become
logits through the scheme's link and are divided by those temperatures. The result is stored under
``<cache_dir>/teacher/<key>/`` where the key hashes everything that determines it (the teacher's
model files, the texts, the split hash, the calibration), so a sweep of students computes it once --
concurrent jobs wait on a file lock -- and a changed teacher or data gets a new entry. Each file's
SHA-256 is recorded in ``manifest.json`` (written last); a file that no longer matches is refused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toxmod.data.readers import file_sha256
from toxmod.errors import ConfigError, DamagedFileError
from toxmod.evaluation.metrics import expected_calibration_error
from toxmod.evaluation.scoring import score_split
from toxmod.files import read_json
from toxmod.models.base import Scorer, TeacherTargets
from toxmod.models.temperature import fit_temperatures, link_for
from toxmod.progress import console
from toxmod.runs.record import LoadedRun, load_run_on_split
from toxmod.runs.store import NoStore, RunStore, file_lock

LOGITS_FILE = "logits.npy"
CALIBRATION_FILE = "calibration.json"
MANIFEST_FILE = "manifest.json"
CALIBRATIONS = ("temperature", "none")
MIN_TEACHER_SEEDS = 3
SMALL_DATA_ROWS = 5_000


def directory_sha256(directory: Path) -> str:
    """SHA-256 over a folder's files (relative names and contents), independent of listing order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode("utf-8") + b"\0")
        digest.update(file_sha256(path).encode("ascii"))
    return digest.hexdigest()


def texts_sha256(texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
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

    def read(self) -> tuple[np.ndarray, dict[str, Any]]:
        """The cached logits, each file checked against the manifest's hash first."""
        manifest = read_json(self.manifest)
        for name, expected in manifest.get("files", {}).items():
            path = self.directory / name
            if not path.is_file() or file_sha256(path) != expected:
                raise DamagedFileError(
                    f"{path}: does not match the SHA-256 in {self.manifest}; the teacher cache was changed "
                    f"after it was written (delete {self.directory} to rebuild it)"
                )
        try:
            logits = np.load(self.directory / LOGITS_FILE, allow_pickle=False)
        except (ValueError, OSError) as error:
            path = self.directory / LOGITS_FILE
            raise DamagedFileError(f"{path}: not a readable array ({error})") from None
        return logits, manifest

    def write(self, logits: np.ndarray, calibration: dict[str, Any]) -> None:
        """Write the entry through a temporary folder, so a killed build leaves no half entry."""
        staging = self.directory.with_name(self.directory.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        np.save(staging / LOGITS_FILE, np.asarray(logits, dtype=np.float32), allow_pickle=False)
        (staging / CALIBRATION_FILE).write_text(json.dumps(calibration, indent=2) + "\n")
        files = {name: file_sha256(staging / name) for name in (LOGITS_FILE, CALIBRATION_FILE)}
        manifest = {"key": self.key, "inputs": self.inputs, "shape": list(logits.shape), "files": files}
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        shutil.rmtree(self.directory, ignore_errors=True)
        staging.rename(self.directory)


def teacher_targets(
    settings: Any,
    train_texts: Sequence[str],
    split_sha256: str,
    store: RunStore | NoStore,
    cache_dir: Path,
) -> tuple[TeacherTargets, TeacherCache]:
    """The teacher's calibrated logits for ``train_texts`` (cached), with the KD settings."""
    ref = str(settings.teacher)
    calibration = str(settings.get("calibration", "temperature"))
    teacher = load_run_on_split(ref, store, cache_dir / "runs", split_sha256, "distill.teacher")
    check_seeds(ref, teacher.scorer.neural_models, len(train_texts), bool(settings.get("allow_single_seed")))
    inputs = {
        "teacher_model_sha256": directory_sha256(teacher.directory / "model"),
        "texts_sha256": texts_sha256(train_texts),
        "n_texts": len(train_texts),
        "split_sha256": split_sha256,
        "calibration": calibration,
        "scheme": teacher.dataset.scheme.describe(),
    }
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode("utf-8")).hexdigest()
    entry = TeacherCache(cache_dir / "teacher" / key[:24], key, {**inputs, "teacher": ref})
    entry.directory.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(entry.directory.with_name(entry.directory.name + ".lock")):
        if not entry.manifest.is_file():
            _build(entry, teacher, train_texts, calibration)
    logits, manifest = entry.read()
    if logits.shape[0] != len(train_texts):
        path = entry.directory / LOGITS_FILE
        raise DamagedFileError(f"{path}: {logits.shape[0]} rows for {len(train_texts)} texts")
    calibration_record = read_json(entry.directory / CALIBRATION_FILE)
    entry.info = {k: float(v) for k, v in calibration_record.items() if isinstance(v, (int, float))}
    console.print(
        f"teacher {ref}: {'computed' if entry.built else 'read'} its outputs for {len(train_texts)} train "
        f"texts ({entry.directory})"
    )
    return TeacherTargets(logits, float(settings.temperature), float(settings.alpha)), entry


def _build(entry: TeacherCache, teacher: LoadedRun, texts: Sequence[str], calibration: str) -> None:
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
        for when, scores in (("before", valid_scores), ("after", calibrated)):
            pairs = scheme.calibration_pairs(scores, valid.targets)
            record[f"valid_ece_{when}_calibration"] = expected_calibration_error(*pairs)
    scores = teacher.scorer.predict_scores(list(texts))
    logits = link_for(scheme).to_logits(scores)
    if temperatures is not None:
        logits = temperatures.apply_to_logits(logits)
    entry.write(logits, record)
    entry.built = True


def check_seeds(ref: str, networks: int, train_rows: int, allowed: bool) -> None:
    """On small data a neural teacher from one or two seeds is refused unless allowed: single-seed
    MiniLM runs on janitr (2,531 train rows) differ by 0.05 in holdout recall (docs/benchmark_notes.md)."""
    if 0 < networks < MIN_TEACHER_SEEDS and train_rows <= SMALL_DATA_ROWS and not allowed:
        raise ConfigError(
            f"distill.teacher={ref}: a neural teacher from {networks} seed(s) on {train_rows} train rows "
            f"(<= {SMALL_DATA_ROWS:,}) varies too much from seed to seed; ensemble {MIN_TEACHER_SEEDS} seeds "
            "(model=ensemble model.members=[...]) or pass distill.allow_single_seed=true"
        )


def check_distillation(settings: Any, scorer: Scorer) -> None:
    """Refuse distillation settings from config alone, before any data or teacher is read."""
    if not scorer.learns_from_teacher:
        raise ConfigError(
            f"distill.teacher is set, but a {scorer.kind} model cannot learn from a teacher; "
            "use a neural student (model=student, model=minilm)"
        )
    alpha, temperature = float(settings.alpha), float(settings.temperature)
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"distill.alpha={alpha}: expected a weight in [0, 1] (1 = labels only)")
    if temperature <= 0:
        raise ConfigError(f"distill.temperature={temperature}: expected a temperature > 0")
    calibration = str(settings.get("calibration", "temperature"))
    if calibration not in CALIBRATIONS:
        raise ConfigError(f"distill.calibration={calibration}: expected one of {list(CALIBRATIONS)}")
