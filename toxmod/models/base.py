"""The one scoring interface every model kind implements: texts in, per-label scores out."""

from __future__ import annotations

import contextlib
import contextvars
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
from rich.text import Text

from toxmod.data.auxiliary import AuxiliaryTargets
from toxmod.data.schemes import LabelScheme, scheme_from_description
from toxmod.errors import ConfigError, DamagedFileError
from toxmod.files import read_json
from toxmod.hardware import CPU, HardwareSettings
from toxmod.progress import styled
from toxmod.spec import CheckpointSpec, EarlyStoppingSpec

SCORER_FILE = "scorer.json"


class MetricsLogger(Protocol):
    """Where a trainer-driven model sends its curves (the run's tracker)."""

    enabled: bool

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...


class ValidationMetrics(Protocol):
    """The valid split's metrics at the run's operating point, from a model's valid scores.

    Built by the stage (thresholds and metrics live above the models); ``names`` are every metric
    it returns (known before any data is read), which is what ``checkpoint.monitor`` may name.
    """

    @property
    def names(self) -> list[str]: ...

    @property
    def default_monitor(self) -> str:
        """The metric that picks the kept checkpoint unless ``checkpoint.monitor`` names another."""
        ...

    def __call__(self, scores: np.ndarray, targets: np.ndarray) -> dict[str, float]: ...


@dataclass(frozen=True)
class ValidationData:
    """The valid split, for per-epoch validation and checkpoint selection."""

    texts: Sequence[str]
    targets: np.ndarray


@dataclass
class FitContext:
    """What trainer-driven models use beyond texts and targets; classical models ignore it.

    ``validation`` is the valid split and ``validation_metrics`` what is computed on it every
    validation; ``trainer`` holds Lightning ``Trainer`` arguments (``trainer.*``); ``checkpoint_dir`` and
    ``last_checkpoint`` are where checkpoints go (the run record decides the names; None: a temporary
    folder); ``resume_from`` is a checkpoint to continue from; ``auxiliary`` holds training-only extra
    targets of the train rows (``data.auxiliary``); ``callbacks`` are extra Lightning callbacks;
    ``teacher`` is what a student distils from (models with ``learns_from_teacher``).
    """

    hardware: HardwareSettings = CPU
    validation: ValidationData | None = None
    validation_metrics: ValidationMetrics | None = None
    trainer: Mapping[str, object] = field(default_factory=dict)
    checkpoint: CheckpointSpec = field(default_factory=CheckpointSpec.of)  # the YAML defaults
    early_stopping: EarlyStoppingSpec = field(default_factory=EarlyStoppingSpec.of)
    checkpoint_dir: Path | None = None
    last_checkpoint: Path | None = None
    resume_from: Path | None = None
    metrics_logger: MetricsLogger | None = None
    callbacks: Sequence[object] = ()
    auxiliary: AuxiliaryTargets | None = None
    teacher: TeacherTargets | None = None


@dataclass(frozen=True)
class TeacherTargets:
    """What a student learns from a teacher: the teacher's calibrated logits for every train row (in
    the order of the texts ``fit`` gets) and then for each of ``extra_texts`` (unlabeled transfer-set
    texts, ``distill.transfer``), the distillation temperature, and ``alpha``, the weight of the
    hard-label loss (the teacher's term gets ``1 - alpha``); ``hidden`` for hidden-state matching."""

    logits: np.ndarray
    temperature: float = 2.0
    alpha: float = 0.5
    hidden: HiddenTargets | None = None
    extra_texts: tuple[str, ...] = ()


@dataclass(frozen=True)
class HiddenTargets:
    """The teacher's layer representations for every train row (``distill=kd_hidden``):
    ``values[row, i]`` is teacher layer ``layers[i]`` averaged over the row's real tokens. ``layer_map``
    pairs student and teacher layers (None: the uniform map for the student's depth); ``loss`` is
    ``mse`` or ``cosine``; ``weight`` scales the term beside the KD and hard-label terms."""

    values: np.ndarray
    layers: tuple[int, ...]
    layer_map: Any = None
    loss: str = "mse"
    weight: float = 1.0


