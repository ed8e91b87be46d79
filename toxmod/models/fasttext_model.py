"""fastText supervised classifier, with optional ``.ftz`` quantization (``cutoff``, ``dsub``)."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from toxmod.data.schemes import LabelScheme
from toxmod.errors import ConfigError, DamagedFileError
from toxmod.models.base import FitContext, Scorer

FULL_MODEL_FILE = "model.bin"
QUANTIZED_MODEL_FILE = "model.ftz"
_NO_LABEL = "__none__"
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def _quiet_fasttext() -> Any:
    import fasttext

    fasttext.FastText.eprint = lambda *args, **kwargs: None  # silences load_model's deprecation notice
    return fasttext


def fasttext_line(text: str) -> str:
    """Lower-cased, punctuation split off, newlines removed (fastText reads one example per line)."""
    return " ".join(_TOKEN.findall(text.lower()))


class FastTextScorer(Scorer):
    """fastText: one-vs-all sigmoid outputs for multi-label schemes, softmax for levels."""

    kind = "fasttext"

    def __init__(
        self,
        dim: int = 64,
        epoch: int = 25,
        lr: float = 0.2,
        word_ngrams: int = 2,
        minn: int = 2,
        maxn: int = 5,
        bucket: int = 500_000,
        seed: int = 0,
        thread: int = 1,
        quantize: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self._params: dict[str, Any] = {
            "dim": dim,
            "epoch": epoch,
            "lr": lr,
            "word_ngrams": word_ngrams,
            "minn": minn,
            "maxn": maxn,
            "bucket": bucket,
            "seed": seed,
            "thread": thread,
            "quantize": dict(quantize or {"enabled": False}),
        }
        self.model: Any = None
        self.full_size_bytes: int | None = None
        self.quantized_size_bytes: int | None = None

    def params(self) -> dict[str, Any]:
        return dict(self._params)

    @property
    def quantized(self) -> bool:
        return bool(self._params["quantize"].get("enabled", False))

    def _label_lines(self, texts: Sequence[str], targets: np.ndarray, scheme: LabelScheme) -> list[str]:
        names = scheme.output_names
        lines = []
        for text, target in zip(texts, targets):
            if np.ndim(target) == 0:  # levels: exactly one class
                labels = [f"__label__{names[int(target)]}"]
            else:  # multi-label: every positive label, or a placeholder when there is none
                labels = [f"__label__{n}" for n, v in zip(names, target) if v] or [f"__label__{_NO_LABEL}"]
            lines.append(" ".join(labels) + " " + fasttext_line(text))
        return lines

    def fit(
        self,
        texts: Sequence[str],
        targets: np.ndarray,
        scheme: LabelScheme,
        context: FitContext | None = None,
    ) -> FastTextScorer:
        fasttext = _quiet_fasttext()
        self.scheme = scheme
        p = self._params
        loss = "ova" if np.ndim(targets) == 2 else "softmax"
        with tempfile.TemporaryDirectory() as tmp:
            train_file = Path(tmp) / "train.txt"
            train_file.write_text(
                "\n".join(self._label_lines(texts, targets, scheme)) + "\n", encoding="utf-8"
            )
            try:
                self.model = fasttext.train_supervised(
                    input=str(train_file),
                    dim=p["dim"],
                    epoch=p["epoch"],
                    lr=p["lr"],
                    wordNgrams=p["word_ngrams"],
                    minn=p["minn"],
                    maxn=p["maxn"],
                    bucket=p["bucket"],
                    loss=loss,
                    seed=p["seed"],
                    thread=p["thread"],
                    verbose=0,
                )
            except RuntimeError as error:
                if "NaN" not in str(error):
                    raise
                raise ConfigError(
                    f"fastText training diverged (NaN loss) at model.lr={p['lr']}, model.dim={p['dim']}: "
                    "change model.lr, model.dim or model.epoch"
                ) from error
            self.model.save_model(str(Path(tmp) / FULL_MODEL_FILE))
            self.full_size_bytes = (Path(tmp) / FULL_MODEL_FILE).stat().st_size
            if self.quantized:
                q = p["quantize"]
                self.model.quantize(
                    input=str(train_file),
                    retrain=bool(q.get("retrain", True)),
                    qnorm=bool(q.get("qnorm", True)),
                    cutoff=int(q.get("cutoff", 100_000)),
                    dsub=int(q.get("dsub", 2)),
                    thread=p["thread"],
                    verbose=0,
                )
                self.model.save_model(str(Path(tmp) / QUANTIZED_MODEL_FILE))
                self.quantized_size_bytes = (Path(tmp) / QUANTIZED_MODEL_FILE).stat().st_size
        sizes = {"model_full_size_bytes": self.full_size_bytes}
        if self.quantized_size_bytes is not None:
            sizes["model_quantized_size_bytes"] = self.quantized_size_bytes
        self.fit_report.metrics = {name: float(size) for name, size in sizes.items()}
        return self

    def predict_scores(self, texts: Sequence[str]) -> np.ndarray:
        names = self.label_scheme.output_names
        column = {f"__label__{n}": j for j, n in enumerate(names)}
        labels, probabilities = self.model.predict([fasttext_line(t) for t in texts], k=-1, threshold=0.0)
        scores = np.zeros((len(texts), len(names)), dtype=np.float64)
        for i, (row_labels, row_probs) in enumerate(zip(labels, probabilities)):
            for label, prob in zip(row_labels, row_probs):
                if label in column:
                    scores[i, column[label]] = min(float(prob), 1.0)
        return scores

    def _save_weights(self, directory: Path) -> None:
        self.model.save_model(str(directory / (QUANTIZED_MODEL_FILE if self.quantized else FULL_MODEL_FILE)))

    def _load_weights(self, directory: Path, allow_pickle: bool = False) -> None:
        fasttext = _quiet_fasttext()
        path = directory / (QUANTIZED_MODEL_FILE if self.quantized else FULL_MODEL_FILE)
        if not path.is_file():
            raise DamagedFileError(f"{path}: missing")
        try:  # fastText's own binary format: no code in it
            self.model = fasttext.load_model(str(path))
        except ValueError as error:
            raise DamagedFileError(f"{path}: not a readable fastText model ({error})") from None