@dataclass(frozen=True)
class Opening:
    """What the person opening a saved model supplies. A model folder may come from anyone, so it
    records, but never chooses, where texts are sent, which credential is read, or a folder outside
    itself: ``settings`` are the opener's ``model.*`` (``base_url``, ``api_key_env``, ``pretrained``),
    ``cache_dir`` the opener's cache folder, ``roots`` the folders the opener's own config names
    (checkout, datasets, caches, outputs) and ``files`` files the opener named.
    """

    settings: Mapping[str, Any] = field(default_factory=dict)
    cache_dir: Path | None = None
    roots: tuple[Path, ...] = ()
    files: tuple[Path, ...] = ()

    def allows(self, path: str | Path, also: Sequence[Path] = ()) -> bool:
        """``path`` (links followed) lies inside one of ``roots`` or ``also``, or is one of ``files``."""
        resolved = Path(path).expanduser().resolve()
        if resolved in {Path(f).expanduser().resolve() for f in self.files}:
            return True
        return any(resolved.is_relative_to(Path(r).expanduser().resolve()) for r in (*self.roots, *also))


_OPENING: contextvars.ContextVar[Opening | None] = contextvars.ContextVar("opening", default=None)


def current_opening() -> Opening:
    """The ``Opening`` of the ``load_scorer`` call in progress (models inside models use it too)."""
    return _OPENING.get() or Opening()


@contextlib.contextmanager
def opened_with(opening: Opening | None) -> Iterator[Opening]:
    """Make ``opening`` the current one for the block (None: keep the current one)."""
    if opening is None:
        yield current_opening()
        return
    token = _OPENING.set(opening)
    try:
        yield opening
    finally:
        _OPENING.reset(token)


@dataclass(frozen=True)
class CheckpointVariant:
    """Weights a fit kept besides the best (a top-k checkpoint, the last step), as a scorer of its own:
    ``name`` (``step-<n>``), the optimizer ``step``, its monitored valid value (None: not validated)."""

    name: str
    step: int
    monitored: float | None
    scorer: Scorer
    last: bool = False


@dataclass
class FitReport:
    """What fitting produced besides the model: numbers for the run's metrics, files for its record."""

    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, Path] = field(
        default_factory=dict
    )  # record folder -> file (e.g. the best checkpoint)
    variants: list[CheckpointVariant] = field(default_factory=list)  # kept weights besides the best


class Scorer(ABC):
    """A trained model behind a uniform interface.

    Required: ``kind`` (the name saved in ``scorer.json``), ``fit``, ``predict_scores``,
    ``_save_weights`` and ``_load_weights``; ``params`` describes the constructor arguments ``load``
    rebuilds it from (default: none). Everything else here has a default a new kind may leave alone;
    optional capabilities (device placement, member runs, layer representations, learning from a
    teacher, scoring reports) are the classes of ``models/capabilities.py``, opted into by inheriting.

    ``predict_scores`` returns a float array of shape ``(n_texts, len(scheme.output_names))``:
    independent per-label probabilities for a multi-label scheme, one probability per level
    (rows sum to 1) for a levels scheme. Evaluation, thresholds and latency see nothing else.
    ``fit`` sets ``self.scheme``. A kind outside toxmod is opened where the opener's ``conf/`` names
    its class (``docs/new_model_kind.md``).
    """

    kind: ClassVar[str]
    # ``model.*`` settings the opener of a saved model may give (``Opening.settings``); None: passed on
    # to the models inside (an ensemble's members)
    opening_settings: ClassVar[tuple[str, ...] | None] = ()

    def __init__(self) -> None:
        self.scheme: LabelScheme | None = None
        self.fit_report = FitReport()

    @abstractmethod
    def fit(
        self,
        texts: Sequence[str],
        targets: np.ndarray,
        scheme: LabelScheme,
        context: FitContext | None = None,
    ) -> Scorer:
        """Train on ``texts`` with encoded ``targets`` under ``scheme``; returns self."""

    @abstractmethod
    def predict_scores(self, texts: Sequence[str]) -> np.ndarray:
        """Per-output scores for ``texts``."""

    @abstractmethod
    def _save_weights(self, directory: Path) -> None:
        """Write the model's own files into ``directory``."""

    @abstractmethod
    def _load_weights(self, directory: Path, allow_pickle: bool = False) -> None:
        """Read back what ``_save_weights`` wrote (``allow_pickle``: also an older pickle format)."""

    @property
    def label_scheme(self) -> LabelScheme:
        """The scheme the model was fitted or loaded with (an error before ``fit`` or ``load``)."""
        if self.scheme is None:
            raise RuntimeError(f"a {self.kind} model has no label scheme before fit() or load()")
        return self.scheme

    def params(self) -> dict[str, Any]:
        """Constructor parameters, stored so ``load`` rebuilds the same object."""
        return {}

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Scorer:
        """The unfitted object ``params()`` describes."""
        return cls(**params)

    @classmethod
    def opened_params(cls, params: Mapping[str, Any], opening: Opening, where: Path) -> dict[str, Any]:
        """The saved ``params`` with what only the opener may choose taken from ``opening`` (a model
        that talks to a server or reads folders outside its own overrides this)."""
        if cls.opening_settings is not None:
            given = sorted(k for k, v in opening.settings.items() if v is not None)
            unknown = [k for k in given if k not in cls.opening_settings]
            if unknown:
                raise ConfigError(
                    f"model.{unknown[0]}: a {cls.kind} model ({where.parent}) has no such setting"
                )
        return dict(params)

    def fit_announcement(self, name: str, train_rows: int, dataset: str) -> Text:
        """The line the train stage prints before ``fit``."""
        return styled("training", f" {name} on the {train_rows} train rows of {dataset} ...")

    def check_settings(self, scheme: LabelScheme, context: FitContext) -> None:  # noqa: B027 - optional hook
        """Refuse bad settings before any data is read (one-line ConfigError); ``context`` has no data yet."""

    @property
    def parameter_count(self) -> int | None:
        """Trainable parameters, for models where the count means something (None otherwise)."""
        return None

    @property
    def neural_models(self) -> int:
        """How many trained networks this model holds (a teacher from one seed varies a lot)."""
        return 0

    def run_tags(self) -> dict[str, str]:
        """Tags that identify what this model is beyond its config name (e.g. the prompt's hash)."""
        return {}

    def size_bytes(self, directory: Path) -> int:
        """Bytes on disk of what scoring this saved model reads (``model_size_bytes``)."""
        return artifact_size_bytes(directory)

    def save(self, directory: str | Path) -> Path:
        """Write the model to ``directory`` (created); ``load_scorer`` reads it back bit-exactly."""
        if self.scheme is None:
            raise RuntimeError("save() called before fit()")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._save_weights(directory)
        description = {"kind": self.kind, "params": self.params(), "scheme": self.scheme.describe()}
        if not type(self).__module__.startswith("toxmod."):  # a kind of the user's own: where it lives
            description["class"] = f"{type(self).__module__}.{type(self).__qualname__}"
        (directory / SCORER_FILE).write_text(json.dumps(description, indent=2) + "\n")
        return directory

    @classmethod
    def load(
        cls, directory: str | Path, description: Mapping[str, Any] | None = None, allow_pickle: bool = False
    ) -> Scorer:
        """Rebuild a saved model of this class (``description``: its ``scorer.json``, if already read).

        Nothing in the directory is executed; a pickle (an older format) is read only with
        ``allow_pickle=True``. Endpoints, credential names and outside folders come from the current
        ``Opening`` (``load_scorer``), never from the directory.
        """
        directory = Path(directory)
        description = description or read_json(directory / SCORER_FILE)
        where = directory / SCORER_FILE
        params = cls.opened_params(description.get("params", {}), current_opening(), where)
        try:
            scorer = cls.from_params(params)
        except TypeError as error:  # an unknown or missing constructor parameter
            raise DamagedFileError(f"{where}: parameters do not fit {cls.kind} ({error})") from None
        try:
            scorer.scheme = scheme_from_description(description["scheme"])
        except (KeyError, TypeError, ValueError) as error:
            raise DamagedFileError(f"{where}: not a label scheme ({error!r})") from None
        scorer._load_weights(directory, allow_pickle)
        return scorer


def artifact_size_bytes(directory: str | Path) -> int:
    """Total size of the files in a saved model directory."""
    return sum(p.stat().st_size for p in Path(directory).rglob("*") if p.is_file())


def batched(texts: Sequence[str], batch_size: int) -> list[Sequence[str]]:
    """Consecutive batches of ``texts``."""
    return [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
